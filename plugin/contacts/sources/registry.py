"""Which sources a user has, and what each one last did: files in the source's own book.

A source's book (``/<user>/source-<name>/``) holds its cards and three dot
files that no client sees (Radicale serves no name starting with a dot):
``.cardfile-source.json`` (what the source is: name, kind, URL, interval,
where its cards go), ``.cardfile-source-state.json`` (sync token, the ETag
and local UID of every card, the last result) and, when it has a password,
``.cardfile-source.secret`` (``secrets.py``). Removing the book removes the
source; a backup of the folder carries the definition, not the password.

The marker also makes the book read-only (``check_writable``): only a sync
in progress (``writing``) may change it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cardfile.plugin.contacts import state_files
from cardfile.plugin.refused import Refused

MARKER = ".cardfile-source.json"
STATE = ".cardfile-source-state.json"
BOOK_PREFIX = "source-"
KINDS = ("carddav", "file", "folder")
#: Kinds designed but not built (docs/sources-oauth.md): both sign in with OAuth 2.0 only,
#: so a password cannot stand in, and nothing here can exercise their token flows.
PLANNED_KINDS = {
    "google-carddav": "Google Contacts (CardDAV with OAuth 2.0)",
    "microsoft-graph": "Microsoft 365 and Outlook.com contacts (Microsoft Graph)",
}
INTO = ("own", "main")
MIN_INTERVAL = 1
DEFAULT_INTERVAL = 3600
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("cardfile_source_sync",
                                                               default=False)


@dataclass
class Source:
    name: str
    kind: str
    url: str
    user: str
    interval: int = DEFAULT_INTERVAL
    into: str = "own"
    username: str = ""  # the login at the source (shown); its password is in secrets
    book_url: str = ""  # carddav: the address book discovery found
    created: float = field(default_factory=time.time)

    @property
    def book(self) -> str:
        return BOOK_PREFIX + self.name

    @property
    def path(self) -> str:
        return f"/{self.user}/{self.book}/"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise Refused(400, f"{name!r} cannot name a source: use 1-40 lower-case letters, digits "
                           "and dashes (it becomes the address book source-NAME)")
    return name


def planned_kind_of(url: str) -> str | None:
    """The planned kind an address belongs to (Google's CardDAV, Microsoft Graph), if any."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:  # not an address at all: connect's own check says why
        return None
    path = parts.path.lower()
    if host == "www.googleapis.com" and path.startswith("/carddav"):
        return "google-carddav"
    if host in ("google.com", "www.google.com") and (
            path.startswith("/.well-known/carddav") or path.startswith("/carddav")):
        return "google-carddav"
    if host == "graph.microsoft.com":
        return "microsoft-graph"
    return None


def refuse_planned(kind: str | None, url: str) -> None:
    """Say clearly, before anything is probed, that a planned kind is not in this build."""
    planned = kind if kind in PLANNED_KINDS else planned_kind_of(url)
    if planned is None:
        return
    raise Refused(422, f"{PLANNED_KINDS[planned]} sources (kind {planned!r}) are not available "
                       "in this build: they sign in with OAuth 2.0 only, which is designed but "
                       "not built yet; see README.md, 'Connected sources' "
                       "(docs/sources-oauth.md). Export a vCard file there and import it, or "
                       "connect the file's URL")


def name_from_url(url: str) -> str:
    """A default name: the host (or folder) with dashes, as a person would call it."""
    stripped = re.sub(r"^[a-z]+://", "", url.lower()).split("/", 1)[0].split("@")[-1]
    if not stripped or "://" not in url:
        stripped = os.path.basename(os.path.normpath(url)).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", stripped.split(":")[0]).strip("-")[:40].strip("-")
    return slug or "source"


def is_source_folder(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, MARKER))


def check_writable(folder: str) -> None:
    """Refuse a change to a source's book unless the sync itself makes it."""
    if _writing.get() or not is_source_folder(folder):
        return
    source = read_source(folder)
    what = f"the source {source.name!r}" if source else "a connected source"
    raise Refused(403, f"This address book is kept in step with {what}; it is read-only "
                       "here. Change the contact at the source, or copy it into your own "
                       "address book")


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """The sync's own writes to a source's book (the only ones allowed)."""
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def read_source(folder: str) -> Source | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            data = json.load(f)
        known = set(Source.__dataclass_fields__)
        return Source(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def write_json(path: str, data: Any) -> None:
    state_files.write_json(path, data, 0o600, ensure_ascii=False, separators=(",", ":"))


def write_source(folder: str, source: Source) -> None:
    write_json(os.path.join(folder, MARKER), asdict(source))


def read_state(folder: str) -> dict[str, Any]:
    try:
        with open(os.path.join(folder, STATE), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(folder: str, state: dict[str, Any]) -> None:
    write_json(os.path.join(folder, STATE), state)


def user_folder(storage: Any, user: str) -> str:
    return os.path.join(storage.collection_root_folder(), user)


def book_folder(storage: Any, source: Source) -> str:
    return os.path.join(user_folder(storage, source.user), source.book)


def sources_of(storage: Any, user: str) -> list[tuple[Source, str]]:
    """(source, its book folder) for every source of ``user``, by name."""
    found = []
    try:
        with os.scandir(user_folder(storage, user)) as entries:
            folders = [e.path for e in entries
                       if e.is_dir() and e.name.startswith(BOOK_PREFIX)]
    except FileNotFoundError:
        return []
    for folder in folders:
        source = read_source(folder)
        if source is not None and source.user == user and \
                os.path.basename(folder) == source.book:
            found.append((source, folder))
    return sorted(found, key=lambda pair: pair[0].name)


def find(storage: Any, user: str, name: str) -> tuple[Source, str]:
    for source, folder in sources_of(storage, user):
        if source.name == name:
            return source, folder
    raise Refused(404, f"there is no source {name!r}; 'cardfile sources list' shows them")


def all_users(storage: Any) -> list[str]:
    try:
        with os.scandir(storage.collection_root_folder()) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def create(storage: Any, source: Source) -> str:
    """Make the source's read-only book and its marker; return the book folder."""
    check_name(source.name)
    if source.kind not in KINDS or source.into not in INTO:
        raise Refused(400, f"unknown kind {source.kind!r} or target {source.into!r}")
    with storage.acquire_lock("w", source.user):
        if next(iter(storage.discover(source.path)), None) is not None:
            raise Refused(409, f"a source (or address book) named {source.book!r} exists "
                               "already; choose another --name")
        storage.create_collection(f"/{source.user}/")
        storage.create_collection(source.path, props={
            "tag": "VADDRESSBOOK", "D:displayname": f"{source.name} (connected source)",
            "CR:addressbook-description": f"Kept in step with {source.kind} source "
                                          f"{source.name}; read-only"})
        folder = book_folder(storage, source)
        write_source(folder, source)
        write_state(folder, {})
    return folder


def remove(storage: Any, user: str, name: str) -> Source:
    """Delete the source's book (its cards, state and password)."""
    source, _ = find(storage, user, name)
    with storage.acquire_lock("w", user):
        collection = next(iter(storage.discover(source.path)), None)
        if collection is not None:
            collection.delete(None)
    return source
