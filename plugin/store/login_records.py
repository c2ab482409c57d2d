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
import functools
import json
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cardfile.plugin.store.sqlite_wal import use_wal

#: One running login's hold on an attempt: ``[until, owner]`` as JSON keeps it
#: (``owner``: ``this_process()``). Records written before owners were kept
#: hold a bare ``until``.
Reservation = list[Any]


@dataclass
class AddressRecord:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0
    last_seen: float = 0.0
    #: Each running login with a credential not yet known to work holds one of
    #: the address's attempts (``Reservation``).
    in_flight: list[Reservation] = field(default_factory=list)

    def drop_dead_reservations(self, now: float) -> None:
        """Forget the reservations whose login cannot end any more.

        A login's process can die mid-login (a ``kill -9`` of the server, or
        of a worker): its reservation would hold one of the address's
        attempts until it runs out. A server restarted at once, whose
        clients all log in again, then found the address's attempts all
        held and answered 429 for ten seconds. A reservation owned by a
        process of this machine that is gone is dropped at once; one from
        another machine (servers sharing PostgreSQL) still runs out by time.
        """
        self.in_flight = [r for r in self.in_flight if _still_running(r, now)]


def reservation(until: float) -> Reservation:
    """A reservation, owned by this process, held until ``until`` at the latest."""
    return [until, this_process()]


def _still_running(held: Any, now: float) -> bool:
    until, owner = (held, None) if isinstance(held, (int, float)) else (held[0], held[1])
    if until <= now:
        return False
    if not isinstance(owner, str):
        return True
    machine, _, process = owner.rpartition("/")
    pid, _, started = process.partition(":")
    if machine != _this_machine() or not pid.isdigit():
        return True
    return _start_time(int(pid)) == started


@functools.cache
def _this_machine() -> str:
    """This machine, as its processes' ids are counted: host name and boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()
    except OSError:
        boot_id = ""
    return f"{socket.gethostname()}/{boot_id}"


def this_process() -> str:
    """This process, told apart from a later one given the same id (its start time)."""
    return _process_name(os.getpid())


@functools.lru_cache(maxsize=8)
def _process_name(pid: int) -> str:
    # Keyed by the pid: a forked worker computes its own once, not per login.
    return f"{_this_machine()}/{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot ("" if there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


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
        use_wal(db, within_s=10)
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
                record.drop_dead_reservations(now)
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
