"""Writes into a book another user shared: refused with 403 and the reason.

A shared book (contacts/shared_book.py) is a view of its owner's book. A
read-only share refuses every method that is not a read (PUT, DELETE, MKCOL,
PROPPATCH, MOVE, COPY, POST, ...) before Radicale sees it; a read-write share
allows PUT and DELETE of cards (they go through the owner's write path) and
refuses the rest: the book's name, properties and existence are its
owner's. The storage refuses too (``SharedBook.upload``), for every other way
in (the API, the CLI).

Only the folder's owner, logged in, gets the reason; anyone else gets
Radicale's usual 401 or 403, which says nothing about which books are shares.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from cardfile.plugin.contacts import shared_book
from cardfile.plugin.contacts.grants.core import READ_METHODS
from cardfile.plugin.refused import Refused

CARD_WRITES = frozenset({"PUT", "DELETE"})


def _share(collection_root: str, grants_store: Any, path: str
           ) -> tuple[str, dict[str, Any] | None, str, bool] | None:
    """(user, the share's state, whether the path is a card in it), or None: not a share."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or any(p in (".", "..") or p.startswith(".") for p in parts[:2]):
        return None
    folder = os.path.join(collection_root, parts[0], parts[1])
    marker = shared_book.read_marker(folder)
    if marker is None:
        return None
    owner, ident = marker
    record = next((r for r in grants_store.read(owner)["grants"]
                   if r.get("kind") == "share" and r.get("id") == ident
                   and r.get("state") == "accepted" and r.get("with") == parts[0]), None)
    return parts[0], record, owner, len(parts) > 2


def screen(environ: dict[str, Any], method: str, collection_root: str, grants_store: Any,
           logged_in: Callable[[dict[str, Any]], str | None]) -> None:
    """Raise ``Refused`` for a write a shared book does not allow."""
    if method in READ_METHODS:
        return
    targets = [environ.get("PATH_INFO", "")]
    destination = environ.get("HTTP_DESTINATION")
    if destination:
        targets.append(unquote(urlsplit(destination).path))
    for path in targets:
        try:
            found = _share(collection_root, grants_store, path)
        except Refused:
            continue
        if found is None or logged_in(environ) != found[0]:
            continue
        _, record, owner, is_card = found
        if record is None:
            raise Refused(404, "This shared address book was ended by its owner")
        book, category = str(record.get("book")), record.get("category")
        if record.get("access") != "rw":
            raise Refused(403, shared_book.read_only_reason(owner, book, category))
        if method not in CARD_WRITES or not is_card or len(targets) > 1:
            raise Refused(403, f"This address book is {owner}'s book {book!r}, shared with "
                               f"you: you may add, change and delete its contacts, but not "
                               f"{method} it (its name, properties and existence are "
                               f"{owner}'s; end the share with 'cardfile shares end')")
