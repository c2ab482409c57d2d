"""What a handler works with: the request, the storage and the links it makes.

Every book is opened here, under Radicale's storage lock through
``model.open_book``, after the same rights check Radicale makes, and always in
the categories view: the API shows CATEGORIES, never synthesised group cards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cardfile.plugin.api import ids
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import Request
from cardfile.plugin.contacts import dedupe, model, views
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import normalize


@dataclass
class Context:
    request: Request
    storage: Any
    rights: Any
    prefix: str  # SCRIPT_NAME + "/api"
    max_resource_size: int
    #: The grants model, the grant this request logged in with (None: the password),
    #: and the users who may manage everyone's grants.
    grants: Any = None
    grant: Any = None
    admins: frozenset[str] = frozenset()

    @property
    def user(self) -> str:
        return self.request.user

    @property
    def region(self) -> str:
        """The phone region that numbers without a country code are read in."""
        return normalize.default_region(getattr(self.storage, "configuration", None))

    def merge_store(self, book: str) -> dedupe.MergeStore:
        """Where merges of ``book`` are recorded (the CLI's store: undo works from either)."""
        folder = Path(self.storage.configuration.get("storage", "filesystem_folder"))
        return dedupe.MergeStore(folder, self.user, book)

    def book_url(self, book: str) -> str:
        return f"{self.prefix}/books/{quote(book, safe='')}"

    def contact_url(self, book: str, uid: str) -> str:
        return f"{self.book_url(book)}/contacts/{ids.encode(uid)}"

    def category_url(self, book: str, name: str) -> str:
        return f"{self.book_url(book)}/categories/{ids.encode(name)}"

    @contextlib.contextmanager
    def open(self, book: str, mode: str = "r") -> Iterator[model.AddressBook]:
        """The user's own book ``book``, or 404 (another user's books are not there)."""
        path = f"/{self.user}/{book}/"
        permissions = self.rights.authorization(self.user, set(), path)
        if "r" not in permissions.lower() or (mode == "w" and "w" not in permissions.lower()):
            if "r" in permissions.lower():
                raise Problem(403, f"you may read but not change the address book {book!r}")
            raise Problem(404, f"you have no address book named {book!r}")
        try:
            with views.using(views.CATEGORIES_VIEW), \
                    model.open_book(self.storage, self.user, book, mode) as address_book:
                yield address_book
        except Refused as e:
            if e.status in (400, 404, 409) and (
                    "address book" in e.reason or "invalid name" in e.reason):
                raise Problem(404, f"you have no address book named {book!r}") from None
            raise Problem(e.status, e.reason, headers=e.headers) from None

    def books(self) -> list[str]:
        """Names of the user's address books."""
        found = []
        with self.storage.acquire_lock("r", self.user):
            for collection in self.storage.discover(f"/{self.user}/", depth="1"):
                path = collection.path.strip("/")
                if "/" in path and getattr(collection, "tag", "") == "VADDRESSBOOK":
                    found.append(path.rsplit("/", 1)[1])
        return sorted(found)


def decode_id(ident: str, what: str = "contact") -> str:
    value = ids.decode(ident)
    if value is None:
        raise Problem(404, f"{ident!r} is not a {what} id this server gives")
    return value
