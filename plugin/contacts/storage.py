"""Radicale storage whose address books are answered from the card index.

Everything stays Radicale's ``multifilesystem`` layout (one ``.vcf`` per card,
atomic writes, Radicale's storage lock), so khard, vdirsyncer's filesystem
storage and a backup tool read the folder as it is. What changes is where
answers come from: listing, ``has_uid``, ``addressbook-query``,
``sync-collection``, the collection's etag/ctag and last-modified come from
the SQLite index (``index.py``) instead of reading and parsing every card, so
a request costs the same at 100 cards as at 100,000. Only the cards a
response returns are read from disk, and they are served byte for byte.

Collections that are not address books (a calendar someone created) keep
Radicale's own behaviour untouched.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import heapq
import itertools
import json
import marshal
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from hashlib import sha256
from typing import Any, ClassVar, NamedTuple

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import (
    categories,
    published,
    request_notes,
    sent_card,
    shared_book,
    state_files,
    views,
)
from cardfile.plugin.contacts.backup import restorable_name
from cardfile.plugin.contacts.group_members import GroupMembers
from cardfile.plugin.contacts.history import (
    BookHistory,
    HistoryStores,
    settings_from,
)
from cardfile.plugin.contacts.shared_books import CachedBook, SharedBooks
from cardfile.plugin.contacts.sources import registry as source_registry
from cardfile.plugin.radicale_adapter import radicale_logger as logger
from cardfile.plugin.refused import Refused
from cardfile.plugin.store import carddav_query as query
from cardfile.plugin.store import parent_death
from cardfile.plugin.store.background import Repeating
from cardfile.plugin.store.card_file import (
    flushes_after,
    read_to_end,
    remove_staged,
    staged,
    write_card_file,
)
from cardfile.plugin.store.card_reads import opened_ahead, served
from cardfile.plugin.store.index import CardIndex, CardRecord, ItemRow, card_record, etag_of
from cardfile.plugin.store.pg_files import PgFiles
from cardfile.plugin.store.pg_schema import SchemaMismatch
from cardfile.plugin.store.postgres import PgStore, display_url
from cardfile.plugin.store.rows import SyncState
from cardfile.plugin.store.turnstile import ReadSlots, Turnstile
from cardfile.plugin.vcard import card_fields

SYNC_TOKEN_PREFIX = "http://cardfile.org/ns/sync/"
_NOT_A_CARD_SIZE = 256 * 1024 * 1024
INDEX_FILE_NAME = "cardfile-index.sqlite3"
#: Radicale's atomic writes go through temporary files named so (``atomic_write``).
_TEMP_FILE_PREFIX = ".Radicale.tmp-"
#: The data folder's folder of cards written before their save took the lock.
STAGING_FOLDER_NAME = ".staged-cards"
#: The ``[storage]`` option ``cardfile serve`` sets for its processes (Storage.generation).
START_GENERATION = "start_generation"


def http_date(mtime_ns: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime_ns / 1e9))


class _GroupCache(NamedTuple):
    """A book's group cards (``Storage.group_cards``) and what they were made of."""

    #: (index epoch, collection id, items seq, category store mtime) when made.
    key: tuple[str, int, int, int]
    cards: dict[str, tuple[str, str]]
    #: href -> (UID, etag) of ``cards``: what the index records of them.
    current: dict[str, tuple[str, str]]
    #: href -> (UID, (key, spelling) pairs) of every card with a category.
    by_card: dict[str, tuple[str, frozenset[tuple[str, str]]]]
    #: The members of each category, counted from ``by_card``.
    members: GroupMembers


#: Changes since the group cards were made, at most, that are applied card by
#: card (more: every card's categories are read again).
_GROUP_REUSE_AT_MOST = 2000


class GroupCard(NamedTuple):
    """A group card as a groups view serves it (``Storage.served_group_cards``)."""

    uid: str
    text: str
    etag: str
    size: int


def decode_card_file(raw: bytes) -> str:
    """Card files are UTF-8; a BOM is tolerated, as editors write one (``card_reads.served``)."""
    return served(raw).decode("utf-8")


#: Set in a thread while its book texts are left out (``book_text_left_out``).
_book_text = threading.local()


@contextlib.contextmanager
def book_text_left_out() -> Iterator[None]:
    """Within, in this thread, an address book serialises as ``""``.

    Radicale answers a book's ``getcontentlength`` by serialising the whole
    book: every card read, under the storage lock, 1.8 s at 100,000 cards.
    The fast path (``dav/fastpath.py``) asks Radicale for the book's other
    props within this, and writes the length itself from ``card_reads.served_size``.
    """
    _book_text.left_out = True
    try:
        yield
    finally:
        _book_text.left_out = False


def indexed_item(collection: Collection, row: ItemRow, text: str | None = None,
                 folder: str | None = None) -> radicale.LazyItem:
    """An item described by its index row; its text is read only when needed.

    A PROPFIND of a 100,000-card book needs only hrefs and etags: building
    items from the index avoids opening a single file.
    """
    return radicale.LazyItem(collection, row.href, row.etag, row.uid, http_date(row.mtime_ns),
                             os.path.join(folder or collection.folder, row.href), text,
                             _read_card_file)


def read_card_file(folder: str, href: str, book_path: str
                   ) -> tuple[str, card_fields.CardFields] | None:
    """A card file's text and the fields the index keeps, or None (vanished, unreadable)."""
    try:
        fd: int | OSError = os.open(os.path.join(folder, href), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        fd = e
    return _read_opened_card(fd, href, book_path)


def _read_opened_card(fd: int | OSError, href: str, book_path: str
                      ) -> tuple[str, card_fields.CardFields] | None:
    """``read_card_file`` of the card open as ``fd`` (or the error opening it met);
    closes ``fd``."""
    try:
        if isinstance(fd, OSError):
            raise fd
        # Cards over max_resource_size are indexed but never served (see
        # _all_rows), so changing the limit needs no rebuild; only files
        # too big to be cards at all are skipped here.
        try:
            size = os.fstat(fd).st_size
            if size > _NOT_A_CARD_SIZE:
                logger.warning("Skipping %r in %r: %d bytes is too large for a card", href,
                               book_path, size)
                return None
            text = decode_card_file(read_to_end(fd, size))
        finally:
            os.close(fd)
        return text, card_fields.extract(text)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, card_fields.CardSyntaxError) as e:
        logger.warning("Skipping unreadable card %r in %r: %s", href, book_path, e)
        return None


def read_card_record(folder: str, href: str, book_path: str) -> CardRecord | None:
    """What the index stores of a card file, or None (vanished, unreadable)."""
    loaded = read_card_file(folder, href, book_path)
    return card_record(*loaded) if loaded is not None else None


def _read_records(folder: str, book_path: str, hrefs: list[str]) -> list[CardRecord | None]:
    """The records of a batch of a rebuild's cards, asked of the disk a few at a time."""
    return [card_record(*loaded) if (loaded := _read_opened_card(fd, href, book_path))
            else None for href, fd in opened_ahead(folder, hrefs, str)]


def _read_records_packed(folder: str, book_path: str, hrefs: list[str]) -> bytes:
    """``_read_records`` as one ``marshal`` blob of plain tuples, for a reader process.

    A batch went back pickled as ``CardRecord`` objects: at 100,000 cards the
    pickling cost the readers 0.7 CPU-s and the unpickling cost the index's
    writer, which waits for nothing else, 1.2 s. Plain tuples marshalled take
    a third of that on both sides. ``marshal`` is safe here because the bytes
    come from a process of this same interpreter, never from a client.
    """
    return marshal.dumps([None if record is None else (*record[:-1], record.props)
                          for record in _read_records(folder, book_path, hrefs)])


def _unpacked(blob: bytes) -> list[CardRecord | None]:
    return [None if fields is None else CardRecord(*fields) for fields in marshal.loads(blob)]


#: Writes of one process between two copies of the index's log into the index. A
#: save adds 17-27 pages to the log (50 saves into a 100,000-card book: 846 pages;
#: 16 saves into a small one: 435), so with the two workers of a 2-core machine
#: SQLite's own copy at 1,000 pages seldom comes; with four, now and then.
_LOG_COPY_EVERY = 16
#: Reads of one process that hold the storage lock at once; the others wait for a
#: slot, in the order they came (``turnstile.ReadSlots``), before the turnstile.
#: Python runs one thread of a process at a time, so more readers inside only
#: share the interpreter lock: in the 50-client mix (a worker runs up to 64
#: request threads) a read that costs 0.3 ms alone held the lock 1.5-2.2 ms, and
#: each save waited for all of them to leave. With two slots, three A/B pairs at
#: the same hour: PUT p50 101-131 -> 30-32 ms, p99 of all requests 196-271 ->
#: 163-178 ms, requests/s about the same. A read that holds a slot long (a query
#: the index cannot answer, read by Radicale over the whole book) makes its
#: process's other reads wait, as it already made every request wait once a save
#: queued behind it; answers are sent after the lock is released, so a slow
#: client holds no slot.
READS_AT_ONCE = 2
#: Cards one reader process parses per batch.
_PARALLEL_BATCH = 500
#: Batches handed out ahead per reader process: enough to keep each busy, few
#: enough that parsed cards do not pile up while the index takes them.
_BATCHES_AHEAD = 2


def read_in_parallel(folder: str, book_path: str, hrefs: list[str]
                     ) -> Iterator[CardRecord | None]:
    """Every card of ``hrefs`` read and made an index record, in order, by one process
    per core.

    A first index build (or a rebuild) of 100,000 cards spends most of its
    time parsing vCards and deriving what the index keeps (etags, sort keys,
    search forms), which one process does on one core. The processes are
    forked when this one runs no other thread (the server's check at start,
    ``cli/book_check.py``: no interpreter start, no imports); in a server's
    worker, which runs threads, they are started fresh (spawn). Results come
    back in order, a batch at a time, while the caller writes the ones before
    into the index; only a few batches are handed out ahead, so a slower
    index does not make the parsed cards pile up in memory.
    """
    batches = [hrefs[i:i + _PARALLEL_BATCH] for i in range(0, len(hrefs), _PARALLEL_BATCH)]
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(batches) < 2:
        yield from _read_records(folder, book_path, hrefs)
        return
    start = "fork" if threading.active_count() == 1 else "spawn"
    read = functools.partial(_read_records_packed, folder, book_path)
    # A forked reader shares this process's open files, the storage lock's
    # among them: it must not outlive a kill -9 of this process (parent_death).
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(start),
            initializer=parent_death.end_with, initargs=(os.getpid(),)) as pool:
        waiting = iter(batches)
        ahead = collections.deque(pool.submit(read, batch)
                                  for batch in itertools.islice(waiting, workers * _BATCHES_AHEAD))
        while ahead:
            done = ahead.popleft().result()
            following = next(waiting, None)
            if following is not None:
                ahead.append(pool.submit(read, following))
            yield from _unpacked(done)


def _read_card_file(path: str) -> str:
    with open(path, "rb") as f:
        return decode_card_file(f.read())


class Collection(radicale.AdapterCollection):
    """A Radicale collection; address books are served from the index."""

    @property
    def storage(self) -> Storage:
        storage = super().storage
        assert isinstance(storage, Storage)
        return storage

    def serialize(self, *args: Any, **kwargs: Any) -> str:
        if getattr(_book_text, "left_out", False) and self.tag == "VADDRESSBOOK":
            return ""  # its length is written by whoever left it out
        return str(super().serialize(*args, **kwargs))

    def __init__(self, storage_: Storage, path: str,
                 filesystem_path: str | None = None) -> None:
        super().__init__(storage_, path, filesystem_path)
        self._coll_id: int | None = None
        #: With the PostgreSQL store: the database's ids and revision of this book's cache.
        self.cached_book: CachedBook | None = None
        self._rows: dict[str, ItemRow] | None = None
        self._groups: dict[str, radicale.Item] | None = None
        self._publication: published.PublishedBook | None | bool = False
        #: Radicale's temporary files the last ``reconcile`` saw (None: it did not run).
        self.temp_files_seen: list[os.DirEntry[str]] | None = None

    # -- plumbing ----------------------------------------------------------
    @property
    def _indexed(self) -> bool:
        return self.tag == "VADDRESSBOOK"

    @property
    def _index(self) -> CardIndex:
        return self.storage.card_index

    def _coll(self) -> int:
        """This collection's index id, after making the index match the disk.

        One ``stat`` of the folder per request: a card added, removed or
        renamed by another program changes the folder's mtime, and then the
        folder is compared file by file with the index. Each process also
        compares every book once (a card edited in place while no server ran
        leaves the folder's mtime alone), unless a process of the same start
        of the server already did or is doing it (``Storage.checked_this_start``,
        ``open_unchanged``): then the rescans (``Storage._sweep``) watch for
        edits in place.
        """
        if self._coll_id is None:
            st = os.stat(self.folder)
            coll, recorded_mtime = self._index.collection_id(self.path, st.st_ino)
            shared = self.storage.shared
            if shared is not None and not self._staging:
                # The folder is a cache of the database: brought up to its revision,
                # once per hold of the storage lock (see Storage.acquire_lock).
                held = self.storage.books_caught_up()
                self.cached_book = held.get(self.path) if held is not None else None
                if self.cached_book is None:
                    self.cached_book = shared.catch_up(self, coll)
                    self.storage.note_caught_up(self.path, self.cached_book)
                self._coll_id = coll
                if self.storage.write_locked():
                    self._convert_group_files()
                return coll
            if recorded_mtime != st.st_mtime_ns:
                self.reconcile(coll, st.st_mtime_ns)
            elif not self.storage.was_reconciled(self.path):
                if self.storage.checked_this_start(coll):
                    self.storage.mark_reconciled(self.path)
                else:
                    self.reconcile(coll, st.st_mtime_ns)
            self._coll_id = coll
            if self.storage.write_locked():
                self._convert_group_files()
        return self._coll_id

    def open_unchanged(self) -> bool:
        """At a server's start, under the write lock: open the book without comparing
        its files if its folder's mtime is the one the index recorded, and say so.

        A card added, removed or renamed (by anyone, a server's own writes
        included) changes the folder's mtime; an edit in place does not, and is
        what the comparison that ``Storage.warm_up`` makes after the lock is let
        go finds, as a rescan would. The book is recorded as checked by this
        start, so the workers trust its index meanwhile.
        """
        if self.storage.shared is not None or self._coll_id is not None:
            return False
        st = os.stat(self.folder)
        coll, recorded_mtime = self._index.collection_id(self.path, st.st_ino)
        if recorded_mtime != st.st_mtime_ns:
            return False
        self._index.record_check(coll, self.storage.generation)
        self._coll_id = coll
        if self.storage.write_locked():
            self._convert_group_files()
        return True

    def forget_start_check(self) -> None:
        """Undo ``open_unchanged``'s record when the comparison it promised was not
        made: each process then compares the book itself at its first use."""
        if self._coll_id is not None:
            with contextlib.suppress(Exception):  # (its folder's row may be gone)
                self._index.forget_check(self._coll_id)

    def reconcile(self, coll: int | None = None, dir_mtime_ns: int | None = None) -> int:
        """Compare the folder with the index and fix the index; return changes."""
        if coll is None or dir_mtime_ns is None:
            st = os.stat(self.folder)
            coll, _ = self._index.collection_id(self.path, st.st_ino)
            dir_mtime_ns = st.st_mtime_ns
        # Changes to the index after this are its writers' (a rescan holds no lock).
        listed_after = self._index.items_seq(coll)
        # (size, mtime) only: a stat result per file of a 100,000-card book held
        # 50 MB for the comparison, in whichever worker made it.
        found: dict[str, tuple[int, int]] = {}
        temp_files: list[os.DirEntry[str]] = []
        # Each file's stat relative to the folder (fstatat): DirEntry.stat() looks up
        # the whole path each time, and took twice as long at 100,000 cards.
        folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if (entry.is_file() and radicale.is_safe_name(entry.name)
                            and _utf8_name(entry.name, self.path)):
                        try:
                            st = os.stat(entry.name, dir_fd=folder_fd)
                        except FileNotFoundError:  # removed since it was listed
                            continue
                        found[entry.name] = (st.st_size, st.st_mtime_ns)
                    elif entry.name.startswith(_TEMP_FILE_PREFIX):
                        temp_files.append(entry)
        finally:
            os.close(folder_fd)
        self.temp_files_seen = temp_files
        changes = self._index.apply_scan(coll, dir_mtime_ns, found, self._read_record,
                                         functools.partial(read_in_parallel, self.folder,
                                                           self.path),
                                         generation=self.storage.generation,
                                         listed_after=listed_after)
        self.storage.mark_reconciled(self.path)
        self._rows = None
        if changes:
            logger.info("Index of %r updated from disk: %d change(s)", self.path, changes)
        return changes

    def rescan(self, interval_s: float) -> int:
        """``reconcile``, unless another process compared this book in the last
        ``interval_s`` seconds (a server's workers each rescan on their own timer)."""
        st = os.stat(self.folder)
        coll, _ = self._index.collection_id(self.path, st.st_ino)
        if not self._index.claim_rescan(coll, int(interval_s * 1e9)):
            return 0
        return self.reconcile(coll, st.st_mtime_ns)

    def _read_card(self, href: str) -> tuple[str, card_fields.CardFields] | None:
        return read_card_file(self.folder, href, self.path)

    def _read_record(self, href: str) -> CardRecord | None:
        return read_card_record(self.folder, href, self.path)

    def _item(self, row: ItemRow, text: str | None = None) -> radicale.LazyItem:
        if self._published is not None:
            return self._published.item(row, text)
        return indexed_item(self, row, text)

    @property
    def _published(self) -> published.PublishedBook | None:
        """The category this book publishes from another book, if it is one."""
        if self._publication is False:
            marker = published.read_marker(self.folder) if self._indexed else None
            source = published.own_source(self.path, marker[0]) if marker else None
            if marker and source is None:
                logger.warning("Ignoring the published-book marker of %r: its source %r is "
                               "not another book of the same user", self.path, marker[0])
            self._publication = (published.PublishedBook(self, source, marker[1])
                                 if marker and source else None)
            if self._publication is None and self._indexed:
                # another user's book shared with this one's owner (shared_book.py)
                from cardfile.plugin.contacts.grants import friends  # (imports this module)

                self._publication = shared_book.open_share(
                    self, friends.grants_for(self.storage.data_folder).store)
        assert self._publication is not True
        return self._publication or None

    def _sync_coll(self) -> int:
        """The index collection whose changes this book shows."""
        return self._published.sync_coll() if self._published else self._coll()

    def index_scope(self, category: str | None) -> tuple[int, str | None]:
        """(index collection, category) for an index query of this book's contacts.

        A published or shared book is a view of another book: its queries run
        on that book's index, limited to the view's category (published.py).
        """
        if self._published is not None:
            return self._published.scope(category)
        return self._coll(), category

    def _all_rows(self) -> dict[str, ItemRow]:
        """Every servable contact: group-card files and oversized cards excluded."""
        if self._rows is None and self._published is not None:
            self._rows = self._published.rows()
        if self._rows is None:
            limit = self.storage.max_resource_size
            self._rows = {href: row for href, row in self._index.rows(self._coll()).items()
                          if row.kind != "group" and row.size <= limit}
        return self._rows

    def listing(self) -> Iterable[tuple[str, str, int, int]]:
        """(href, etag, mtime_ns, size) of every servable contact, in href order; in
        the groups view with the group cards among them, as Radicale lists them."""
        listed: Iterable[tuple[str, str, int, int]]
        if self._published is not None or self._rows is not None:
            rows = self._all_rows()
            listed = [(href, rows[href].etag, rows[href].mtime_ns, rows[href].size)
                      for href in sorted(rows)]
        else:
            listed = self._index.listing(self._coll(), self.storage.max_resource_size)
        groups = self.group_rows()
        if not groups:
            return listed
        # (A file a hand named as a group card: listed once, as the group card, as
        # Radicale lists it.)
        names = {row[0] for row in groups}
        return heapq.merge((row for row in listed if row[0] not in names), groups)

    def group_rows(self) -> list[tuple[str, str, int, int]]:
        """(href, etag, mtime_ns, size) of the group cards in href order: the groups
        view's, none in any other. Their date is the book's, as Radicale's items
        carry it (``_group_items``); their size is their text's in UTF-8."""
        if not self._groups_view:
            return []
        cards = self._served_group_cards()
        if not cards:
            return []
        modified = self.last_modified_ns()
        return sorted((href, card.etag, modified, card.size) for href, card in cards.items())

    def group_texts(self) -> dict[str, tuple[str, str]]:
        """href -> (text, etag) of the group cards the groups view shows (none in
        any other)."""
        if not self._groups_view:
            return {}
        return {href: (card.text, card.etag) for href, card in self._served_group_cards().items()}

    def card_count(self, at_most: int | None = None) -> int:
        """How many contacts the index holds for this book (no rows loaded), up to
        ``at_most``."""
        return self._index.contact_count(self._coll(), at_most)

    # -- views ---------------------------------------------------------------
    @property
    def _groups_view(self) -> bool:
        return (self._indexed and views.current() in views.GROUP_VIEWS
                and self._published is None)

    def _group_items(self) -> dict[str, radicale.Item]:
        """The synthesised group cards of this book (groups view only).

        Recomputed only when a card or the category store changed; the
        result is recorded in the index so sync-collection can report
        exactly the group cards that changed.
        """
        if self._groups is None:
            self._groups = {}
            cards = self._served_group_cards()
            modified = self.last_modified if cards else ""
            for href, card in cards.items():
                self._groups[href] = radicale.Item(
                    collection=self, href=href, text=card.text, etag=card.etag, uid=card.uid,
                    name="VCARD", component_name="", last_modified=modified)
        return self._groups

    def _served_group_cards(self) -> dict[str, GroupCard]:
        """The group cards as the groups view serves them (in the groups view only)."""
        return self.storage.served_group_cards(self, views.current() == views.GROUPS4_VIEW)

    def _is_group_card(self, href: str) -> bool:
        """Whether ``href`` is a group card of the groups view.

        The group cards are made only when ``href`` may be one: making them
        reads every membership, 1 s at 100,000 cards, and every change of a
        card makes them again, so each PUT and GET of an Apple client took a
        second under the lock. A contact's href is not one here (a contact
        file given a group card's name, which only a hand can do, is got as
        the contact but listed as the group card); a new name is one only if a category
        has it (0.03 s at 100,000 cards).
        """
        if not self._groups_view:
            return False
        row = self._index.row(self._coll(), href)
        if row is not None and row.kind != "group":
            return False
        if self._groups is None and href not in self.storage.category_hrefs(self):
            return False
        return href in self._group_items()

    def virtual_item(self, href: str) -> radicale.Item | None:
        """An item that has no file here: a group card, or a published member."""
        if self._groups_view:
            return self._group_items()[href] if self._is_group_card(href) else None
        if self._published is not None:
            return self.get_card(href)
        return None

    def note_own_write(self) -> None:
        """Record the folder's mtime after a write of ours (not an outside change)."""
        self._index.set_dir_mtime(self._coll(), os.stat(self.folder).st_mtime_ns)
        self._forget_rows()

    def _forget_rows(self) -> None:
        """Drop this object's copies of the book's rows and group cards after a write.

        A share of the whole book reads the card it just stored back through
        them; on PostgreSQL they were kept, and a card written through a
        read-write share was stored but answered 400 "cannot be read back".
        """
        self._rows = None
        self._groups = None

    def _convert_group_files(self) -> None:
        """Group cards found as files become categories (needs the write lock).

        On PostgreSQL they are cards of the database (``cardfile db import`` of
        an Apple export): they leave it like any deleted card, so no server
        keeps an unserved group file.
        """
        rows = self._index.group_files(self._coll())
        if not rows:
            return
        book = categories.Categories(self)
        for row in rows:
            try:
                book.absorb_group_card(row.href, self._item(row).serialize())
            except (RuntimeError, card_fields.CardSyntaxError) as e:
                logger.warning("Could not convert group card %r in %r: %s", row.href,
                               self.path, e)
                continue
            shared = self.storage.shared
            if shared is not None:
                self.cached_book = shared.delete_card(self, self._coll(), row.href, row.etag)
                self.storage.note_caught_up(self.path, self.cached_book)
            else:
                os.remove(os.path.join(self.folder, row.href))
                self._index.remove(self._coll(), [row.href])
            logger.info("Converted group card %r in %r into category %r", row.href,
                        self.path, row.fn)
        if self.storage.shared is None:
            self.note_own_write()
        else:
            self._forget_rows()

    # -- reading -------------------------------------------------------------
    def list_hrefs(self) -> Iterator[str]:
        if not self._indexed:
            yield from super().list_hrefs()
            return
        hrefs = set(self._all_rows())
        if self._groups_view:
            hrefs |= self._group_items().keys()
        yield from sorted(hrefs)

    def get_card(self, href: str, verify_href: bool = True) -> radicale.Item | None:
        if not self._indexed:
            return super().get_card(href, verify_href)
        if not radicale.is_safe_name(href):
            return None
        if self._is_group_card(href):
            return self._group_items()[href]
        if self._published is not None:
            row = self._all_rows().get(href)
            return self._item(row) if row else None
        if self._rows is not None and not verify_href:
            row = self._rows.get(href)
            return self._item(row) if row else None
        coll = self._coll()
        row = self._index.row(coll, href)
        if verify_href and self.storage.shared is None:
            # A single-item access (GET, PUT, DELETE) also checks the file
            # itself, so an edit made in place by another program is seen
            # before its etag is compared with the client's If-Match.
            path = os.path.join(self.folder, href)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                if row is not None:
                    self._index.remove(coll, [href])
                return None
            if row is None or (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns):
                loaded = self._read_card(href)
                if loaded is None:
                    return None
                row = self._index.put(coll, href, loaded[0], st.st_size, st.st_mtime_ns,
                                      loaded[1])
        if row is None or row.kind == "group" or row.size > self.storage.max_resource_size:
            return None
        return self._item(row)

    def get_multi(self, hrefs: Iterable[str]
                  ) -> Iterator[tuple[str, radicale.Item | None]]:
        if not self._indexed:
            yield from super().get_multi(hrefs)
            return
        wanted = list(hrefs)
        groups = self._group_items() if self._groups_view else {}
        rows = self._servable_rows(wanted)
        for href in wanted:
            if href in groups:
                yield href, groups[href]
                continue
            row = rows.get(href) if radicale.is_safe_name(href) else None
            yield href, (self._item(row) if row else None)

    def _servable_rows(self, hrefs: list[str]) -> dict[str, ItemRow]:
        """Rows of ``hrefs``: looked up one by one for a few, all at once for many."""
        if self._rows is not None or self._published is not None or len(hrefs) > 2000:
            return self._all_rows()
        limit = self.storage.max_resource_size
        return {href: row for href, row in self._index.rows_for(self._coll(), hrefs).items()
                if row.kind != "group" and row.size <= limit}

    def servable_etags(self, hrefs: list[str]) -> dict[str, tuple[str, int]]:
        """href -> (etag, size) of the servable cards among ``hrefs`` (a multiget's
        lookup: ``_servable_rows`` without the rest of each row), the groups
        view's group cards among them."""
        found: dict[str, tuple[str, int]]
        if self._rows is not None or self._published is not None or len(hrefs) > 2000:
            rows = self._all_rows()
            found = {href: (rows[href].etag, rows[href].size) for href in hrefs
                     if href in rows}
        else:
            found = self._index.servable_for(self._coll(), hrefs,
                                             self.storage.max_resource_size)
        if self._groups_view and len(found) < len(hrefs):  # (only those not found may be)
            cards = self._served_group_cards()
            found.update((href, (card.etag, card.size)) for href in hrefs
                         if (card := cards.get(href)) is not None)
        return found

    def get_all(self) -> Iterator[radicale.Item]:
        if not self._indexed:
            yield from super().get_all()
            return
        for _, row in sorted(self._all_rows().items()):
            yield self._item(row)
        if self._groups_view:
            yield from self._group_items().values()

    def get_filtered(self, filters: Iterable[ET.Element]
                     ) -> Iterator[tuple[radicale.Item, bool]]:
        if not self._indexed:
            yield from super().get_filtered(filters)
            return
        filters = list(filters)
        rows = self.query_rows(filters)
        if rows is None:
            for item in self.get_all():
                yield item, False
            return
        for row in rows:
            yield self._item(row), True
        if self._groups_view:
            # Group cards are not in the index: Radicale tests them itself.
            for item in self._group_items().values():
                yield item, False

    def query_rows(self, filters: list[ET.Element]) -> list[ItemRow] | None:
        """The servable cards an ``addressbook-query`` filter selects, from the index.

        None when the filter needs Radicale's card-by-card test (query.py).
        Group cards of the groups view are not included (they are not indexed).
        """
        try:
            if self._published is not None:
                servable = self._all_rows()
                return [row for row in self._index.query(self._sync_coll(), filters)
                        if row.href in servable]
            # Only what _all_rows() would keep: a query reads its hits only.
            return self._index.query(self._coll(), filters,
                                     max_size=self.storage.max_resource_size)
        except query.Unsupported as e:
            logger.debug("Query on %r evaluated card by card (%s)", self.path, e)
            return None

    def has_uid(self, uid: str) -> bool:
        if not self._indexed:
            return super().has_uid(uid)
        if self._published is not None:
            return self._published.has_uid(uid)
        hrefs = self._index.hrefs_with_uid(self._coll(), uid)
        if hrefs:
            # Radicale calls this only to refuse a clashing UID: say where it is.
            request_notes.add(f"UID {uid!r} is already used by {self.path}/{hrefs[0]}")
        return bool(hrefs)

    # -- writing -------------------------------------------------------------
    def upload(self, href: str, item: radicale.Item
               ) -> tuple[radicale.Item, radicale.Item | None]:
        if not self._indexed:
            return super().upload(href, item)
        if not radicale.is_safe_name(href) or not restorable_name(href):
            raise radicale.UnsafePathError(href)  # (a backslash: backups could not restore it)
        if self._published is not None:
            self._rows = None
            result = self._published.upload(href, item)
            self._rows = None
            return result
        # The client's own bytes, not vobject's re-serialisation (sent_card.py).
        sent = sent_card.current(item.uid)
        text = sent.text if sent is not None else item.serialize()
        lines = card_fields.parse_lines(text)
        book = categories.Categories(self)
        if categories.is_group_card(lines):
            contact = self._index.row(self._coll(), href)
            if contact is not None and contact.kind != "group":
                # Absorbed, it left the contact's file in place under a category's
                # claim: GET gave the contact, listings the group card, and a DELETE
                # with the listed ETag failed for ever.
                raise Refused(409, f"{href} is the contact {contact.fn or contact.uid!r}; "
                                   "a group card must be sent to a name of its own")
            # Never stored as a contact: it becomes CATEGORIES on its members, and the
            # group card served at this href from now on is the server's own.
            sent_card.note_change("the group card is kept as a category")
            old = self._group_items().get(href) if self._groups_view else None
            book.absorb_group_card(href, text)
            self._groups = None
            self.storage.forget_group_cache(self)
            group = self._group_items_any_view().get(href)
            if group is None:
                raise ValueError(f"group card {href!r} could not be turned into a category")
            return group, old
        uid = card_fields.uid_of(lines)
        with_pending = book.apply_pending(uid, text)
        if with_pending != text:
            sent_card.note_change("categories that named this contact were added")
        if sent is not None or with_pending != text:
            item = radicale.Item(collection_path=self.path, text=with_pending)
        return self.store_card(href, item)

    def _group_items_any_view(self) -> dict[str, radicale.Item]:
        self._groups = None  # the cache holds the current view's cards: not this one's
        with views.using(views.GROUPS_VIEW):
            items = self._group_items()
        self._groups = None
        return items

    def store_card(self, href: str, item: radicale.Item
                   ) -> tuple[radicale.Item, radicale.Item | None]:
        """Write one contact file atomically and index it."""
        source_registry.check_writable(self.folder)  # a connected source's book: sync only
        path = self.path_of(href)
        coll = self._coll()
        old_row = self._index.row(coll, href)
        old_item = None
        old_text = None
        if old_row is not None:
            old_item = self._item(old_row)
            try:
                old_text = old_item.serialize()
            except RuntimeError:
                old_item = None
        text = item.serialize()
        shared = self.storage.shared
        if shared is not None:
            self.cached_book = shared.store_card(self, coll, href, text,
                                                 old_row.etag if old_row else None)
            self.storage.note_caught_up(self.path, self.cached_book)
            self._forget_rows()
            return self._stored(href, text, old_row, old_text, old_item)
        fields = card_fields.extract(text)
        try:
            # Atomic, and durable with one flush of the disk (card_file.py says how).
            write_card_file(path, text.encode(self.storage.stock_encoding),
                            durable=self.storage.fsync_enabled)
        except Exception as e:
            raise ValueError(f"Failed to store item {href!r} in collection {self.path!r}: {e}"
                             ) from e
        st = os.stat(path)
        row = self._index.put(coll, href, text, st.st_size, st.st_mtime_ns, fields,
                              dir_mtime_ns=os.stat(self.folder).st_mtime_ns)  # note_own_write's
        self._forget_rows()
        return self._stored(href, text, old_row, old_text, old_item, row)

    def _stored(self, href: str, text: str, old_row: ItemRow | None, old_text: str | None,
                old_item: radicale.Item | None, row: ItemRow | None = None
                ) -> tuple[radicale.Item, radicale.Item | None]:
        """After a card is stored: its history, its friends, and the item to answer with.

        ``row``: the one the index just wrote (the lock is held: it is current), or
        None to read it (the PostgreSQL store wrote it through its cache)."""
        if row is None:
            row = self._index.row(self._coll(), href)
        if row is None:
            raise ValueError(f"{href!r} in {self.path!r} was stored but is not a card")
        history = self.history
        if history is not None:
            history.record_write(href, old_text, old_row.uid if old_row else "", text,
                                 row.uid, row.fn)
        from cardfile.plugin.contacts.grants import friends  # (imports this module)

        friends.card_stored(self, text)  # a me card reaches its owner's friends
        return self._item(row, text), old_item

    @property
    def history(self) -> BookHistory | None:
        """This book's history (None: not an address book of its own, or history off)."""
        if not self._indexed or self._published is not None:
            return None
        return self.storage.book_history(self)

    def set_meta(self, props: Mapping[str, str]) -> None:
        """Radicale's PROPPATCH; with PostgreSQL, the new props reach every server."""
        super().set_meta(props)
        if not self._staging:
            state_files.record(self.props_file)

    @property
    def _staging(self) -> bool:
        """A book Radicale is writing whole in a temporary folder, to rename into place.

        With PostgreSQL it is not a cache of the database yet (catching it up
        would empty it); ``Storage.create_collection`` stores it once renamed.
        """
        return os.path.basename(os.path.dirname(self.folder)).startswith(".Radicale.tmp-")

    def delete(self, href: str | None = None) -> None:
        if href is None:
            self._record_book_deletion()
            if self.storage.shared is not None:
                self.storage.shared.drop_book(self.path)
            self._delete_folder()
            self._index.forget_collection(self.path)
            state_files.removed_folder(self.folder)  # gone from every server's folder
            return
        if not self._indexed:
            super().delete(href)
            return
        if not radicale.is_safe_name(href):
            raise radicale.UnsafePathError(href)
        if self._published is not None:
            self._published.delete(href)
            self._rows = None
            return
        if self._is_group_card(href):
            # Deleting a group deletes the category; its members stay.
            categories.Categories(self).delete_group(href)
            self.storage.forget_group_cache(self)
            self._groups = None
            return
        source_registry.check_writable(self.folder)
        path = self.path_of(href)
        if not os.path.isfile(path):
            raise radicale.ComponentNotFoundError(href)
        coll = self._coll()
        history = self.history
        old_row = self._index.row(coll, href)
        old_text = None
        if history is not None:
            try:
                old_text = _read_card_file(path)
            except (OSError, UnicodeDecodeError) as e:
                logger.warning("Deleting %r in %r, whose text could not be read for the "
                               "trash: %s", href, self.path, e)
        shared = self.storage.shared
        if shared is not None:
            current = self._index.row(coll, href)
            self.cached_book = shared.delete_card(self, coll, href,
                                                  current.etag if current else None)
            self.storage.note_caught_up(self.path, self.cached_book)
            self._forget_rows()
        else:
            os.remove(path)
            self.storage.sync_folder(self.folder)
            self._index.remove(coll, [href])
            self.note_own_write()
        if history is not None:
            uid = old_row.uid if old_row and old_row.uid else href
            history.record_delete(href, uid, old_text, old_row.fn if old_row else "")
        if old_row is not None and old_row.uid.startswith("friend-"):
            from cardfile.plugin.contacts.grants import friends  # (imports this module)

            friends.copy_deleted(self, old_row.uid)  # a friend's copy, deleted: no more

    def _delete_folder(self) -> None:
        """The book's folder gone from its place now; its files removed once the lock is free.

        Radicale's delete renames the folder into a temporary one beside it and
        removes that before it returns, under the storage lock: for a book of
        100,000 cards 8.2 s of removing files, while every other request
        waited. The rename is what deletes the book (atomic; the folder is
        flushed); the removal of the files, which nobody reads any more, waits
        for the lock to be released (``Storage.remove_when_free``). A crash in
        between leaves a ``.Radicale.tmp-`` folder, as a crash during
        Radicale's own removal did; backups skip such folders.
        """
        parent = os.path.dirname(self.folder)
        try:
            os.rmdir(self.folder)  # an empty book: nothing to remove later
        except OSError:
            holder = tempfile.mkdtemp(prefix=_TEMP_FILE_PREFIX, dir=parent)
            try:
                os.rename(self.folder, os.path.join(holder, os.path.basename(self.folder)))
            except OSError:
                os.rmdir(holder)
                raise
            self.storage.remove_when_free(holder)
        self.storage.sync_folder(parent)

    def _record_book_deletion(self) -> None:
        """A whole address book deleted (a client's DELETE): every card goes to the trash.

        The history lives outside the book's folder, so it outlives it; recreate
        the book and restore its cards from the trash or with restore-to.
        """
        history = self.history
        if history is None:
            return
        cards = []
        # The text alone: the index has each card's UID. Parsing every card as
        # well, for fields nobody read, made deleting a book of 100,000 cards
        # take 13.5 s instead of 8.6 s, all of it under the storage lock.
        for href, row in self._index.rows(self._coll()).items():
            if row.kind == "group":
                continue
            try:
                text = _read_card_file(os.path.join(self.folder, href))
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as e:
                logger.warning("Deleting %r: its card %r could not be read for the trash: %s",
                               self.path, href, e)
                continue
            cards.append((href, row.uid or href, text))
        history.record_deletes(cards)

    # -- collection-wide state ------------------------------------------------
    def get_meta(self, key: str | None = None) -> Any:
        """Radicale's props, plus CardDAV ``max-resource-size`` (RFC 6352 6.2.3).

        Radicale answers PROPFIND for props it does not know from the meta,
        so an address book without the prop set reports the configured
        limit: a client can then refuse an oversized card before uploading.
        """
        value = super().get_meta(key) if key is not None else super().get_meta()
        if key == "CR:max-resource-size" and value is None and self._indexed:
            return str(self.storage.max_resource_size)
        return value

    def _token(self) -> tuple[str, int, int, int]:
        """(token, index collection id, seq, seq floor) for the current view.

        With the PostgreSQL store a book's token names the database (its epoch),
        the book's id there and its revision, so any server of that database
        answers it: the index's rows carry those revisions as their seq.
        """
        groups = self._groups_view
        if groups:
            self._group_items()  # records any change of the group cards first
        view = ("p" if self._published is not None
                else ("G" if views.current() == views.GROUPS4_VIEW else "g") if groups
                else "c")
        if self.storage.shared is not None and self._published is None:
            coll = self._coll()
            book = self.cached_book
            assert book is not None
            return (f"{SYNC_TOKEN_PREFIX}{view}{book.epoch}-{book.coll_id}-{book.revision}",
                    coll, book.revision, book.floor)
        state = self._index.sync_state(self._sync_coll(), with_groups=groups)
        token = f"{SYNC_TOKEN_PREFIX}{view}{state.epoch}-{state.coll_id}-{state.seq}"
        return token, state.coll_id, state.seq, state.seq_floor

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        if not self._indexed:
            return super().sync(old_token)
        token, coll_id, seq, seq_floor = self._token()
        if not old_token:
            # Lazy: a PROPFIND asking for D:sync-token calls sync() for the
            # token alone, and listing 100,000 cards took it half a second.
            return token, self.list_hrefs()
        view, epoch, old_coll, old_seq = _parse_token(old_token)
        current_view, current_epoch, current_coll = _parse_token(token)[:3]
        if (view, epoch, old_coll) != (current_view, current_epoch, current_coll):
            raise ValueError(f"Token not issued for this collection, view or index: "
                             f"{old_token!r}")
        if not seq_floor <= old_seq <= seq:
            raise ValueError(f"Token too old or from the future: {old_token!r}")
        if old_seq == seq:
            return token, []
        changed = self._index.changed_since(coll_id, old_seq, with_groups=self._groups_view)
        if isinstance(self._published, shared_book.SharedBook):
            changed = self._published.visible_changes(changed)
        return token, changed

    @property
    def etag(self) -> str:
        if not self._indexed:
            return super().etag
        digest = sha256(self._token()[0].encode())
        digest.update(json.dumps(self.get_meta(), sort_keys=True).encode())
        return f'"{digest.hexdigest()}"'

    @property
    def last_modified(self) -> str:
        if not self._indexed:
            return super().last_modified
        return http_date(self.last_modified_ns())

    def last_modified_ns(self) -> int:
        """When the book or a card of it last changed (of an indexed book)."""
        newest = self._index.last_mtime_ns(self._sync_coll())
        for path in (self.folder, self.props_file):
            try:
                newest = max(newest, os.stat(path).st_mtime_ns)
            except FileNotFoundError:
                pass
        return newest


def _parse_token(token: str) -> tuple[str, str, int, int]:
    if not token.startswith(SYNC_TOKEN_PREFIX):
        raise ValueError(f"Malformed token: {token!r}")
    body = token[len(SYNC_TOKEN_PREFIX):]
    parts = body[1:].split("-")
    if (body[:1] not in ("c", "g", "G", "p") or len(parts) != 3 or not parts[1].isdigit()
            or not parts[2].isdigit()):
        raise ValueError(f"Malformed token: {token!r}")
    return body[0], parts[0], int(parts[1]), int(parts[2])


class Storage(radicale.AdapterStorage):
    """Radicale's multifilesystem storage plus the card index."""

    _collection_class: ClassVar[type[radicale.AdapterCollection]] = Collection

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.card_index = CardIndex(os.path.join(self.data_folder, INDEX_FILE_NAME))
        self._reconciled: set[str] = set()
        self._reconciled_lock = threading.Lock()
        self._rescan_interval = float(_storage_option(configuration, "rescan_interval", "30"))
        #: Shared by the processes of one start of ``cardfile serve`` (set by it, never
        #: in a configuration file): a book one of them compared with its files at
        #: this start is not compared again by the others (Collection._coll).
        self.generation = _storage_option(configuration, START_GENERATION, "")
        self._sweeper: Repeating | None = None
        self._group_cache: dict[str, _GroupCache] = {}
        self._group_locks: dict[str, threading.Lock] = {}
        self._group_locks_lock = threading.Lock()
        #: (book path, vCard 4) -> (the group_cards dict it was made from, href -> GroupCard).
        self._served_groups: dict[tuple[str, bool], tuple[dict[str, tuple[str, str]],
                                                          dict[str, GroupCard]]] = {}
        self.history_settings = settings_from(
            lambda name, default: _storage_option(configuration, name, default))
        self.shared = shared_books_from(configuration, self.data_folder)
        self.histories = HistoryStores(self.data_folder, self.history_settings,
                                       self.shared.store if self.shared else None)
        self._held = threading.local()
        #: This process's writes since it last copied the index's log (_after_write).
        self._writes_since_copy = 0
        self._log_copy_lock = threading.Lock()
        self.turnstile = Turnstile(self.data_folder)
        self._read_slots = ReadSlots(READS_AT_ONCE)
        #: Where a PUT writes its card before it takes the lock (``staged_card``).
        self.staging_folder = os.path.join(self.data_folder, STAGING_FOLDER_NAME)

    @contextlib.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any
                     ) -> Iterator[None]:
        """Radicale's storage lock; with PostgreSQL, one cache state per hold.

        A book's cache is caught up with the database the first time a hold
        uses it, and not again until the lock is released (except by this
        hold's own writes). So a request sees one state throughout: the card
        Radicale compared with ``If-Match`` is the one a write then asks the
        database to replace, never a newer one another server wrote meanwhile.
        """
        outermost = getattr(self._held, "books", None) is None
        with contextlib.ExitStack() as held:
            if outermost and mode == "w":  # card files flushed once the lock is released
                held.enter_context(flushes_after())
            elif outermost:  # a few reads at once per process (READS_AT_ONCE)
                held.enter_context(self._read_slots.held())
            if outermost:  # writers first (store/turnstile.py)
                with self.turnstile.passing():
                    held.enter_context(super().acquire_lock(mode, user, *args, **kwargs))
            else:
                held.enter_context(super().acquire_lock(mode, user, *args, **kwargs))
            if outermost:
                self._held.books = {}
                self._held.removals = []
            try:
                yield
            finally:
                if outermost:
                    self._held.books = None
                    removals, self._held.removals = self._held.removals, None
        if outermost:
            for folder in removals:
                shutil.rmtree(folder, ignore_errors=True)
        if outermost and mode == "w":
            self._after_write()

    def remove_when_free(self, folder: str) -> None:
        """Remove ``folder`` and all in it once this thread releases the lock (at once
        if it holds none): files nobody reads any more need not hold up others."""
        removals: list[str] | None = getattr(self._held, "removals", None)
        if removals is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            removals.append(folder)

    def staged_card(self, book_path: str, text: str) -> contextlib.AbstractContextManager[None]:
        """Within: ``text``, if it is what a save into that book then stores, is
        already written out beside it, so the save's hold of the lock only renames
        it (``card_file.staged``). Take it before the lock."""
        if self.shared is not None:  # the database stores the card, not a file
            return contextlib.nullcontext()
        try:
            folder = self.folder_of(book_path)
            data = text.encode(self.stock_encoding)
        except (ValueError, UnicodeError):  # (UnsafePathError is a ValueError)
            return contextlib.nullcontext()
        return staged(folder, self.staging_folder, data, durable=self.fsync_enabled)

    def _after_write(self) -> None:
        """Every ``_LOG_COPY_EVERY`` writes of this process, the index's log copied
        into the index, now that the lock is free (``CardIndex.copy_log``).

        In the 50-client mix a save held the lock 5.6-6.8 ms, of which the
        index took 1.4-2.2 ms; without SQLite's own copy in the save's time it
        took 0.8 ms, and the mix answered 5-19 % more requests. SQLite still
        copies at 1,000 pages if these calls fall behind (a process that writes
        without ever taking the lock to write).
        """
        with self._log_copy_lock:
            self._writes_since_copy += 1
            due = self._writes_since_copy >= _LOG_COPY_EVERY
            if due:
                self._writes_since_copy = 0
        if due:
            self.card_index.copy_log()

    def books_caught_up(self) -> dict[str, CachedBook] | None:
        """Books caught up during this thread's hold of the lock (None: not holding it)."""
        books: dict[str, CachedBook] | None = getattr(self._held, "books", None)
        return books

    def note_caught_up(self, path: str, book: CachedBook) -> None:
        books = self.books_caught_up()
        if books is not None:
            books[path] = book

    def book_history(self, collection: Collection) -> BookHistory | None:
        """The history of an address book (None when ``history_days`` is 0)."""
        if not self.history_settings.enabled:
            return None
        store = self.histories.store(collection.path)
        assert store is not None
        return BookHistory(store, self.history_settings, collection.path,
                           collection.card_count)

    def group_cards(self, collection: Collection) -> dict[str, tuple[str, str]]:
        """href -> (UID, text) of a book's group cards, rebuilt only after a change."""
        coll = collection._coll()
        try:
            store_mtime = os.stat(categories.CategoryStore(collection.folder).path
                                  ).st_mtime_ns
        except FileNotFoundError:
            store_mtime = 0
        state = self.card_index.sync_state(coll)
        key = (state.epoch, coll, state.seq, store_mtime)
        with self._group_lock(collection.path):
            cached = self._group_cache.get(collection.path)
            if cached is not None and cached.key == key:
                return cached.cards
            try:
                return self._make_group_cards(collection, coll, state, key, cached)
            except BaseException:
                self._group_cache.pop(collection.path, None)  # (possibly half changed)
                raise

    def _group_lock(self, path: str) -> threading.Lock:
        """One book's group cards are made by one thread of a process at a time:
        the others wait for them instead of making the same cards alongside."""
        with self._group_locks_lock:
            return self._group_locks.setdefault(path, threading.Lock())

    def _make_group_cards(self, collection: Collection, coll: int, state: SyncState,
                          key: tuple[str, int, int, int], cached: _GroupCache | None
                          ) -> dict[str, tuple[str, str]]:
        """The group cards for ``key``: from ``cached`` and the cards changed since
        when it can, else from every card's categories."""
        # (A cache of PostgreSQL numbers its rows with the database's revisions; a
        # command that would write the cache folder alone, numbering rows apart, is
        # refused: cli/options.py refuse_writing_a_database_cache.)
        changes = self._categories_changed_since(coll, state, cached)
        if cached is not None and changes is not None:
            by_card, members = cached.by_card, cached.members
            for href, now in changes.items():
                was = by_card.pop(href, None)
                if was is not None:
                    members.change(was[0], was[1], -1)
                if now is not None:
                    by_card[href] = now
                    members.change(now[0], now[1], +1)
            if not changes and cached.key[3] == key[3]:
                # Most changes touch no category (a phone number edited, a contact
                # added to none): the same cards (0.8 s at 100,000 cards before).
                # Recorded all the same: another process may have recorded others
                # meanwhile (a card it saw come and go), which clients would sync.
                self._record_group_cards(collection, coll, cached.current, state.seq)
                self._group_cache[collection.path] = cached._replace(key=key)
                return cached.cards
        else:
            by_card = self.card_index.categories_by_card(coll)
            members = GroupMembers.of(by_card.values())
        cards = categories.Categories(collection).group_cards_of(members)
        kept = cached.current if cached is not None else {}
        current = {href: kept[href] if href in kept and cached is not None
                   and cached.cards.get(href) == (uid, text) else (uid, etag_of(text))
                   for href, (uid, text) in cards.items()}
        self._record_group_cards(collection, coll, current, state.seq)
        self._group_cache[collection.path] = _GroupCache(key, cards, current, by_card, members)
        return cards

    def _record_group_cards(self, collection: Collection, coll: int,
                            current: dict[str, tuple[str, str]], made_at: int) -> None:
        """The index's (or the database's) group cards made ``current`` where they
        differ, unless the cards changed since ``made_at`` (``update_group_cards``)."""
        if self.shared is None:
            self.card_index.update_group_cards(coll, current, made_at)
        else:
            # The database numbers group changes, so every server's tokens agree.
            caught_up = self.shared.record_groups(collection, coll, current)
            if caught_up is not None:
                collection.cached_book = caught_up
                self.note_caught_up(collection.path, caught_up)

    def _categories_changed_since(
        self, coll: int, state: SyncState, cached: _GroupCache | None
    ) -> dict[str, tuple[str, frozenset[tuple[str, str]]] | None] | None:
        """href -> (UID, categories) now, or None for none, of each card changed
        since ``cached`` whose categories changed; None when only reading every
        card's can tell (another epoch, a token floor past the cache, too many
        changes). Reading every card's categories took 0.9 s at 100,000 cards."""
        if cached is None or cached.key[:2] != (state.epoch, coll) \
                or not state.seq_floor <= cached.key[2] <= state.seq:
            return None  # (a number gone back: the database's book made again, say)
        changed = self.card_index.changed_since(coll, cached.key[2])
        if len(changed) > _GROUP_REUSE_AT_MOST:
            return None
        now = self.card_index.categories_by_card(coll, changed)
        return {href: now.get(href) for href in changed
                if now.get(href) != cached.by_card.get(href)}

    def warm_up(self, on_locked: Callable[[], None] | None = None) -> tuple[int, int]:
        """Bring the index of every address book in line with the disk.

        Run before a server accepts requests, so the first phone to sync a
        large book that changed while the server was down does not wait for
        the index (and group-card files are converted). ``on_locked`` is
        called once the storage's write lock is held: from then on every
        request waits until it is let go. Books whose folders changed are
        compared under it; the others (``open_unchanged``) after it, while
        requests are served. Returns (books, cards).
        """
        root = self.collection_root_folder()
        books = cards = 0
        unchanged: list[Collection] = []
        try:
            with self.acquire_lock("w"):
                if on_locked is not None:
                    on_locked()
                for user_entry in _subfolders(root):
                    for book_entry in _subfolders(user_entry.path):
                        path = radicale.unstrip_path(f"{user_entry.name}/{book_entry.name}",
                                                     True)
                        collection = Collection(self, path)
                        if collection.tag != "VADDRESSBOOK" or \
                                collection._published is not None:
                            continue
                        if collection.open_unchanged():
                            unchanged.append(collection)
                        else:
                            collection._coll()
                            _remove_stale_temp_files(book_entry.path,
                                                     collection.temp_files_seen)
                        books += 1
                        cards += collection.card_count()
                remove_staged(self.staging_folder)
                # Nothing reads the index yet: the log of earlier starts' writes (a
                # first build's is as large as the index) goes, or every start reads it.
                self.card_index.empty_log()
        except BaseException:
            for collection in unchanged:  # recorded as checked, never compared
                collection.forget_start_check()
            raise
        # The books whose folders did not change are compared now, as a rescan
        # compares them: requests are served meanwhile (a stat of every card of
        # a 100,000-card book, 0.5-0.8 s, held every request of the start).
        for position, collection in enumerate(unchanged):
            try:
                collection.reconcile()
                if collection.temp_files_seen:
                    with self.acquire_lock("w"):
                        # A write in progress when they were listed has ended: those
                        # still there are left by a killed process.
                        _remove_stale_temp_files(collection.folder, [
                            e for e in collection.temp_files_seen
                            if os.path.lexists(e.path)])
            except Exception as e:  # (a book deleted meanwhile, say): the others go on
                logger.warning("Comparing %r with its files after the start failed: %s",
                               collection.path, e)
                collection.forget_start_check()
            except BaseException:
                for missed in unchanged[position:]:
                    missed.forget_start_check()
                raise
        return books, cards

    def create_collection(self, href: str, items: Any = None, props: Any = None
                          ) -> Any:
        """Radicale's MKCOL; with PostgreSQL, the new book is listed by every server."""
        created = super().create_collection(href, items, props)
        if props and self.shared is not None:
            collection = created[0] if isinstance(created, tuple) else created
            if isinstance(collection, Collection):
                state_files.record(collection.props_file)
            if items is not None and isinstance(collection, Collection):
                # A whole book replaced (PUT of a collection, MKCOL with cards): the
                # database's book becomes exactly the folder Radicale wrote.
                self.shared.replace_book(collection)
        return created

    def category_hrefs(self, collection: Collection) -> frozenset[str]:
        """The hrefs a book's categories' group cards have (a superset of those the
        groups view shows), without making the cards."""
        return categories.Categories(collection).hrefs()

    def forget_group_cache(self, collection: Collection) -> None:
        """The book's group cards are made again (from the categories counted so far)."""
        with self._group_lock(collection.path):
            cached = self._group_cache.get(collection.path)
            if cached is not None:
                self._group_cache[collection.path] = cached._replace(
                    key=(*cached.key[:3], -1))
        for vcard4 in (False, True):
            self._served_groups.pop((collection.path, vcard4), None)

    def served_group_cards(self, collection: Collection, vcard4: bool) -> dict[str, GroupCard]:
        """href -> what a book's group card serves in a groups view: its UID, text
        (vCard 4 in the ``groups4`` view), etag and length; made again only after
        ``group_cards`` was (a multiget of an Apple client made each one's text
        and etag again: half its time)."""
        cards = self.group_cards(collection)
        cached = self._served_groups.get((collection.path, vcard4))
        if cached is not None and cached[0] is cards:
            return cached[1]
        made = {}
        for href, (uid, text) in cards.items():
            if cached is not None and cached[0].get(href) == (uid, text) and href in cached[1]:
                made[href] = cached[1][href]  # (a text kept: the same object, compared at once)
                continue
            if vcard4:
                text = categories.as_vcard4_group(text)
            made[href] = GroupCard(uid, text, etag_of(text), len(text.encode()))
        self._served_groups[(collection.path, vcard4)] = (cards, made)
        return made

    def discover(self, path: str, depth: str = "0", child_context_manager: Any = None,
                 user_groups: Any = frozenset()) -> Iterator[Any]:
        """Radicale's discovery, plus group cards, which exist only as a view."""
        if self.shared is not None:
            self._catch_up_parent(path)
        found = False
        for entry in super().discover(path, depth, child_context_manager, set(user_groups)):
            found = True
            if isinstance(entry, Collection) and not _utf8_name(entry.path, "collection-root"):
                continue  # a folder named in bytes that are not UTF-8: no answer can hold it
            if isinstance(entry, Collection) and isinstance(
                    entry._published, shared_book.SharedBook) and not entry._published.open:
                continue  # an ended share: not there (shared_book.py)
            yield entry
        if found:
            return
        sane = radicale.strip_path(radicale.sanitize_path(path))
        parent, _, href = sane.rpartition("/")
        if not parent or not href:
            return
        collection = Collection(self, radicale.unstrip_path(parent, True))
        if os.path.isdir(collection.folder) and collection.tag == "VADDRESSBOOK":
            item = collection.virtual_item(href)
            if item is not None:
                yield item

    def _catch_up_parent(self, path: str) -> None:
        """Bring the book of a card's address up to the database before Radicale looks.

        Radicale finds an item by its file; a card written through another
        server has none here until the book's cache catches up.
        """
        sane = radicale.strip_path(radicale.sanitize_path(path))
        parent, _, href = sane.rpartition("/")
        if not parent or not href:
            return
        collection = Collection(self, radicale.unstrip_path(parent, True))
        if (os.path.isdir(collection.folder)
                and not os.path.isdir(os.path.join(collection.folder, href))
                and collection.tag == "VADDRESSBOOK" and collection._published is None):
            collection._coll()

    def was_reconciled(self, path: str) -> bool:
        return path in self._reconciled

    def checked_this_start(self, coll: int) -> bool:
        """Whether a process of this start of the server compared ``coll`` with its files."""
        if not self.generation:
            return False
        checked = self.card_index.checked(coll)
        return checked is not None and checked[0] == self.generation

    def mark_reconciled(self, path: str) -> None:
        with self._reconciled_lock:
            self._reconciled.add(path)
            if self._sweeper is None and self._rescan_interval > 0:
                self._sweeper = Repeating("cardfile-rescan", self._rescan_interval,
                                          self._sweep)
                self._sweeper.start()

    def _sweep(self) -> None:
        """Catch cards edited in place by other programs (same folder mtime).

        No storage lock is taken: writers would otherwise wait for a stat of
        every card. A card written meanwhile is at worst indexed twice, by
        this sweep and by its writer, from the same file.
        """
        sweeper = self._sweeper
        for path in list(self._reconciled):
            if sweeper is not None and sweeper.stopping:
                return
            try:
                collection = Collection(self, radicale.unstrip_path(path, True))
                if os.path.isdir(collection.folder) and collection._indexed:
                    # Timers drift: a comparison a little under an interval ago counts.
                    collection.rescan(self._rescan_interval * 0.9)
            except Exception as e:  # keep sweeping the other books
                logger.warning("Rescan of %r failed: %s", path, e)

    def move(self, item: radicale.Item, to_collection: radicale.BaseCollection,
             to_href: str) -> None:
        source = item.collection
        if (self.shared is not None and isinstance(source, Collection)
                and isinstance(to_collection, Collection) and source._indexed
                and to_collection._indexed):
            # Through the database: a copy to the new place, then the old one deleted.
            to_collection.upload(to_href, radicale.Item(collection_path=to_collection.path,
                                                        text=item.serialize()))
            source.delete(item.href)
            return
        super().move(item, to_collection, to_href)  # type: ignore[arg-type]
        for collection in (source, to_collection):
            if isinstance(collection, Collection) and collection.tag == "VADDRESSBOOK":
                collection.reconcile()


def _remove_stale_temp_files(folder: str, seen: list[os.DirEntry[str]] | None = None
                             ) -> None:
    """Delete temporary files a killed process left (only ever under the write lock).

    Every write makes its temporary file under the storage write lock, so
    while this holds that lock none is in progress: any left is from a
    process killed mid-write. Clients never see them (dot files); this only
    stops them piling up after crashes. ``seen``: those a comparison of the
    folder under the same hold of the lock already found (one listing of a
    100,000-card folder, not two).
    """
    if seen is None:
        with os.scandir(folder) as entries:
            seen = [e for e in entries if e.name.startswith(_TEMP_FILE_PREFIX)]
    for entry in seen:
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
            logger.info("Removed %r, left by an interrupted write", entry.path)
        except OSError as e:
            logger.warning("Could not remove %r: %s", entry.path, e)


#: Names ``_utf8_name`` warned of, so each is logged once per process, not every rescan.
_WARNED_NAMES: set[tuple[str, str]] = set()


def _utf8_name(name: str, book_path: str) -> bool:
    """Whether a file's name is UTF-8, so the index and every answer can hold it.

    A name that is not (Latin-1 bytes, as an unzip or a sync tool may leave)
    reaches Python with its bytes escaped; the index could not store it, and
    every request to the book failed until the file was removed by hand. It
    is skipped with a warning, as an unreadable card is.
    """
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        if (book_path, name) not in _WARNED_NAMES:
            _WARNED_NAMES.add((book_path, name))
            logger.warning("Skipping %r in %r: its file name is not UTF-8; rename it to "
                           "serve it", name.encode("utf-8", "surrogateescape"), book_path)
        return False


def _subfolders(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_dir()
                    and radicale.is_safe_name(e.name)]
    except FileNotFoundError:
        return []


def shared_books_from(configuration: Any, data_folder: str) -> SharedBooks | None:
    """The PostgreSQL store of ``[storage] backend``, or None for the file store."""
    backend = _storage_option(configuration, "backend", "files").strip()
    if backend.lower() in ("files", "file", ""):
        return None
    if not backend.startswith(("postgresql://", "postgres://")):
        raise RuntimeError(f"[storage] backend = {backend!r} is neither 'files' nor a "
                           "postgresql:// address")
    store = PgStore(backend, pool_size=int(_storage_option(configuration, "database_pool_size",
                                                           "8")),
                    timeout=float(_storage_option(configuration, "database_timeout", "5")))
    try:
        store.check_schema()
    except SchemaMismatch as e:
        store.close()
        raise RuntimeError(f"Cannot use the database {display_url(backend)}: {e}"
                           ) from None
    except Refused as e:  # unreachable now: requests get 503 until it is back
        logger.warning("The database %s cannot be reached yet (%s); requests are answered "
                       "503 until it can", display_url(backend), e)
    state_files.share(data_folder, PgFiles(store))
    return SharedBooks(store, data_folder)


def _storage_option(configuration: Any, name: str, default: str) -> str:
    """A Cardfile option from ``[storage]`` (Radicale passes plugin options through)."""
    try:
        value = configuration.get("storage", name)
    except KeyError:
        return default
    return str(value) if value not in (None, "") else default
