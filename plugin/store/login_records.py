"""The login throttle's records: one row per client address, in a small SQLite file.

``dav/login_throttle.py`` decides; this keeps what it decided on, where every
worker process of the server sees it (``.cardfile-logins.sqlite3`` in the
data folder, or in memory for one process). A record is read and written
back in one short write transaction (``BEGIN IMMEDIATE``), so two processes
never both take an address's last attempt. Nothing here is precious: the
file is not fsynced and a lost write only slows a guesser less.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class AddressRecord:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0
    last_seen: float = 0.0
    #: Until when each running login with a credential not yet known to work holds
    #: one of the address's attempts.
    in_flight: list[float] = field(default_factory=list)


class Records(Protocol):
    """Where the throttle keeps its records: this SQLite file, or PostgreSQL."""

    def blocked_until(self, address: str) -> float: ...

    def changing(self, address: str, now: float
                 ) -> contextlib.AbstractContextManager[AddressRecord]: ...


class LoginRecords:
    """Per-address records, shared by the processes that open the same file."""

    def __init__(self, path: str | None, forget_after: float) -> None:
        self._path = path or ":memory:"
        self._forget_after = forget_after
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        self._memory_lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._path == ":memory:":
            if self._memory is None:
                self._memory = self._open()
            return self._memory
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._open()
        return db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=10, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE IF NOT EXISTS addresses (address TEXT PRIMARY KEY, "
                   "failures TEXT NOT NULL, blocked_until REAL NOT NULL, blocks INTEGER NOT NULL, "
                   "last_seen REAL NOT NULL, in_flight TEXT NOT NULL)")
        return db

    def _guard(self) -> contextlib.AbstractContextManager[object]:
        # One in-memory connection is shared by the threads; a file has one per thread.
        return self._memory_lock if self._path == ":memory:" else contextlib.nullcontext()

    def blocked_until(self, address: str) -> float:
        """When the address's block ends (0: not blocked); one read, no write."""
        with self._guard():
            row = self._db().execute("SELECT blocked_until FROM addresses WHERE address=?",
                                     (address,)).fetchone()
        return float(row[0]) if row else 0.0

    @contextlib.contextmanager
    def changing(self, address: str, now: float) -> Iterator[AddressRecord]:
        """The address's record, written back when the block ends without an error."""
        with self._guard():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT failures, blocked_until, blocks, last_seen, in_flight "
                                 "FROM addresses WHERE address=?", (address,)).fetchone()
                record = (AddressRecord(json.loads(row[0]), row[1], row[2], row[3],
                                        json.loads(row[4])) if row
                          else AddressRecord(last_seen=now))
                # Reservations of a process that died mid-login run out on their own.
                record.in_flight = [t for t in record.in_flight if t > now]
                yield record
                db.execute("INSERT OR REPLACE INTO addresses VALUES (?, ?, ?, ?, ?, ?)",
                           (address, json.dumps(record.failures), record.blocked_until,
                            record.blocks, record.last_seen, json.dumps(record.in_flight)))
                if row is None and secrets.randbelow(100) == 0:  # now and then: forget the quiet
                    db.execute("DELETE FROM addresses WHERE last_seen < ? AND blocked_until < ?",
                               (now - self._forget_after, now))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
