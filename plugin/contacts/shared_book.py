"""Another user's book, or one category of it, served as a book of the recipient.

When a share (grants/shares.py) is accepted, the recipient's home gets a
folder ``/<with>/shared-<owner>-<book>[-<category>]/`` holding only
Radicale's props and a marker naming the owner and the share's id. Like a
published book (published.py) it holds no cards: it is a view of the owner's
book, read and written through it, so every card exists once and every write
goes through the owner's one write path (``store_card``), recorded in the
owner's history with the recipient as the actor.

The marker says only *which grant to ask*: at every request the owner's
grants file (one ``stat``, re-read when it changed) must hold that share,
accepted, with this folder's user. Anything else (ended, declined, a
marker copied into another home) is a closed share: no cards, no writes,
and the storage's discovery skips it, so it answers 404 and is not listed.
Whether it may write is the grant's ``access`` (``r`` or ``rw``), read at the
same time.

A category share shows only the members of that category: listing, GET,
multiget, queries and sync-collection; a card leaving the category is
reported gone. Its sync answers never name a card outside the category: when
such cards changed since the client's token, the token is refused and the
client starts over (``visible_changes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import published, state_files
from cardfile.plugin.contacts.published import PublishedBook
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import ItemRow

if TYPE_CHECKING:
    from cardfile.plugin.contacts.storage import Collection

MARKER = ".cardfile-share.json"


def read_marker(folder: str) -> tuple[str, str] | None:
    """(owner, share id) if ``folder`` is a shared book."""
    return published.read_pair(folder, MARKER, "owner", "grant")


def write_marker(folder: str, owner: str, ident: str) -> None:
    state_files.write_json(os.path.join(folder, MARKER), {"owner": owner, "grant": ident},
                           0o644)


def read_only_reason(owner: str, book: str, category: str | None) -> str:
    what = f"the category {category!r} of " if category else ""
    return (f"This address book is {what}{owner}'s book {book!r}, shared with you "
            "read-only: it cannot be changed here")


class SharedBook(PublishedBook):
    """The share's cards (all of the book, or one category), served as ``collection``."""

    def __init__(self, collection: Collection, record: dict[str, Any] | None,
                 owner: str) -> None:
        self.record = record or {}
        self.owner = owner
        book = str(self.record.get("book") or "")
        category = self.record.get("category")
        self.open = (record is not None and radicale.is_safe_name(book)
                     and radicale.is_safe_name(owner))
        itself = radicale.unstrip_path(collection.path, True)  # closed: shows itself, empty
        super().__init__(collection, f"/{owner}/{book}/" if self.open else itself,
                         str(category or ""))
        self.whole_book = not category

    @property
    def writable(self) -> bool:
        return self.open and self.record.get("access") == "rw"

    def exists(self) -> bool:
        # the owner's own book only: never a published book or another share
        return self.open and super().exists() and self.source._published is None

    def sync_coll(self) -> int:
        return super().sync_coll() if self.exists() else self.collection._coll()

    def scope(self, category: str | None) -> tuple[int, str | None]:
        if self.whole_book:
            return (self.sync_coll(), category) if self.exists() else (
                self.collection._coll(), None)
        return super().scope(category)

    def rows(self) -> dict[str, ItemRow]:
        if not self.exists():
            return {}
        if self.whole_book:
            return dict(self.source._all_rows())
        return super().rows()

    def has_uid(self, uid: str) -> bool:
        if not self.exists():
            return False
        if self.whole_book:
            return self.source.has_uid(uid)
        return any(row.uid == uid for row in self.rows().values())

    def _check_writable(self) -> None:
        if not self.open:
            raise Refused(404, "this shared address book was ended by its owner")
        if not self.writable:
            raise Refused(403, read_only_reason(self.owner, str(self.record.get("book")),
                                                self.record.get("category")))

    def upload(self, href: str, item: radicale.Item) -> tuple[Any, Any]:
        self._check_writable()
        if not self.whole_book:
            return super().upload(href, item)
        if not self.exists():
            raise ValueError(f"the book {self.source.path!r} this one shows is gone")
        old = self.rows().get(href)
        stored, _ = self.source.upload(href, radicale.Item(
            collection_path=self.source.path, text=item.serialize()))
        row = self.rows().get(href)
        if row is None:
            raise ValueError(f"{href!r} was stored but cannot be read back")
        return self.item(row, stored.serialize()), (self.item(old) if old else None)

    def delete(self, href: str) -> None:
        self._check_writable()
        if not self.whole_book:
            super().delete(href)
            return
        if href not in self.rows():
            raise radicale.ComponentNotFoundError(href)
        self.source.delete(href)

    def visible_changes(self, hrefs: Iterable[str]) -> list[str]:
        """The changed hrefs a sync may report (see the module text)."""
        changed = list(hrefs)
        if self.whole_book:
            return changed
        rows = self.rows()
        if any(h not in rows for h in changed):
            # Gone from the category, or never in it: which, the index cannot say, and
            # naming it would name a card outside the share. The client starts over.
            raise ValueError("cards outside this shared category changed; sync again from "
                             "the start")
        return changed


def open_share(collection: Collection, grants_store: Any) -> SharedBook | None:
    """The shared book ``collection`` is, checked against its owner's grants now; or None.

    None: not a shared book. A SharedBook that is not ``open``: a closed share.
    """
    marker = read_marker(collection.folder)
    if marker is None:
        return None
    owner, ident = marker
    reader = collection.path.strip("/").partition("/")[0]
    record = None
    try:
        for found in grants_store.read(owner)["grants"]:
            if (found.get("kind") == "share" and found.get("id") == ident
                    and found.get("state") == "accepted" and found.get("with") == reader
                    and reader != owner):
                record = found
    except Refused:
        record = None
    return SharedBook(collection, record, owner)
