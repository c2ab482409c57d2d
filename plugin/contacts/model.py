"""The Contacts model outside HTTP: one user's address book (AllContacts).

The CLI, the importers and the JSON API change contacts through this module,
never by writing files themselves, so every write goes through the same
storage code as a CardDAV PUT: Radicale's storage lock (shared with a running
server), atomic files, the index and sync tokens kept right, and the same
validation and fidelity fixes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts.backup import restorable_name
from cardfile.plugin.contacts.card_check import accept_card
from cardfile.plugin.contacts.storage import Collection
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import ItemRow

GROUP_KINDS = frozenset({"group"})


@dataclass(frozen=True)
class Contact:
    href: str
    uid: str
    etag: str
    fn: str
    mtime_ns: int
    text: str


def book_path(user: str, book: str) -> str:
    for part in (user, book):
        if not radicale.is_safe_name(part):
            raise Refused(400, f"invalid name {part!r}")
    return f"/{user}/{book}/"


#: The book every user has: the server makes it at the user's first login.
DEFAULT_BOOK = "contacts"


@contextlib.contextmanager
def open_book(storage: Any, user: str, book: str = DEFAULT_BOOK, mode: str = "r",
              create: bool = False) -> Iterator[AddressBook]:
    """An address book under Radicale's storage lock (``mode`` "r" or "w")."""
    path = book_path(user, book)
    with storage.acquire_lock(mode, user):
        collection = next(iter(storage.discover(path)), None)
        if not isinstance(collection, Collection) or collection.tag != "VADDRESSBOOK":
            if collection is not None:
                raise Refused(409, f"{path} exists but is not an address book")
            if not (create and mode == "w"):
                raise Refused(404, f"there is no address book {path}")
            storage.create_collection(f"/{user}/")
            storage.create_collection(path, props={"tag": "VADDRESSBOOK",
                                                   "D:displayname": book.capitalize()})
            collection = next(iter(storage.discover(path)))
        assert isinstance(collection, Collection)
        yield AddressBook(collection, user, book)


#: How long one hold of the write lock lasts when many cards are written
#: (``in_short_holds``). A card costs 3-5 ms there (its file, the index, the
#: history) and every other user waits meanwhile: an import's batches of 500
#: held them up 1.7-2.3 s at a time, for the same total time.
HOLD_SECONDS = 0.1
#: The pause between two such holds. Releasing a ``flock`` wakes a waiter but
#: does not hand it the lock: taken again at once, the next hold mostly came
#: first, and a waiting request could wait out every hold (once in a test on
#: PostgreSQL, none of another user's saves was answered during a rename of
#: 1,000 members). The pause lets the waiters in first.
PAUSE_SECONDS = 0.01

Held = TypeVar("Held")
Item = TypeVar("Item")


def in_short_holds(hold: Callable[[], contextlib.AbstractContextManager[Held]],
                   items: Sequence[Item], work: Callable[[Held, Item], None]) -> None:
    """``work(held, item)`` for each item in order, in as many holds of the lock
    (``hold()``, e.g. an ``open_book`` in "w") as keep each to ``HOLD_SECONDS``
    (and at least one item), so a running server answers between them.

    What one item does is atomic; a request between two holds sees the work
    part done, as it would see one client's PUTs part done.
    """
    position = 0
    while position < len(items):
        if position:
            time.sleep(PAUSE_SECONDS)  # (waiting requests take the lock first)
        with hold() as held:
            until = time.monotonic() + HOLD_SECONDS
            while position < len(items):
                work(held, items[position])
                position += 1
                if time.monotonic() >= until:
                    break


class AddressBook:
    """AllContacts of one book: list, read, create/update by UID, delete."""

    def __init__(self, collection: Collection, user: str, name: str) -> None:
        self.collection = collection
        self.user = user
        self.name = name

    @property
    def path(self) -> str:
        return self.collection.path

    def rows(self) -> dict[str, ItemRow]:
        """href -> index row of every contact (group cards excluded)."""
        return {href: row for href, row in self.collection._all_rows().items()
                if row.kind not in GROUP_KINDS}

    def find(self, key: str) -> ItemRow | None:
        """A contact by UID or by href: what a user names a contact by (the CLI's
        and the API's IDs). A card's own UID is looked up with ``find_uid``."""
        if self.collection._published is not None:  # a view of another book: its rows only
            rows = self.rows()
            return rows.get(key) or next((r for r in rows.values() if r.uid == key), None)
        index, coll = self.collection._index, self.collection._coll()
        hrefs = index.hrefs_with_uid(coll, key)
        row = index.row(coll, hrefs[0] if hrefs else key)
        return row if row is not None and row.kind not in GROUP_KINDS else None

    def find_uid(self, uid: str) -> ItemRow | None:
        """The contact whose UID is ``uid``: the one a card with that UID updates.

        Never the card that merely has ``uid`` as its file name: an imported
        card with ``UID:x.vcf`` replaced the unrelated contact stored as
        ``x.vcf``. Only a card without a UID of its own is known by its file
        name (as its history records it).
        """
        row = self.find(uid)
        return row if row is not None and (row.uid == uid or not row.uid) else None

    def read(self, row: ItemRow) -> Contact:
        item = self.collection._item(row)
        return Contact(row.href, row.uid, row.etag, row.fn, row.mtime_ns, item.serialize())

    def texts_after_lock(self, rows: Iterable[ItemRow]) -> list[str]:
        """The texts of ``rows`` (listed under the lock), read once it is released:
        call it after the ``open_book`` block. An export read 100,000 cards under
        the lock, 1.9 s in which no other user could write. A card deleted
        meanwhile is left out, as if the export had come after the delete."""
        return list(self.each_text_after_lock(rows))

    def each_text_after_lock(self, rows: Iterable[ItemRow]) -> Iterator[str]:
        """``texts_after_lock`` one at a time: a listing of 100,000 cards need not
        hold them all (440 MB, and Python's collector going over them again and
        again)."""
        for row in rows:
            try:
                yield self.read(row).text
            except RuntimeError:  # vanished since the index saw it
                continue

    def category_rows(self, name: str) -> list[ItemRow]:
        """Every contact in the category ``name``, as the index groups them (as the
        category lists count them and the API's export picks them), in file-name
        order; Refused (404) if the book has no such category."""
        from cardfile.plugin.contacts import categories  # (imports storage, as this does)

        collection = self.collection
        coll, scope = collection.index_scope(name)
        rows = collection._index.all_rows(coll, collection.storage.max_resource_size, scope)
        if not rows and collection._published is None and categories.Categories(
                collection).get(name) is None:
            raise Refused(404, f"there is no category {name!r} in {self.path}")
        return rows

    def get(self, key: str) -> Contact:
        row = self.find(key)
        if row is None:
            raise Refused(404, f"no contact {key!r} in {self.path}")
        return self.read(row)

    def put(self, text: str, href: str | None = None, if_match: str | None = None,
            create_only: bool = False) -> Contact:
        """Store one vCard: updates the card with the same UID, else creates one.

        The card passes the same gate as a CardDAV PUT (``card_check.accept_card``:
        size limit, UTF-8, repairs, the line and reason when it cannot be read),
        then is stored as given (not vobject's re-serialisation). A card over
        ``max_resource_size`` is refused for every way in: CardDAV never serves
        such a card, so storing it would hide it from every listing.
        """
        sent = accept_card(text, href or "", _max_resource_size(self.collection))
        text, card, uid = sent.text, sent.component, sent.uid
        existing = self.find_uid(uid)
        if existing is not None:
            if create_only:
                raise Refused(412, f"a contact with UID {uid!r} exists already")
            if href is not None and href != existing.href:
                raise Refused(409, f"UID {uid!r} is already used by {existing.href}")
            href = existing.href
        elif if_match is not None:
            raise Refused(412, f"no contact with UID {uid!r} to update")
        if existing is not None and if_match not in (None, "*") and if_match != existing.etag:
            raise Refused(412, "the contact changed since it was read (ETag "
                                 f"{existing.etag}, not {if_match})")
        if href is None:
            href = self.free_href(uid)
        elif not radicale.is_safe_name(href) or not restorable_name(href):
            raise Refused(400, f"invalid contact name {href!r}")
        radicale.check_and_sanitize_items(
            [card], max_vevent_rrule_occurrence=0, is_collection=False, tag="VADDRESSBOOK")
        # The card as parsed by the gate goes along: Radicale's prepare() would parse the
        # text again for its UID (a third of the CPU of an import's card).
        item = radicale.Item(collection_path=self.collection.path, text=text, vobject_item=card)
        item.prepare()
        stored, _ = self.collection.upload(href, item)
        return Contact(href, uid, stored.etag, "", 0, stored.serialize())

    def delete(self, key: str, if_match: str | None = None) -> None:
        row = self.find(key)
        if row is None:
            raise Refused(404, f"no contact {key!r} in {self.path}")
        if if_match not in (None, "*") and if_match != row.etag:
            raise Refused(412, "the contact changed since it was read")
        self.collection.delete(row.href)

    def free_href(self, uid: str) -> str:
        """A file name for a new contact with ``uid``: ``UID.vcf`` when that is free and safe."""
        view = self.collection._published
        target = view.source if view is not None else self.collection  # where files go
        rows = target._index.row
        coll = target._coll()
        candidate = f"{uid}.vcf"
        if (radicale.is_safe_name(candidate) and len(candidate) < 200
                and restorable_name(candidate)
                and rows(coll, candidate) is None
                and not os.path.lexists(os.path.join(target.folder, candidate))):
            return candidate
        return radicale.find_available_uid(
            lambda h: rows(coll, h) is not None, ".vcf")


def _max_resource_size(collection: Collection) -> int:
    configuration = getattr(getattr(collection, "_storage", None), "configuration", None)
    try:
        return int(configuration.get("server", "max_resource_size")) if configuration else 0
    except (KeyError, ValueError, TypeError):
        return 0
