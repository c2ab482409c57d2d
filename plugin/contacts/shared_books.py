"""Address books whose truth is in PostgreSQL, served from a local cache of files.

Every reader in Cardfile (Radicale, the fast path, the API, exports, search)
reads a book's folder of ``.vcf`` files and its SQLite index. With the
PostgreSQL store those stay, as this server's cache: before a request uses a
book (``Collection._coll``), the book's revision is read from the database
(one small query) and, if the cache is behind, the cards changed since the
revision it holds are written to the folder and the index, each under the
database's own revision. So every server answers a sync token issued by any
other, and nothing a server keeps can contradict the database for longer
than the request that finds it behind.

A write goes to the database first (``PgStore.put``: the book's row lock,
the check that the card is still the one this server decided on, the UID
check, the next revision) and reaches the cache by the same catching-up,
so a server's own writes and other servers' writes take one path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts.db_transfer import book_cards
from cardfile.plugin.radicale_adapter import radicale_logger as logger
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.card_file import write_card_file
from cardfile.plugin.store.index import MirrorChange, etag_of
from cardfile.plugin.store.postgres import BookState, PgStore
from cardfile.plugin.vcard import card_fields

if TYPE_CHECKING:
    from cardfile.plugin.contacts.storage import Collection

#: The lock file (in the data folder) that keeps two processes from filling one cache at once.
LOCK_FILE_NAME = ".cardfile-cache.lock"


@dataclass(frozen=True)
class CachedBook:
    """A book's cache after catching up: the database's ids and the revision it holds."""

    epoch: str
    coll_id: int
    revision: int
    floor: int


class SharedBooks:
    """The PostgreSQL store, and the cache of it this server keeps in its data folder."""

    def __init__(self, store: PgStore, data_folder: str) -> None:
        self.store = store
        self._lock_path = os.path.join(data_folder, LOCK_FILE_NAME)

    @contextlib.contextmanager
    def _filling(self) -> Iterator[None]:
        """One filler at a time, across threads and processes on this data folder."""
        with open(self._lock_path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def catch_up(self, collection: Collection, coll: int) -> CachedBook:
        """Bring the cached book up to the database's revision; its state after."""
        book = self.store.book(collection.path)
        index = collection._index
        if index.mirror_state(coll) == (book.source, book.revision):
            return _cached(book, book.revision, book.floor)
        with self._filling():
            held = index.mirror_state(coll)
            if held == (book.source, book.revision):
                return _cached(book, book.revision, book.floor)
            since = held[1] if held is not None and held[0] == book.source else None
            changes = self.store.changes(book.coll_id, since)
            try:
                written = [self._write(collection, href, body, revision)
                           for href, body, revision in changes.cards
                           if radicale.is_safe_name(href)]
            except OSError as e:
                raise _cache_unwritable(collection, e) from e
            if changes.full:
                self._remove_others(collection, {c.href for c in written})
            index.apply_mirror(coll, book.source, changes.revision, changes.floor, written,
                               changes.full, changes.groups)
        if written:
            logger.debug("Cache of %r brought to revision %d (%d card(s))", collection.path,
                         changes.revision, len(written))
        return _cached(book, changes.revision, changes.floor)

    def _write(self, collection: Collection, href: str, body: bytes | None,
               revision: int) -> MirrorChange:
        """Write (or remove) one card file of the cache, atomically."""
        path = os.path.join(collection.folder, href)
        if body is None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return MirrorChange(href, revision, None)
        write_card_file(path, body, durable=True)  # the index will say it holds this revision
        st = os.stat(path)
        try:
            text = body.decode("utf-8-sig")
            fields = card_fields.extract(text)
        except (UnicodeDecodeError, card_fields.CardSyntaxError) as e:
            logger.warning("Card %r of %r is kept but not served: %s", href, collection.path, e)
            return MirrorChange(href, revision, "", st.st_size, st.st_mtime_ns, None)
        return MirrorChange(href, revision, text, st.st_size, st.st_mtime_ns, fields)

    @staticmethod
    def _remove_others(collection: Collection, kept: set[str]) -> None:
        """A full refill: card files the database no longer has leave the cache."""
        with os.scandir(collection.folder) as entries:
            stale = [e.path for e in entries if e.is_file() and radicale.is_safe_name(e.name)
                     and e.name not in kept]
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    # -- writing ----------------------------------------------------------------
    def store_card(self, collection: Collection, coll: int, href: str, text: str,
                   basis: str | None) -> CachedBook:
        """Write a card to the database, then bring this server's cache up to it.

        ``basis``: the etag of the card at ``href`` the request decided on
        (None: none was there); the write is refused (412) if it changed since.
        """
        body = text.encode("utf-8")
        uid = card_fields.extract(text).uid
        self.store.put(self._coll_id(collection), collection.path, href, body, uid,
                       etag_of(text), basis)
        return self.catch_up(collection, coll)

    def delete_card(self, collection: Collection, coll: int, href: str,
                    basis: str | None) -> CachedBook:
        self.store.delete(self._coll_id(collection), href, basis)
        return self.catch_up(collection, coll)

    def record_groups(self, collection: Collection, coll: int,
                      current: dict[str, tuple[str, str]]) -> CachedBook | None:
        """Record the group view's group cards (href -> UID, etag) if they changed.

        The database numbers them, under the book's next revision, and this
        server's index learns them by catching up like any other change, so
        every server's group view reports them from the same revision. None:
        nothing to record (this cache already holds them as they are), or the
        book moved on since the cache computed them.
        """
        book = collection.cached_book
        if book is None:
            return None
        known = {href: (uid, etag) for href, (uid, etag, _) in
                 collection._index.group_cards(coll).items()}
        if known == current:
            return None
        if self.store.record_groups(book.coll_id, book.revision, current) is None:
            return None
        return self.catch_up(collection, coll)

    def drop_book(self, path: str) -> None:
        self.store.drop_book(path)

    def replace_book(self, collection: Collection) -> None:
        """Make the database's book hold exactly the card files of the folder, one revision.

        For a book Radicale wrote whole (a PUT of a collection, MKCOL with
        cards); cards no longer there become tombstones, so clients of every
        server are told at their next sync.
        """
        skipped: list[str] = []
        self.store.load_book(collection.path, book_cards(Path(collection.folder), skipped))
        for name in skipped:
            logger.warning("Card file %r is not a safe name; not stored in the database", name)

    def _coll_id(self, collection: Collection) -> int:
        cached = collection.cached_book
        return cached.coll_id if cached is not None else self.store.book(collection.path).coll_id


def _cached(book: BookState, revision: int, floor: int) -> CachedBook:
    return CachedBook(book.epoch, book.coll_id, revision, floor)


#: Seconds a client is asked to wait when this server's cache cannot be written.
CACHE_RETRY_SECONDS = 30


def _cache_unwritable(collection: Collection, error: OSError) -> Refused:
    """503, not 500, when this server's cache of a book cannot be written (a full or
    read-only disk, a folder made immutable).

    The database is the truth and holds every write it acknowledged,
    including one this request just made; what fails is this server's copy,
    which it serves from. Another server, or this one once its disk is
    fixed, answers.
    """
    logger.error("Cannot write the cache of %r: %s", collection.path, error)
    return Refused(503, "this server cannot update its copy of the address book "
                   f"({error.strerror or error}); the database keeps every change it "
                   "acknowledged: try again later or through another server",
                   retry_after=CACHE_RETRY_SECONDS)
