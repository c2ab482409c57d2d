"""The SQLite index derived from the ``.vcf`` files.

Files are the truth; this is a cache that makes every query, listing, sync and
UID check cost the same at 100 cards as at 100,000. Deleting the database
loses nothing: it is rebuilt from the files (``reconcile``), and a card added,
changed or removed on disk by another tool is picked up by comparing each
file's size and mtime with what the index recorded (all of a book's at once
first, by a fingerprint the rows keep: ``listing_sums``).

Every change to a collection takes the next number of one global sequence;
sync tokens are ``(epoch, collection id, sequence)`` so an incremental
``sync-collection`` is one range query. ``epoch`` is random per database, so a
token issued before the index was rebuilt is refused (the client then does a
full sync) instead of being silently misread.

This module is the storage seam: it speaks SQL and knows nothing of HTTP or
Radicale, so a PostgreSQL version can sit behind the same methods.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import urllib.parse
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, NamedTuple, Protocol

from cardfile.plugin.store import carddav_query, collation
from cardfile.plugin.store.contact_queries import ContactQueries
from cardfile.plugin.store.rows import ItemRow, SyncState, etag_of
from cardfile.plugin.store.sqlite_wal import use_wal

__all__ = ["CardIndex", "CardRecord", "ItemRow", "MirrorChange", "MirrorGroup", "SyncState",
           "card_record", "etag_of"]

from cardfile.plugin.vcard import card_fields

log = logging.getLogger("cardfile")

#: 9: UCA sort keys (sk_name, sk_family) and accent-folded values (fvalue) for search.
#: 10: no rows for carddav_query.UNINDEXED_PROPERTIES; norm NULL where there is none.
#: 11: fvalue '' where the folded value is lvalue itself (``card_record``); migrated
#: in place from 10 (``_MIGRATIONS``), so sync tokens stay valid.
SCHEMA_VERSION = "11"

#: Reads one card file: what the index stores of it, or None if it vanished or is no card.
ReadFile = Callable[[str], "CardRecord | None"]
#: Reads many, in order.
ReadFiles = Callable[[list[str]], "Iterable[CardRecord | None]"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    inode INTEGER NOT NULL DEFAULT 0,
    dir_mtime_ns INTEGER NOT NULL DEFAULT -1,
    seq_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    coll INTEGER NOT NULL,
    href TEXT NOT NULL,
    uid TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fn TEXT NOT NULL,
    kind TEXT NOT NULL,
    family TEXT NOT NULL DEFAULT '',
    given TEXT NOT NULL DEFAULT '',
    sk_name BLOB NOT NULL DEFAULT x'',
    sk_family BLOB NOT NULL DEFAULT x'',
    seq INTEGER NOT NULL,
    UNIQUE (coll, href)
);
CREATE INDEX IF NOT EXISTS items_uid ON items (coll, uid);
-- A whole book's listing (PROPFIND Depth 1, a first sync) in href order from
-- index entries alone: through the (coll, href) key each row was a lookup in
-- the table, 0.26 s of a 100,000-card listing instead of 0.15 s.
CREATE INDEX IF NOT EXISTS items_listing ON items (coll, href, etag, mtime_ns, size, kind);
CREATE INDEX IF NOT EXISTS items_seq ON items (coll, seq);
CREATE INDEX IF NOT EXISTS items_mtime ON items (coll, mtime_ns);
CREATE INDEX IF NOT EXISTS items_kind ON items (coll, kind);
-- The JSON API's orders by name (contact_queries.py SORTS, Unicode collation
-- keys): a page of contacts, a position or a letter of the A-Z index reads
-- index entries in order instead of sorting the book.
CREATE INDEX IF NOT EXISTS items_sk_name ON items (coll, sk_name, href);
CREATE INDEX IF NOT EXISTS items_sk_family ON items (coll, sk_family, href);
CREATE TABLE IF NOT EXISTS props (
    item INTEGER NOT NULL,
    coll INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    lvalue TEXT NOT NULL,
    norm TEXT,
    fvalue TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS props_item ON props (item, name);
-- Covering indexes: a text-match scans index entries only, never the table.
CREATE INDEX IF NOT EXISTS props_name ON props (name, lvalue, item);
-- Only EMAIL, TEL and CATEGORIES have a normal form (norm); a comparison with
-- norm (=, LIKE) implies NOT NULL, so SQLite uses this smaller index for it.
CREATE INDEX IF NOT EXISTS props_norm ON props (name, norm, item) WHERE norm IS NOT NULL;
-- Search (API q, cardfile search) compares case- and accent-folded values: the
-- folded value is lvalue itself for nine in ten (plain ASCII), found through
-- props_name; only the others have an fvalue, and only they an entry here.
CREATE INDEX IF NOT EXISTS props_fold ON props (name, fvalue, item) WHERE fvalue != '';
-- The category list (names, spellings, member counts) from index entries
-- alone: at 100,000 contacts joining every membership to its card took 300 ms.
CREATE INDEX IF NOT EXISTS props_categories ON props (coll, norm, value, item)
    WHERE name = 'CATEGORIES';
CREATE TABLE IF NOT EXISTS group_cards (
    coll INTEGER NOT NULL,
    href TEXT NOT NULL,
    uid TEXT NOT NULL,
    etag TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (coll, href)
);
CREATE INDEX IF NOT EXISTS group_cards_seq ON group_cards (coll, seq);
CREATE TABLE IF NOT EXISTS tombstones (
    coll INTEGER NOT NULL,
    href TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (coll, href)
);
CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones (coll, seq);
-- The last comparison of a book's files with its rows: by which start of a
-- server (the generation its processes share) and when (wall clock, ns). A
-- server's worker trusts a comparison its own start made, and a rescan is
-- skipped while another process's is recent (storage.py).
CREATE TABLE IF NOT EXISTS checks (
    coll INTEGER PRIMARY KEY,
    generation TEXT NOT NULL,
    checked_ns INTEGER NOT NULL
);
-- Each book's fingerprint of the files its rows describe: how many, and the sum
-- of file_stamp(href, size, mtime_ns) over them, kept in step with every change
-- of a row. A comparison with the disk whose listing has the same fingerprint
-- reads no row (apply_scan): at 100,000 cards that was a third of a check.
CREATE TABLE IF NOT EXISTS listing_sums (
    coll INTEGER PRIMARY KEY,
    cards INTEGER NOT NULL,
    total INTEGER NOT NULL
);
-- A book cached from the PostgreSQL store: what it was filled from (the
-- database's epoch and book id) and the book revision it holds.
CREATE TABLE IF NOT EXISTS mirror (
    coll INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    revision INTEGER NOT NULL
);
"""


#: New cards in one scan from which its secondary indexes are dropped and built
#: again after the inserts (a first index build, a restored folder): inserting
#: 100,000 cards' properties into five B-trees one entry at a time took a third
#: of a rebuild.
BULK_LOAD = 5000
#: The schema one statement at a time (``executescript`` would commit first).
_SCHEMA_STATEMENTS = tuple(
    statement.strip() for statement in re.sub(r"--[^\n]*", "", _SCHEMA).split(";")
    if statement.strip())
_INDEX_STATEMENTS = tuple(s for s in _SCHEMA_STATEMENTS if "CREATE INDEX" in s)
#: New cards written by one statement per table (``_insert_new``).
_INSERT_BATCH = 500
_INSERT_PROPS = ("INSERT INTO props (item, coll, name, value, lvalue, norm, fvalue) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)")
#: props_item stays: a changed card's old properties are deleted through it.
_SECONDARY_INDEXES = tuple(name for name in re.findall(r"CREATE INDEX IF NOT EXISTS (\w+)",
                                                       _SCHEMA) if name != "props_item")


#: A dropped book of BULK_LOAD cards or more, times this, at least the cards that
#: remain: its rows go without their index entries (``_drop_collection``).
_DROP_REBUILD_SHARE = 4


def _fold_only_where_it_differs(db: sqlite3.Connection) -> None:
    """10 -> 11: fvalue '' where it equals lvalue, and props_fold over the others only."""
    db.execute("DROP INDEX IF EXISTS props_fold")  # made again by the schema's statement
    db.execute("UPDATE props SET fvalue = '' WHERE fvalue = lvalue AND fvalue != ''")


#: Versions of the index changed in place, each to the next, rather than rebuilt from
#: the files: a rebuild starts a new epoch, and every client's next sync lists its
#: whole book again.
_MIGRATIONS: dict[str, tuple[str, Callable[[sqlite3.Connection], None]]] = {
    "10": ("11", _fold_only_where_it_differs),
}


def _migrate(db: sqlite3.Connection, version: str) -> None:
    """Bring an index of ``version`` to SCHEMA_VERSION in the open transaction."""
    while version != SCHEMA_VERSION:
        version, step = _MIGRATIONS[version]
        step(db)
        log.info("Index: migrated to version %s", version)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
    for statement in _SCHEMA_STATEMENTS:
        db.execute(statement)


def _drop_secondary_indexes(db: sqlite3.Connection) -> None:
    """Before many rows come or go: their entries are sorted in afresh after."""
    for name in _SECONDARY_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {name}")


def _create_secondary_indexes(db: sqlite3.Connection) -> None:
    """Every index of the schema that is missing, built from the rows as they are.

    SQLite sorts an index's entries with helper threads when allowed: 100,000
    cards' five property indexes took 4.0 s alone, 3.1 s so.
    """
    db.execute(f"PRAGMA threads={min(os.cpu_count() or 1, 4)}")
    try:
        for statement in _INDEX_STATEMENTS:
            db.execute(statement)
    finally:
        db.execute("PRAGMA threads=0")


class _Lease:
    """A thread's hold on a pooled connection, given back when the thread ends.

    The server runs each request in a thread of its own, so a connection per
    thread was a connection per request: opening it (and setting WAL mode)
    cost more than the query of a GET. A thread's ``threading.local`` is
    dropped when the thread ends, and with it this lease, whose finaliser
    returns the connection for the next thread.
    """

    def __init__(self, db: sqlite3.Connection, give_back: Callable[[sqlite3.Connection], None]
                 ) -> None:
        self.db = db
        # Not at the interpreter's exit: a thread still running then (a daemon,
        # such as the rescan's) may be using the connection, and closing it under
        # that thread crashed the process as it ended (a segfault in SQLite).
        weakref.finalize(self, give_back, db).atexit = False


class CardRecord(NamedTuple):
    """Everything the index stores of one card, derived from its text (``card_record``).

    Computed where the card is read: a rebuild's reader processes derive the
    etags, sort keys and search forms in parallel, and send this back instead
    of the card's text (a rebuild held every parsed card's text in memory).
    """

    uid: str
    etag: str
    fn: str
    kind: str
    family: str
    given: str
    sk_name: bytes
    sk_family: bytes
    #: (name, value, lvalue, norm, fvalue) of every indexed value: the ``props`` rows.
    props: list[tuple[str, str, str, str | None, str]]


#: The items columns a CardRecord holds (its fields but ``props``, named as the
#: columns), then those of the file and the change number.
_RECORD_FIELDS = len(CardRecord._fields) - 1
_ITEM_COLUMNS = (*CardRecord._fields[:_RECORD_FIELDS], "size", "mtime_ns", "seq")
_RECORD_COLUMNS = ", ".join(_ITEM_COLUMNS[:_RECORD_FIELDS])


#: Fingerprint totals are kept modulo this: a sum of two stays within SQLite's
#: 64-bit integers (past them SQLite would turn the sum into a float).
_SUM_MODULUS = 1 << 62


def file_stamp(href: str, size: int, mtime_ns: int) -> int:
    """One card file's share of its book's fingerprint (``listing_sums``): 64 bits
    of BLAKE2b over its name, size and mtime (a name holds no ``/``).

    A real hash, not Python's ``hash`` of a tuple: that one is the same in every
    process, but a fingerprint summed from it stayed the same for 23 % of the
    listings in which two files swapped their (size, mtime).
    """
    return int.from_bytes(blake2b(f"{href}/{size}/{mtime_ns}".encode("utf-8", "surrogateescape"),
                                  digest_size=8).digest(), "little")


def holds_database_copies(path: str) -> bool:
    """Whether the index at ``path`` holds books copied from PostgreSQL (``mirror``).

    Read-only, without opening it as ``CardIndex`` does (that would create or
    migrate it); an index that cannot be read, or none, holds none.
    """
    if not os.path.isfile(path):
        return False
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT 1 FROM mirror LIMIT 1").fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False


def listing_fingerprint(found: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(files, total of their stamps) of a listing name -> (size, mtime_ns)."""
    total = sum(file_stamp(href, size, mtime_ns) for href, (size, mtime_ns) in found.items())
    return len(found), total % _SUM_MODULUS


def card_record(text: str, fields: card_fields.CardFields) -> CardRecord:
    """What the index stores of the card ``text`` whose fields are ``fields``."""
    sk_name, sk_family = sort_keys(fields)
    # A group card is not a contact: its CATEGORIES make no member.
    props = [_prop_row(name, value) for name, value in fields.values
             if name not in carddav_query.UNINDEXED_PROPERTIES
             and not (name == "CATEGORIES" and fields.kind == "group")]
    return CardRecord(fields.uid, etag_of(text), fields.fn, fields.kind, fields.family,
                      fields.given, sk_name, sk_family, props)


@dataclass(frozen=True)
class MirrorChange:
    """One card as read from PostgreSQL and written to the cache folder (text None: deleted)."""

    href: str
    seq: int
    text: str | None
    size: int = 0
    mtime_ns: int = 0
    fields: card_fields.CardFields | None = None


class MirrorGroup(Protocol):
    """A group card's row as read from PostgreSQL (``postgres.GroupRow``)."""

    @property
    def href(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def etag(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def deleted(self) -> bool: ...


#: Each connection's own page cache (SQLite's default is 2 MiB). A server's
#: worker holds a connection per request thread, up to 64: under 32 clients at
#: 100,000 cards the caches were half of each worker's memory (300 -> 182 MB
#: over the server with 256 KiB). The B-trees' upper pages fit; the rest is
#: read from the system's file cache, shared by every process.
CONNECTION_CACHE_KIB = 512
#: How long a statement waits for another connection's lock before failing.
BUSY_TIMEOUT_S = 60


class CardIndex(ContactQueries):
    """Thread-safe access to one index database (a connection per thread, pooled)."""

    #: Idle connections kept for the next threads; more are closed.
    POOL_SIZE = 16

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._write_lock = threading.RLock()
        # One write transaction: the server's worker processes open the index at
        # the same moment, and only one of them may find it missing and create it.
        with self._transaction() as db:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            version = (db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                       if "meta" in tables else None)
            if version is not None and version[0] in _MIGRATIONS:
                _migrate(db, version[0])
            elif version is None or version[0] != SCHEMA_VERSION:
                # An index from another version (or none) is simply rebuilt from
                # the files; it is dropped before the schema is created, since
                # the new schema's indexes may name columns the old tables lack.
                for table in tables:
                    if not table.startswith("sqlite_"):
                        db.execute(f'DROP TABLE IF EXISTS "{table}"')
                for statement in _SCHEMA_STATEMENTS:
                    db.execute(statement)
                self._reset(db)
            else:
                for statement in _SCHEMA_STATEMENTS:
                    db.execute(statement)

    # -- connections -----------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        lease: _Lease | None = getattr(self._local, "lease", None)
        if lease is None:
            with self._idle_lock:
                db = self._idle.pop() if self._idle else None
            if db is None:
                db = self._connect()
            lease = self._local.lease = _Lease(db, self._give_back)
        return lease.db

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: a pooled connection moves from a finished
        # thread to the next; a lease keeps it to one thread at a time.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        use_wal(db, within_s=BUSY_TIMEOUT_S)
        # The index is derived data: a lost transaction after a power
        # cut is repaired by reconcile, so no fsync per commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute(f"PRAGMA cache_size=-{CONNECTION_CACHE_KIB}")
        return db

    def _give_back(self, db: sqlite3.Connection) -> None:
        if db.in_transaction:  # a thread died mid-transaction: never reuse that
            db.close()
            return
        with self._idle_lock:
            if len(self._idle) < self.POOL_SIZE:
                self._idle.append(db)
                return
        db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _reset(self, db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.execute("INSERT INTO meta VALUES ('epoch', ?)", (secrets.token_hex(6),))
        db.execute("INSERT INTO meta VALUES ('seq', '0')")

    @staticmethod
    def _next_seq(db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='seq'")
        return int(db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for read-only queries kept in their own module.

        Tables: ``items`` (one row per card: coll, href, uid, etag, size,
        mtime_ns, fn, kind, family, given, seq), ``props`` (item, coll, name, value,
        lvalue = value.lower(), norm = normalised email/phone/category key or NULL,
        fvalue = collation.fold(value), search's case- and accent-free form, where
        that is not lvalue; else '').
        """
        return self._db()

    # -- collections -----------------------------------------------------
    def collection_id(self, path: str, inode: int) -> tuple[int, int]:
        """(id, recorded directory mtime) of a collection, created on demand.

        A collection whose folder was replaced (another inode: deleted and
        created again, or overwritten) starts afresh, so tokens and rows of
        the old folder never leak into the new one.
        """
        row = self._db().execute(
            "SELECT id, inode, dir_mtime_ns FROM collections WHERE path=?", (path,)
        ).fetchone()
        if row is not None and row[1] == inode:
            return int(row[0]), int(row[2])
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, inode, dir_mtime_ns FROM collections WHERE path=?", (path,)
            ).fetchone()
            if row is not None and row[1] == inode:
                return int(row[0]), int(row[2])
            if row is not None:
                self._drop_collection(db, int(row[0]))
            cur = db.execute(
                "INSERT INTO collections (path, inode, seq_floor) VALUES (?, ?, ?)",
                (path, inode, self._next_seq(db)),
            )
            return int(cur.lastrowid or 0), -1

    @staticmethod
    def _drop_collection(db: sqlite3.Connection, coll: int) -> None:
        """Delete every row of ``coll``; a large book's without its rows' index entries.

        Deleting a book's rows one index entry at a time cost 14 s for 100,000
        cards (1.2 million properties, each in four indexes), all of it inside
        the index's write transaction and the storage lock, so every other
        user's write waited. Built again from the rows that remain, the
        secondary indexes cost about 2.3 s per 100,000 other cards; dropped
        first, the same book went in 1.5 s with no other book. So a book of at
        least ``BULK_LOAD`` cards that is more than a quarter of what remains
        goes that way; the indexes are back before the transaction commits.
        """
        cards = int(db.execute("SELECT count(*) FROM items WHERE coll=?",
                               (coll,)).fetchone()[0])
        others = int(db.execute("SELECT count(*) FROM items").fetchone()[0]) - cards
        rebuild = cards >= BULK_LOAD and cards * _DROP_REBUILD_SHARE >= others
        if rebuild:
            _drop_secondary_indexes(db)
        db.execute("DELETE FROM props WHERE item IN (SELECT id FROM items WHERE coll=?)", (coll,))
        db.execute("DELETE FROM items WHERE coll=?", (coll,))
        db.execute("DELETE FROM tombstones WHERE coll=?", (coll,))
        db.execute("DELETE FROM group_cards WHERE coll=?", (coll,))
        db.execute("DELETE FROM mirror WHERE coll=?", (coll,))
        db.execute("DELETE FROM checks WHERE coll=?", (coll,))
        db.execute("DELETE FROM listing_sums WHERE coll=?", (coll,))
        db.execute("DELETE FROM collections WHERE id=?", (coll,))
        if rebuild:
            _create_secondary_indexes(db)

    def forget_collection(self, path: str) -> None:
        """Drop a deleted collection and everything below it."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id FROM collections WHERE path=? OR path LIKE ? ESCAPE '\\'",
                (path, _like_prefix(path + "/")),
            ).fetchall()
            for (coll,) in rows:
                self._drop_collection(db, int(coll))

    # -- reading ---------------------------------------------------------
    def rows(self, coll: int) -> dict[str, ItemRow]:
        cur = self._db().execute(
            "SELECT href, uid, etag, size, mtime_ns, fn, kind, seq FROM items WHERE coll=?",
            (coll,),
        )
        return {r[0]: ItemRow(*r) for r in cur}

    def listing(self, coll: int, max_size: int) -> Iterator[tuple[str, str, int, int]]:
        """(href, etag, mtime_ns, size) of every servable card, in href order, as read
        (the caller keeps what it needs: not a tuple per card of 100,000 at once).

        What a PROPFIND Depth 1 or a first sync lists, without a row object per card:
        group-card files and cards over ``max_size`` are left out, as
        ``Collection._all_rows`` leaves them out. SQLite's ordering of TEXT
        (bytes of UTF-8) is Python's ordering of str (code points).
        """
        return self._db().execute(
            "SELECT href, etag, mtime_ns, size FROM items WHERE coll=? AND kind != 'group' "
            "AND size <= ? ORDER BY href", (coll, max_size))

    def rows_for(self, coll: int, hrefs: Sequence[str]) -> dict[str, ItemRow]:
        """Rows of just these hrefs (a multiget of 10 cards reads 10 rows)."""
        return {r[0]: ItemRow(*r) for r in self._rows_named(
            "href, uid, etag, size, mtime_ns, fn, kind, seq", coll, hrefs)}

    def servable_for(self, coll: int, hrefs: Sequence[str], max_size: int
                     ) -> dict[str, tuple[str, int]]:
        """href -> (etag, size) of those of ``hrefs`` that are servable cards: the
        multiget's lookup, from the listing index alone.

        As ``listing`` keeps them: no group-card files, no card over ``max_size``.
        ``rows_for`` also reads each row from the table (uid, name, seq): at
        100,000 cards, where a multiget's 10 rows are seldom in SQLite's page
        cache, that doubled the lookup (106-160 against 61-64 us for 10).
        """
        return {href: (etag, size) for href, etag, size in self._rows_named(
            "href, etag, size", coll, hrefs, "AND kind != 'group' AND size <= ?", (max_size,))}

    def _rows_named(self, columns: str, coll: int, hrefs: Sequence[str], condition: str = "",
                    params: tuple[object, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """``columns`` of the rows of ``hrefs`` (and ``condition``), 500 names a query
        (SQLite's limit on parameters)."""
        db = self._db()
        for start in range(0, len(hrefs), 500):
            chunk = list(hrefs[start:start + 500])
            marks = ",".join("?" * len(chunk))
            yield from db.execute(
                f"SELECT {columns} FROM items WHERE coll=? AND href IN ({marks}) {condition}",
                (coll, *chunk, *params))

    def row(self, coll: int, href: str) -> ItemRow | None:
        r = self._db().execute(
            "SELECT href, uid, etag, size, mtime_ns, fn, kind, seq FROM items "
            "WHERE coll=? AND href=?",
            (coll, href),
        ).fetchone()
        return ItemRow(*r) if r else None

    def hrefs_with_uid(self, coll: int, uid: str) -> list[str]:
        cur = self._db().execute(
            "SELECT href FROM items WHERE coll=? AND uid=? AND kind != 'group'", (coll, uid))
        return [r[0] for r in cur]

    def select(self, coll: int, where: str, params: Sequence[object],
               by_condition: bool = False) -> list[ItemRow]:
        """Rows of ``coll`` matching an SQL condition over ``items i``.

        ``by_condition``: the condition picks few cards through a value index
        (a query's ``i.id IN (...)``), so SQLite should start from those and
        check the collection per row ("+i.coll") rather than walk every card of
        the book and probe the condition for each (5x slower at 10,000 cards).
        """
        coll_test = "+i.coll=?" if by_condition else "i.coll=?"
        sql = (
            "SELECT href, uid, etag, size, mtime_ns, fn, kind, seq FROM items i "
            f"WHERE {coll_test} AND ({where})"
        )
        return [ItemRow(*r) for r in self._db().execute(sql, (coll, *params))]

    def query(self, coll: int, filters: list[ET.Element], max_size: int | None = None
              ) -> list[ItemRow]:
        """The cards an ``addressbook-query`` filter selects (``carddav_query.Unsupported``
        when it needs Radicale's card-by-card test); ``max_size``: servable contacts only."""
        where, params = carddav_query.translate(filters)
        if max_size is None:
            return self.select(coll, where, params)
        return self.select(coll, f"i.kind != 'group' AND i.size <= ? AND ({where})",
                           [max_size, *params],
                           by_condition=" IN (" in where and "NOT " not in where)

    def last_mtime_ns(self, coll: int) -> int:
        r = self._db().execute("SELECT MAX(mtime_ns) FROM items WHERE coll=?", (coll,)).fetchone()
        return int(r[0] or 0)

    def sync_state(self, coll: int, with_groups: bool = False) -> SyncState:
        db = self._db()
        epoch = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        floor = db.execute("SELECT seq_floor FROM collections WHERE id=?", (coll,)).fetchone()
        seq = self.items_seq(coll)
        if with_groups:
            groups = db.execute("SELECT MAX(seq) FROM group_cards WHERE coll=?",
                                (coll,)).fetchone()[0]
            seq = max(seq, int(groups or 0))
        seq_floor = int(floor[0]) if floor else 0
        return SyncState(str(epoch), coll, max(int(seq or 0), seq_floor), seq_floor)

    def items_seq(self, coll: int) -> int:
        """The newest change to the cards of ``coll`` (group cards excluded)."""
        return self._items_seq(self._db(), coll)

    @staticmethod
    def _items_seq(db: sqlite3.Connection, coll: int) -> int:
        seq = db.execute(
            "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM items WHERE coll=? "
            "UNION ALL SELECT MAX(seq) FROM tombstones WHERE coll=?)",
            (coll, coll),
        ).fetchone()[0]
        return int(seq or 0)

    def changed_since(self, coll: int, seq: int, with_groups: bool = False) -> list[str]:
        """Hrefs added, changed or deleted after ``seq``."""
        sql = ("SELECT href FROM items WHERE coll=? AND seq>? "
               "UNION SELECT href FROM tombstones WHERE coll=? AND seq>?")
        params: list[object] = [coll, seq, coll, seq]
        if with_groups:
            sql += " UNION SELECT href FROM group_cards WHERE coll=? AND seq>?"
            params += [coll, seq]
        return [r[0] for r in self._db().execute(sql, params)]

    # -- categories --------------------------------------------------------
    def category_counts(self, coll: int) -> list[tuple[str, str, int]]:
        """(key, a spelling, member count) of every category used on a card."""
        cur = self._db().execute(
            "SELECT norm, MIN(value), COUNT(DISTINCT item) FROM props "
            "WHERE coll=? AND name='CATEGORIES' GROUP BY norm", (coll,))
        return [(r[0], r[1], int(r[2])) for r in cur]

    def category_keys(self, coll: int) -> list[str]:
        """Every category key on a card of ``coll``, once each, in order.

        One step of ``props_categories`` per key (the next key after the last
        one found), not a scan of every card's categories: 20 keys of 100,000
        cards are 20 lookups.
        """
        db = self._db()
        keys: list[str] = []
        row = db.execute("SELECT MIN(norm) FROM props WHERE coll=? AND name='CATEGORIES'",
                         (coll,)).fetchone()
        while row is not None and row[0] is not None:
            keys.append(row[0])
            row = db.execute("SELECT MIN(norm) FROM props WHERE coll=? AND name='CATEGORIES' "
                             "AND norm > ?", (coll, row[0])).fetchone()
        return keys

    def categories_by_card(self, coll: int, hrefs: Sequence[str] | None = None
                           ) -> dict[str, tuple[str, frozenset[tuple[str, str]]]]:
        """href -> (UID, its (category key, spelling) pairs) of every card (of
        ``hrefs``) that has a category: what the group cards are made of, card
        by card, so a change that touched none of it can be told apart."""
        found: dict[str, tuple[str, set[tuple[str, str]]]] = {}
        db = self._db()
        if hrefs is None:
            batches: list[list[str]] = [[]]
        else:
            batches = [list(hrefs[i:i + 500]) for i in range(0, len(hrefs), 500)]
        for batch in batches:
            # All: from the categories' own index; a few cards: from theirs (0.3 ms,
            # where the categories' index took 150 ms at 100,000 cards).
            sql = ("SELECT i.href, i.uid, p.norm, p.value FROM props p JOIN items i "
                   "ON i.id = p.item WHERE p.coll=? AND p.name='CATEGORIES' "
                   "AND i.kind != 'group'" if hrefs is None else
                   "SELECT i.href, i.uid, p.norm, p.value FROM items i CROSS JOIN props p "
                   "ON p.item = i.id AND p.name = 'CATEGORIES' WHERE i.coll=? "
                   f"AND i.kind != 'group' AND i.href IN ({','.join('?' * len(batch))})")
            for href, uid, key, value in db.execute(sql, (coll, *batch)):
                found.setdefault(href, (uid, set()))[1].add((key, value))
        return {href: (uid, frozenset(pairs)) for href, (uid, pairs) in found.items()}

    def category_members(self, coll: int, key: str) -> list[ItemRow]:
        return self.select(
            coll, "i.kind != 'group' AND i.id IN (SELECT p.item FROM props p "
            "WHERE p.name = 'CATEGORIES' AND p.norm = ?)", [key])

    def group_files(self, coll: int) -> list[ItemRow]:
        """Group cards stored as files (to be turned into categories)."""
        return self.select(coll, "i.kind = 'group'", [])

    def group_cards(self, coll: int) -> dict[str, tuple[str, str, int]]:
        """href -> (uid, etag, seq) of the group cards last shown to clients."""
        cur = self._db().execute(
            "SELECT href, uid, etag, seq FROM group_cards WHERE coll=? AND deleted=0", (coll,))
        return {r[0]: (r[1], r[2], int(r[3])) for r in cur}

    def update_group_cards(self, coll: int, current: dict[str, tuple[str, str]],
                           made_at: int | None = None) -> bool:
        """Record the group cards as they are now; changed ones get a new seq.

        ``made_at``: the cards' newest change (``items_seq``) when ``current`` was
        made. If the cards changed since, nothing is recorded: a rescan changes
        cards without the storage lock, so another process may have recorded
        group cards made after that change already, and these older ones would
        stay recorded over them (its cards matched its own, so it would not
        record again) until the next change. The next request that makes the
        group cards records them.
        """
        known = self.group_cards(coll)
        if {h: (u, e) for h, (u, e, _) in known.items()} == current:
            return False
        with self._transaction() as db:
            if made_at is not None and self._items_seq(db, coll) > made_at:
                return False
            for href, (uid, etag) in current.items():
                old = known.get(href)
                if old is None or (old[0], old[1]) != (uid, etag):
                    db.execute(
                        "INSERT OR REPLACE INTO group_cards (coll, href, uid, etag, seq, deleted)"
                        " VALUES (?, ?, ?, ?, ?, 0)",
                        (coll, href, uid, etag, self._next_seq(db)))
            for href in known.keys() - current.keys():
                db.execute("UPDATE group_cards SET deleted=1, seq=? WHERE coll=? AND href=?",
                           (self._next_seq(db), coll, href))
        return True

    # -- writing ---------------------------------------------------------
    def put(
        self, coll: int, href: str, text: str, size: int, mtime_ns: int,
        fields: card_fields.CardFields | None = None, dir_mtime_ns: int | None = None,
    ) -> ItemRow:
        """Record a card written (by us or found on disk) at ``href``.

        ``dir_mtime_ns``: the book folder's mtime after our own write of the
        file, recorded in the same transaction (one commit per PUT, not two),
        so the next comparison does not take our write for an outside change.
        """
        if fields is None:
            fields = card_fields.extract(text)
        record = card_record(text, fields)
        with self._transaction() as db:
            row = self._put(db, coll, href, record, size, mtime_ns)
            if dir_mtime_ns is not None:
                self._set_dir_mtime(db, coll, dir_mtime_ns)
        return row

    def _put(
        self, db: sqlite3.Connection, coll: int, href: str, record: CardRecord, size: int,
        mtime_ns: int, seq: int | None = None,
    ) -> ItemRow:
        """Write one card's rows; a scan passes one ``seq`` for all its changes.

        A changed card's rows are changed, not replaced: only the columns and
        the properties that differ are written. Each property is an entry in
        up to five B-trees, so deleting and inserting all nine of a typical
        card touched some forty pages scattered over a 230 MB index; with the
        index file partly out of the page cache (the kernel evicts cold pages)
        that was most of a PUT at 100,000 cards.
        """
        if seq is None:
            seq = self._next_seq(db)
        old = db.execute(f"SELECT id, size, mtime_ns, {_RECORD_COLUMNS} FROM items "
                         "WHERE coll=? AND href=?", (coll, href)).fetchone()
        stamp = file_stamp(href, size, mtime_ns)
        if old is not None:
            item_id = int(old[0])
            self._add_to_fingerprint(db, coll, 0, stamp - file_stamp(href, old[1], old[2]))
            self._update_item(db, item_id, old[3:], record, size, mtime_ns, seq)
            self._update_props(db, item_id, coll, record.props)
        else:
            cur = db.execute(
                "INSERT INTO items (coll, href, uid, etag, size, mtime_ns, fn, kind, family, "
                "given, sk_name, sk_family, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (coll, href, record.uid, record.etag, size, mtime_ns, record.fn, record.kind,
                 record.family, record.given, record.sk_name, record.sk_family, seq),
            )
            item_id = int(cur.lastrowid or 0)
            self._add_to_fingerprint(db, coll, 1, stamp)
            db.execute("DELETE FROM tombstones WHERE coll=? AND href=?", (coll, href))
            db.executemany(_INSERT_PROPS, [(item_id, coll, *prop) for prop in record.props])
        return ItemRow(href, record.uid, record.etag, size, mtime_ns, record.fn, record.kind,
                       seq)

    @staticmethod
    def _update_item(db: sqlite3.Connection, item_id: int, was: Sequence[object],
                     record: CardRecord, size: int, mtime_ns: int, seq: int) -> None:
        """Set only the columns that changed: SQLite rewrites an index only for a column set."""
        now = (*record[:_RECORD_FIELDS], size, mtime_ns, seq)
        changed = [(column, value) for column, value, before in
                   zip(_ITEM_COLUMNS, now, (*was, None, None, None), strict=True)
                   if value != before]
        db.execute(f"UPDATE items SET {', '.join(f'{c}=?' for c, _ in changed)} WHERE id=?",
                   (*(v for _, v in changed), item_id))

    @staticmethod
    def _update_props(db: sqlite3.Connection, item_id: int, coll: int,
                      props: list[tuple[str, str, str, str | None, str]]) -> None:
        """Delete the card's properties it no longer has, insert those it gained."""
        wanted = collections.Counter(props)
        stale = []
        for rowid, *prop in db.execute(
                "SELECT rowid, name, value, lvalue, norm, fvalue FROM props WHERE item=?",
                (item_id,)):
            key = tuple(prop)
            if wanted[key] > 0:
                wanted[key] -= 1
            else:
                stale.append((rowid,))
        db.executemany("DELETE FROM props WHERE rowid=?", stale)
        db.executemany(_INSERT_PROPS, [(item_id, coll, *prop)
                                       for prop, count in wanted.items()
                                       for _ in range(count)])

    def _insert_new(self, db: sqlite3.Connection, coll: int, seq: int,
                    cards: list[tuple[str, CardRecord, int, int]]) -> None:
        """Insert cards whose hrefs the collection does not hold: (href, record, size, mtime).

        A statement per table for all of them, the item ids numbered here (the
        write transaction is held, so no other process takes one meanwhile):
        a rebuild made three calls into SQLite per card.
        """
        first = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM items").fetchone()[0])
        db.executemany(
            "INSERT INTO items (id, coll, href, uid, etag, size, mtime_ns, fn, kind, family, "
            "given, sk_name, sk_family, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(first + i, coll, href, r.uid, r.etag, size, mtime_ns, r.fn, r.kind, r.family,
              r.given, r.sk_name, r.sk_family, seq)
             for i, (href, r, size, mtime_ns) in enumerate(cards)])
        db.executemany(_INSERT_PROPS, [(first + i, coll, *prop)
                                       for i, (_, r, _, _) in enumerate(cards)
                                       for prop in r.props])
        self._add_to_fingerprint(db, coll, len(cards), sum(
            file_stamp(href, size, mtime_ns) for href, _, size, mtime_ns in cards))
        if db.execute("SELECT 1 FROM tombstones WHERE coll=? LIMIT 1", (coll,)).fetchone():
            db.executemany("DELETE FROM tombstones WHERE coll=? AND href=?",
                           [(coll, href) for href, _, _, _ in cards])

    def remove(self, coll: int, hrefs: Iterable[str]) -> None:
        with self._transaction() as db:
            self._remove(db, coll, hrefs)

    def _remove(self, db: sqlite3.Connection, coll: int, hrefs: Iterable[str],
                seq: int | None = None, unseen_too: bool = False) -> None:
        """Drop the cards and record their deletion (``unseen_too``: also of cards never indexed).

        A deletion read from PostgreSQL is recorded even when this server never
        held the card (created and deleted between two catch-ups): a sync token
        another server gave while the card existed must still learn it is gone.
        """
        removed = removed_total = 0
        for href in hrefs:
            old = db.execute(
                "SELECT id, size, mtime_ns FROM items WHERE coll=? AND href=?", (coll, href)
            ).fetchone()
            if old is None:
                if unseen_too:
                    db.execute("INSERT OR REPLACE INTO tombstones (coll, href, seq) "
                               "VALUES (?, ?, ?)", (coll, href, self._next_seq(db)
                                                    if seq is None else seq))
                continue
            db.execute("DELETE FROM props WHERE item=?", (old[0],))
            db.execute("DELETE FROM items WHERE id=?", (old[0],))
            db.execute(
                "INSERT OR REPLACE INTO tombstones (coll, href, seq) VALUES (?, ?, ?)",
                (coll, href, self._next_seq(db) if seq is None else seq),
            )
            removed += 1
            removed_total += file_stamp(href, old[1], old[2])
        if removed:
            self._add_to_fingerprint(db, coll, -removed, -removed_total)

    @staticmethod
    def _add_to_fingerprint(db: sqlite3.Connection, coll: int, cards: int, total: int) -> None:
        """Keep ``listing_sums`` in step with a change of rows (in its transaction).

        A book with no fingerprint yet keeps none: its next comparison reads
        every row and records one.
        """
        db.execute("UPDATE listing_sums SET cards = cards + ?, total = (total + ?) % ? "
                   "WHERE coll=?", (cards, total % _SUM_MODULUS, _SUM_MODULUS, coll))

    def apply_scan(
        self, coll: int, dir_mtime_ns: int, found: dict[str, tuple[int, int]],
        read: ReadFile, read_many: ReadFiles | None = None, generation: str = "",
        listed_after: int | None = None,
    ) -> int:
        """Bring ``coll`` in line with a directory listing; return changes made.

        ``found`` maps every card file's name to its (size, mtime_ns); ``read`` returns a
        file's text (or None when it vanished or cannot be read as a card);
        ``read_many``, if given, reads a long list of files (BULK_LOAD or more)
        in order, faster than one by one. The comparison is recorded as made by
        ``generation`` (``checked``).

        A listing whose fingerprint (``listing_fingerprint``) is the one the
        rows keep (``listing_sums``) names the same files with the same sizes
        and mtimes, and no row is read: a server's check at start and each
        rescan of an unchanged 100,000-card book then cost the ``stat`` of
        every file alone. A different fingerprint, or none yet, compares every
        row, as before.

        ``listed_after``: ``items_seq(coll)`` read before the folder was
        listed. A rescan lists the folder without the storage lock (writers
        would wait for a ``stat`` of every card), so a card saved or deleted
        meanwhile is in the rows but not as the listing saw it: such a row
        (a later ``seq``) was written by its writer from its file and is left
        alone, and so is the folder's recorded mtime, which that writer
        recorded after the listing's. Before, a card created during a rescan's
        listing was taken for removed on disk: dropped from the index, with a
        tombstone, so phones were told to delete it (until a later request
        found the folder changed and put it back).
        """
        changes = 0
        scan_seq: int | None = None
        # Summed only for a book that has a fingerprint to match (not a first build).
        listed = listing_fingerprint(found) if self._db().execute(
            "SELECT 1 FROM listing_sums WHERE coll=?", (coll,)).fetchone() else None
        with self._transaction() as db:
            newest = self._items_seq(db, coll)
            if listed_after is None or listed_after > newest:
                listed_after = newest  # (a folder listed under the lock: nothing since)
            record_mtime = dir_mtime_ns if newest == listed_after else None
            if listed is not None and db.execute(
                    "SELECT cards, total FROM listing_sums WHERE coll=?",
                    (coll,)).fetchone() == listed:
                # The files the rows describe, each of the same size and mtime.
                self._record_check(db, coll, record_mtime, generation)
                return 0
            # Each row is checked off the listing as it is read, not kept: a dict
            # of 100,000 rows was a third of a server's check at start.
            unseen = dict(found)
            gone: list[str] = []
            changed: list[tuple[str, tuple[int, int]]] = []
            rows = rows_total = 0
            for href, size, mtime_ns, seq in db.execute(
                    "SELECT href, size, mtime_ns, seq FROM items WHERE coll=?", (coll,)):
                rows += 1
                rows_total += file_stamp(href, size, mtime_ns)
                st = unseen.pop(href, None)
                if seq > listed_after:  # written since the listing, by its writer
                    continue
                if st is None:
                    gone.append(href)
                elif st != (size, mtime_ns):
                    changed.append((href, st))
            # The rows' own fingerprint, kept in step by the changes below.
            db.execute("INSERT OR REPLACE INTO listing_sums (coll, cards, total) "
                       "VALUES (?, ?, ?)", (coll, rows, rows_total % _SUM_MODULUS))
            known = {href for href, _ in changed}  # of the files to read, those indexed
            self._remove(db, coll, gone)
            changes += len(gone)
            bulk = len(unseen) >= BULK_LOAD
            if bulk:  # built again at the end, from sorted entries: far cheaper
                _drop_secondary_indexes(db)
            # New cards in name order: their rows' (coll, href) key then grows at its
            # end instead of at a random page. In a first build of 100,000 cards
            # the rows' inserts took 0.95 s of the index's CPU in name order and
            # 2.15 s in the listing's (three A/B pairs); the other keys come after.
            stale = changed + (sorted(unseen.items()) if bulk else list(unseen.items()))
            del unseen
            hrefs = [href for href, _ in stale]
            loads = (read_many(hrefs) if read_many is not None and len(stale) >= BULK_LOAD
                     else map(read, hrefs))
            new: list[tuple[str, CardRecord, int, int]] = []
            for (href, st), record in zip(stale, loads, strict=True):
                if record is None:
                    if href in known:
                        self._remove(db, coll, [href])
                        changes += 1
                    continue
                if scan_seq is None:
                    scan_seq = self._next_seq(db)
                if href in known:
                    self._put(db, coll, href, record, st[0], st[1], seq=scan_seq)
                else:
                    new.append((href, record, st[0], st[1]))
                    if len(new) >= _INSERT_BATCH:
                        self._insert_new(db, coll, scan_seq, new)
                        new = []
                changes += 1
            if new:
                assert scan_seq is not None
                self._insert_new(db, coll, scan_seq, new)
            if bulk:
                _create_secondary_indexes(db)
            self._record_check(db, coll, record_mtime, generation)
        return changes

    def record_check(self, coll: int, generation: str) -> None:
        """Record ``coll`` as checked by ``generation`` without comparing its files:
        its processes trust the index and leave the comparison to whoever recorded
        this (``Storage.warm_up``: one made just after, without the lock)."""
        with self._transaction() as db:
            self._record_check(db, coll, None, generation)

    def forget_check(self, coll: int) -> None:
        """``record_check`` undone: no process trusts ``coll``'s index without comparing."""
        with self._transaction() as db:
            db.execute("DELETE FROM checks WHERE coll=?", (coll,))

    def _record_check(self, db: sqlite3.Connection, coll: int, dir_mtime_ns: int | None,
                      generation: str) -> None:
        """The comparison recorded; the folder's mtime too, unless a writer's is newer."""
        if dir_mtime_ns is not None:
            self._set_dir_mtime(db, coll, dir_mtime_ns)
        db.execute("INSERT OR REPLACE INTO checks (coll, generation, checked_ns) "
                   "VALUES (?, ?, ?)", (coll, generation, time.time_ns()))

    def empty_log(self, wait_ms: int = 1000) -> None:
        """Copy the write-ahead log into the index file and cut the log to nothing.

        SQLite starts its log over only when a write begins after a complete
        checkpoint. A server stopped before that leaves the log as long as the
        largest transaction it held: after the first build of 100,000 cards,
        287 MB, every page already copied. The first connection of every later
        start then read all of it back (SQLite's recovery), a third of a warm
        start (0.75 -> 1.08 s). SQLite waits for readers to finish with the
        log; at most ``wait_ms`` here, then leaves the log to a later start.
        """
        db = self._db()
        db.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

    def copy_log(self) -> None:
        """Copy what the write-ahead log holds into the index file, waiting for nobody.

        SQLite does this itself (``wal_autocheckpoint``) at the commit that
        brings the log to 1,000 pages, in the writer's own time: a save that
        happened to commit it held the storage lock while it wrote 4 MB and
        flushed the disk. Called often enough after saves release the lock
        (``Storage.acquire_lock``), the log seldom reaches that length, and the
        copy is made by a request that no longer holds anyone up. A PASSIVE
        checkpoint copies what no reader still needs and never waits. A failure
        is only logged: the save is done, and SQLite copies at its own limit.
        """
        try:
            self._db().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            log.warning("Could not copy the index's log into the index: %s", e)

    def checked(self, coll: int) -> tuple[str, int] | None:
        """(generation, wall-clock ns) of the last comparison of ``coll`` with its files."""
        r = self._db().execute("SELECT generation, checked_ns FROM checks WHERE coll=?",
                               (coll,)).fetchone()
        return (str(r[0]), int(r[1])) if r else None

    def claim_rescan(self, coll: int, interval_ns: int) -> bool:
        """Whether this process should compare ``coll`` with its files now.

        True, and the comparison recorded as begun, unless one was made less
        than ``interval_ns`` ago (by any process): each of a server's workers
        rescans on its own timer, and one comparison per interval is enough.
        """
        now = time.time_ns()
        with self._transaction() as db:
            row = db.execute("SELECT checked_ns FROM checks WHERE coll=?", (coll,)).fetchone()
            if row is not None and now - int(row[0]) < interval_ns:
                return False
            if row is None:
                db.execute("INSERT INTO checks (coll, generation, checked_ns) VALUES (?, '', ?)",
                           (coll, now))
            else:
                db.execute("UPDATE checks SET checked_ns=? WHERE coll=?", (now, coll))
        return True

    # -- a cache of the PostgreSQL store ----------------------------------------
    def mirror_state(self, coll: int) -> tuple[str, int] | None:
        """(source, revision) of a book cached from PostgreSQL; None if never filled."""
        r = self._db().execute("SELECT source, revision FROM mirror WHERE coll=?",
                               (coll,)).fetchone()
        return (str(r[0]), int(r[1])) if r else None

    def apply_mirror(self, coll: int, source: str, revision: int, floor: int,
                     changes: Sequence[MirrorChange], full: bool,
                     groups: Sequence[MirrorGroup] = ()) -> None:
        """Record changes read from PostgreSQL, each under its own book revision.

        The rows take the database's revisions as their ``seq``, so
        ``changed_since`` answers a sync token issued by any server of the
        database. ``full``: ``changes`` is the whole book (and ``groups`` every
        group row); any other row goes. A change whose text is None is a
        deletion; one whose fields are None is a file that is no card (kept on
        disk, never listed). ``groups``: the group view's group cards as the
        database recorded them (``PgStore.record_groups``); this server never
        numbers them itself.
        """
        with self._transaction() as db:
            if full:
                listed = {g.href for g in groups}
                db.execute(f"UPDATE group_cards SET deleted=1, seq=? WHERE coll=? AND deleted=0 "
                           f"AND href NOT IN ({','.join('?' * len(listed))})",
                           [revision, coll, *listed])
            for group in groups:
                db.execute("INSERT OR REPLACE INTO group_cards (coll, href, uid, etag, seq, "
                           "deleted) VALUES (?, ?, ?, ?, ?, ?)",
                           (coll, group.href, group.uid, group.etag, group.revision,
                            int(group.deleted)))
            db.execute("DELETE FROM group_cards WHERE coll=? AND deleted=1 AND seq<=?",
                       (coll, floor))
            if full:
                kept = {c.href for c in changes if c.text is not None and c.fields is not None}
                gone = [r[0] for r in db.execute("SELECT href FROM items WHERE coll=?",
                                                 (coll,)) if r[0] not in kept]
                self._remove(db, coll, gone, seq=revision)
            for change in changes:
                if change.text is None:
                    self._remove(db, coll, [change.href], seq=change.seq, unseen_too=True)
                elif change.fields is None:
                    self._remove(db, coll, [change.href], seq=change.seq)
                else:
                    self._put(db, coll, change.href, card_record(change.text, change.fields),
                              change.size, change.mtime_ns, seq=change.seq)
            db.execute("UPDATE collections SET seq_floor=? WHERE id=?", (floor, coll))
            # Deletions the database forgot (pruned: below its floor) go here too.
            db.execute("DELETE FROM tombstones WHERE coll=? AND seq<=?", (coll, floor))
            db.execute("INSERT OR REPLACE INTO mirror (coll, source, revision) VALUES (?, ?, ?)",
                       (coll, source, revision))

    def set_dir_mtime(self, coll: int, dir_mtime_ns: int) -> None:
        with self._transaction() as db:
            self._set_dir_mtime(db, coll, dir_mtime_ns)

    @staticmethod
    def _set_dir_mtime(db: sqlite3.Connection, coll: int, dir_mtime_ns: int) -> None:
        db.execute("UPDATE collections SET dir_mtime_ns=? WHERE id=?", (dir_mtime_ns, coll))

    def prune_tombstones(self, coll: int, keep: int) -> None:
        """Forget all but the newest ``keep`` deletions; older tokens become invalid."""
        with self._transaction() as db:
            cut = db.execute(
                "SELECT seq FROM tombstones WHERE coll=? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                (coll, keep),
            ).fetchone()
            if cut is None:
                return
            db.execute("DELETE FROM tombstones WHERE coll=? AND seq<=?", (coll, cut[0]))
            db.execute(
                "UPDATE collections SET seq_floor=MAX(seq_floor, ?) WHERE id=?", (cut[0], coll)
            )


#: Properties search looks in (collation.fold'ed into fvalue); TEL is searched by digits.
_FOLDED = frozenset({"FN", "N", "NICKNAME", "ORG", "EMAIL", "CATEGORIES", "NOTE", "UID", "ADR",
                     "TITLE", "X-PHONETIC-FIRST-NAME", "X-PHONETIC-LAST-NAME", "TEL"})


def _prop_row(name: str, value: str) -> tuple[str, str, str, str | None, str]:
    """(name, value, lvalue, norm, fvalue): one ``props`` row.

    fvalue is search's folded form, kept only where it is not lvalue already
    ('' then, as for a property search does not look in): the plain ASCII
    values, nine in ten, would otherwise be stored and indexed twice, which
    was a tenth of a first index build at 100,000 cards.
    """
    lvalue = value.lower()
    folded = collation.fold(value) if name in _FOLDED else ""
    return name, value, lvalue, _norm(name, value), "" if folded == lvalue else folded


def sort_keys(fields: card_fields.CardFields) -> tuple[bytes, bytes]:
    """UCA keys of the card's name: by its name as shown (FN), and by family name
    then given name (a card without a family name sorts by its FN there too)."""
    by_name = collation.sort_key(fields.fn)
    if fields.family:
        return by_name, collation.sort_key(f"{fields.family} {fields.given}")
    return by_name, by_name


#: The properties with a normal form (``norm``), and how it is made.
_NORMALISED: dict[str, Callable[[str], str]] = {
    "EMAIL": card_fields.normalise_email, "TEL": card_fields.normalise_phone,
    "CATEGORIES": card_fields.category_key}


def _norm(name: str, value: str) -> str | None:
    normalise = _NORMALISED.get(name)
    return normalise(value) if normalise is not None else None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
