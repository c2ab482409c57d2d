"""Clients may read a connected source's address book, never change it.

The book is kept in step with another service; a card changed here would be
overwritten at the next refresh (or, deleted, come back), so a client's
write is refused with 403 and a reason before Radicale sees it (Radicale
would turn the storage's refusal into a 500). The storage refuses too
(``registry.check_writable``), for every other way in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from cardfile.plugin.contacts.sources import registry
from cardfile.plugin.refused import Refused

WRITES = frozenset({"PUT", "DELETE", "MOVE", "COPY", "PROPPATCH", "MKCOL"})


def _source_folder(collection_root: str, path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or any(p in (".", "..") or p.startswith(".") for p in parts[:2]):
        return None
    folder = os.path.join(collection_root, parts[0], parts[1])
    return folder if registry.is_source_folder(folder) else None


def screen(environ: dict[str, Any], method: str, collection_root: str,
           logged_in: Callable[[dict[str, Any]], str | None]) -> None:
    """Raise ``Refused(403)`` for a write into (or a move out of) a source's book.

    Only for the book's owner, logged in (``logged_in`` checks the password):
    anyone else gets Radicale's usual 401 or 403, which says nothing about
    which books are sources.
    """
    if method not in WRITES:
        return
    targets = [environ.get("PATH_INFO", "")]
    destination = environ.get("HTTP_DESTINATION")
    if destination:
        targets.append(unquote(urlsplit(destination).path))
    for path in targets:
        folder = _source_folder(collection_root, path)
        if folder is None or logged_in(environ) != path.strip("/").split("/")[0]:
            continue
        source = registry.read_source(folder)
        name = source.name if source else "?"
        if len([p for p in path.split("/") if p]) <= 2 and method == "DELETE":
            raise Refused(403, f"This address book belongs to the connected source {name!r}; "
                               f"remove it with 'cardfile sources remove {name}'")
        raise Refused(403, f"This address book is kept in step with the connected source "
                           f"{name!r} and is read-only; change the contact at the source, or "
                           "copy it into your own address book")
