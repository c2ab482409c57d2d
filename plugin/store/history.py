"""A book's history: every change, with the card as it was just before it.

Unlike the card index this is *not* derived: it cannot be rebuilt from the
``.vcf`` files, so it lives in its own SQLite file outside the index
(``history/<user>/<book>/history.sqlite3`` in the data folder), and
rebuilding or deleting the index never touches it. A backup archives it
like any other data file.

One row per change (``events``): when, which contact (UID and href), what
(added, changed, deleted), who and with which client, and the card's text
*before* the change (``before``, NULL for an addition). The version after a
change is the next change's ``before``, or the card file itself for the
newest, so each version is stored once, an addition costs no text at all,
and the state of the book at any time T is, for each contact changed after
T, the ``before`` of its first change after T. Texts are zlib-compressed
and stored once per content hash (``texts``): restoring an old version and
deleting a card that was just edited share one copy.

Commits are in WAL mode without an fsync of their own (``synchronous=NORMAL``):
the card file written with the change is fsync'd, and a killed process loses
nothing here; a power cut may lose the last few history rows (never the
file's consistency). That keeps one fsync per write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cardfile.plugin.store.sqlite_wal import use_wal

SCHEMA_VERSION = "1"
FILE_NAME = "history.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS texts (
    hash BLOB PRIMARY KEY,
    data BLOB NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns INTEGER NOT NULL,
    uid TEXT NOT NULL,
    href TEXT NOT NULL,
    action TEXT NOT NULL,
    before BLOB,
    fn TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL DEFAULT '',
    client TEXT NOT NULL DEFAULT '',
    agent TEXT NOT NULL DEFAULT '',
    via TEXT NOT NULL DEFAULT '',
    emptied INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_uid ON events (uid, id);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ns);
CREATE INDEX IF NOT EXISTS events_deleted ON events (action, time_ns);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns INTEGER NOT NULL,
    since_ns INTEGER NOT NULL,
    until_ns INTEGER NOT NULL,
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    emptied INTEGER NOT NULL DEFAULT 0,
    book_size INTEGER NOT NULL DEFAULT 0,
    dismissed INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Change:
    """One change to record (``before`` is the card's text before it, None if added)."""

    time_ns: int
    uid: str
    href: str
    action: str  # "added", "changed" or "deleted"
    before: str | None
    fn: str = ""
    user: str = ""
    client: str = ""
    agent: str = ""
    via: str = ""
    emptied: bool = False


@dataclass(frozen=True)
class Event:
    """One recorded change; ``before`` is the key of the prior text (see ``text``)."""

    id: int
    time_ns: int
    uid: str
    href: str
    action: str
    before: bytes | None
    fn: str
    user: str
    client: str
    agent: str
    via: str
    emptied: bool


@dataclass(frozen=True)
class Alert:
    id: int
    time_ns: int
    since_ns: int
    until_ns: int
    user: str
    client: str
    deleted: int
    emptied: int
    book_size: int


_EVENT_COLUMNS = "id, time_ns, uid, href, action, before, fn, user, client, agent, via, emptied"
_ALERT_COLUMNS = "id, time_ns, since_ns, until_ns, user, client, deleted, emptied, book_size"


def _event(row: tuple[Any, ...]) -> Event:
    (id_, time_ns, uid, href, action, before, fn, user, client, agent, via, emptied) = row
    return Event(id_, time_ns, uid, href, action, before, fn, user, client, agent, via,
                 bool(emptied))


def text_hash(text: str) -> bytes:
    """A text's key: 16 bytes of its SHA-256 (stored in every change; collisions: none)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def compressed_texts(changes: list[Change]
                     ) -> tuple[dict[bytes, tuple[bytes, int]], list[bytes | None]]:
    """The texts of ``changes`` as both stores keep them, before any transaction begins:
    key -> (zlib data, size), once per text, and each change's text key (None: no text)."""
    texts: dict[bytes, tuple[bytes, int]] = {}
    digests: list[bytes | None] = []
    for change in changes:
        digest = None
        if change.before is not None:
            digest = text_hash(change.before)
            if digest not in texts:
                raw = change.before.encode("utf-8")
                texts[digest] = (zlib.compress(raw, 6), len(raw))
        digests.append(digest)
    return texts, digests


class HistoryBackend(Protocol):
    """What one book's history is kept in, as ``contacts/history.py`` and ``undo.py`` use it.

    Two kinds: ``HistoryStore`` (a SQLite file in the data folder, the file
    store's) and ``pg_history.PgHistoryStore`` (tables of the PostgreSQL
    store, so every server of one database sees one history, trash and guard).
    ``path`` names the history for logs and per-book bookkeeping.
    """

    path: str

    def is_current(self) -> bool: ...
    def close(self) -> None: ...
    def record(self, changes: Iterable[Change]) -> list[int]: ...
    def forget_contact(self, uid: str) -> int: ...
    def prune(self, cutoff_ns: int, max_bytes: int) -> int: ...
    def size_bytes(self) -> int: ...
    def since_ns(self) -> int: ...
    def text(self, digest: bytes) -> str | None: ...
    def events_of(self, uid: str) -> list[Event]: ...
    def latest(self, uid: str) -> Event | None: ...
    def deletions(self, since_ns: int) -> list[Event]: ...
    def first_changes_after(self, time_ns: int) -> list[Event]: ...
    def count(self) -> int: ...
    def destructive_since(self, user: str, client: str, since_ns: int
                          ) -> list[tuple[int, bool]]: ...
    def open_alert(self, user: str, client: str, after_ns: int) -> Alert | None: ...
    def raise_alert(self, alert: Alert) -> int: ...
    def alerts(self) -> list[Alert]: ...
    def dismiss_alert(self, alert_id: int) -> bool: ...


class HistoryStore:
    """One book's history database; every method is one transaction or one query.

    Writes happen under Radicale's storage write lock (one writer at a time,
    across processes); the Python lock only keeps this process's threads off
    the one connection at the same time.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
        use_wal(self._db, within_s=60)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._inode = os.stat(path).st_ino
        with self._transaction() as db:
            if db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                db.execute("INSERT INTO meta VALUES ('since_ns', ?)", (str(start_ns()),))

    def is_current(self) -> bool:
        """Is the open file still the one at ``path`` (a restore may have swapped it)?"""
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writing ---------------------------------------------------------------
    def record(self, changes: Iterable[Change]) -> list[int]:
        """Record changes in one transaction; returns their ids.

        The texts go in first, in the order of their keys: a hash puts each at
        a random place in its B-tree, and a whole book's texts (a book deleted
        at once, under the storage's write lock) written at random pages made
        recording 100,000 deletions take 4.5-4.7 s; in key order each page is
        filled in turn (3.3 s). They are compressed before the transaction
        begins.
        """
        changes = list(changes)
        texts, digests = compressed_texts(changes)
        ids = []
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO texts VALUES (?, ?, ?)",
                           [(digest, data, size) for digest, (data, size) in sorted(texts.items())])
            for change, digest in zip(changes, digests, strict=True):
                cursor = db.execute(
                    "INSERT INTO events (time_ns, uid, href, action, before, fn, user, client,"
                    " agent, via, emptied) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (change.time_ns, change.uid, change.href, change.action, digest,
                     change.fn, change.user, change.client, change.agent, change.via,
                     int(change.emptied)))
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def forget_contact(self, uid: str) -> int:
        """Drop every change of ``uid`` (purging it from the trash); returns how many."""
        with self._transaction() as db:
            count = db.execute("DELETE FROM events WHERE uid = ?", (uid,)).rowcount
            self._drop_unused_texts(db)
        return int(count)

    def prune(self, cutoff_ns: int, max_bytes: int) -> int:
        """Drop changes older than ``cutoff_ns``, then the oldest until under ``max_bytes``.

        Nothing older than the cutoff is needed: the state at any time T after
        it comes from the first change after T. Returns how many went.
        """
        dropped = 0
        with self._transaction() as db:
            dropped += db.execute("DELETE FROM events WHERE time_ns < ?",
                                  (cutoff_ns,)).rowcount
            if dropped:
                self._drop_unused_texts(db)
            since = cutoff_ns
            while max_bytes > 0 and self._bytes(db) > max_bytes:
                # The oldest tenth of what is left goes, until it fits.
                count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                if not count:
                    break
                row = db.execute("SELECT time_ns FROM events ORDER BY id LIMIT 1 OFFSET ?",
                                 (max(1, count // 10),)).fetchone()
                edge = int(row[0]) if row else _now_ns()
                dropped += db.execute("DELETE FROM events WHERE time_ns < ?", (edge,)).rowcount
                self._drop_unused_texts(db)
                since = max(since, edge)
                if row is None:
                    break
            old = int(db.execute("SELECT value FROM meta WHERE key='since_ns'").fetchone()[0])
            if since > old:
                db.execute("UPDATE meta SET value = ? WHERE key='since_ns'", (str(since),))
        return int(dropped)

    @staticmethod
    def _drop_unused_texts(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM texts WHERE hash NOT IN "
                   "(SELECT before FROM events WHERE before IS NOT NULL)")

    @staticmethod
    def _bytes(db: sqlite3.Connection) -> int:
        """Pages in use (the file keeps freed pages for reuse; they do not count)."""
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        return (int(pages) - int(free)) * int(size)

    def size_bytes(self) -> int:
        """Bytes the history's database uses (pages in use, WAL not counted)."""
        with self._lock:
            return self._bytes(self._db)

    # -- reading ---------------------------------------------------------------
    def since_ns(self) -> int:
        """The earliest time the history can go back to (creation or the last prune)."""
        return int(self._query("SELECT value FROM meta WHERE key='since_ns'")[0][0])

    def text(self, digest: bytes) -> str | None:
        rows = self._query("SELECT data FROM texts WHERE hash = ?", (digest,))
        if not rows:
            return None
        data = rows[0][0]
        assert isinstance(data, bytes)
        return zlib.decompress(data).decode("utf-8")

    def events_of(self, uid: str) -> list[Event]:
        """Every recorded change of one contact, oldest first."""
        return [_event(r) for r in self._query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE uid = ? ORDER BY id", (uid,))]

    def latest(self, uid: str) -> Event | None:
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE uid = ? "
                           "ORDER BY id DESC LIMIT 1", (uid,))
        return _event(rows[0]) if rows else None

    def deletions(self, since_ns: int) -> list[Event]:
        """The newest change of each contact whose newest change is a deletion, newest first."""
        return [_event(r) for r in self._query(
            f"SELECT {', '.join('e.' + c.strip() for c in _EVENT_COLUMNS.split(','))} "
            "FROM events e WHERE e.action = 'deleted' AND e.time_ns >= ? "
            "AND e.id = (SELECT MAX(id) FROM events WHERE uid = e.uid) "
            "ORDER BY e.id DESC", (since_ns,))]

    def first_changes_after(self, time_ns: int) -> list[Event]:
        """For each contact changed after ``time_ns``, its first change after it."""
        return [_event(r) for r in self._query(
            f"SELECT {', '.join('e.' + c.strip() for c in _EVENT_COLUMNS.split(','))} "
            "FROM events e JOIN (SELECT uid, MIN(id) AS first FROM events WHERE time_ns > ? "
            "GROUP BY uid) f ON e.id = f.first ORDER BY e.id", (time_ns,))]

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM events")[0][0])

    def destructive_since(self, user: str, client: str, since_ns: int
                          ) -> list[tuple[int, bool]]:
        """(time, is a deletion) of this user and client's deletions and emptied cards.

        Restores are left out: a restore the user asked for is no accident.
        """
        return [(int(t), bool(d)) for t, d in self._query(
            "SELECT time_ns, action = 'deleted' FROM events WHERE time_ns >= ? AND user = ? "
            "AND client = ? AND (action = 'deleted' OR emptied = 1) "
            "AND via NOT LIKE 'restore%' ORDER BY id", (since_ns, user, client))]

    # -- mass-change alerts ----------------------------------------------------
    def open_alert(self, user: str, client: str, after_ns: int) -> Alert | None:
        """The undismissed alert of this user and client that lasted past ``after_ns``."""
        rows = self._query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE dismissed = 0 AND "
                           "user = ? AND client = ? AND until_ns >= ? ORDER BY id DESC LIMIT 1",
                           (user, client, after_ns))
        return Alert(*rows[0]) if rows else None

    def raise_alert(self, alert: Alert) -> int:
        with self._transaction() as db:
            if alert.id:
                db.execute("UPDATE alerts SET until_ns = ?, deleted = ?, emptied = ?, "
                           "book_size = ? WHERE id = ?", (alert.until_ns, alert.deleted,
                                                          alert.emptied, alert.book_size,
                                                          alert.id))
                return alert.id
            cursor = db.execute(
                "INSERT INTO alerts (time_ns, since_ns, until_ns, user, client, deleted, "
                "emptied, book_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (alert.time_ns, alert.since_ns, alert.until_ns, alert.user, alert.client,
                 alert.deleted, alert.emptied, alert.book_size))
            return int(cursor.lastrowid or 0)

    def alerts(self) -> list[Alert]:
        """Undismissed alerts, newest first."""
        return [Alert(*r) for r in self._query(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE dismissed = 0 ORDER BY id DESC")]

    def dismiss_alert(self, alert_id: int) -> bool:
        with self._transaction() as db:
            return bool(db.execute("UPDATE alerts SET dismissed = 1 WHERE id = ? AND "
                                   "dismissed = 0", (alert_id,)).rowcount)


def _now_ns() -> int:
    return time.time_ns()


def start_ns() -> int:
    """Where a new history begins: the start of this second.

    A time typed to the second then covers a history begun within it
    (nothing was recorded before).
    """
    return _now_ns() // 1_000_000_000 * 1_000_000_000
