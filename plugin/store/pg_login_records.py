"""The login throttle's records in PostgreSQL, so every server counts one address's guesses.

With the file store the records are a SQLite file the worker processes of one
server share (``login_records.py``). With several servers on one database a
guesser would otherwise get the limit once per server; here the row of an
address is read and written back in one transaction under its row lock, so
two servers never both hand out an address's last attempt. The interface is
``LoginRecords``'s.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cardfile.plugin.store.login_records import AddressRecord

if TYPE_CHECKING:
    from cardfile.plugin.store.postgres import PgStore


#: Seconds a block read for a known-good login is reused (``blocked_until``).
BLOCK_READ_SECONDS = 1.0


class PgLoginRecords:
    """Per-address records in the ``login_addresses`` table (schema version 3)."""

    def __init__(self, store: PgStore, forget_after: float) -> None:
        self._store = store
        self._forget_after = forget_after
        #: address -> (when read, monotonic; its blocked_until)
        self._blocks: dict[str, tuple[float, float]] = {}
        self._blocks_lock = threading.Lock()

    def blocked_until(self, address: str) -> float:
        """When the address's block ends (0: not blocked); one read, no write.

        Asked only for a login this server already knows to be good (see
        ``LoginThrottle.begin``), so a block another server set reaches such
        a login up to ``BLOCK_READ_SECONDS`` late: the read is shared by that
        second's requests instead of being a round trip on every one. Guesses
        (logins not known good) read and write the row itself (``changing``),
        never this.
        """
        now = time.monotonic()
        with self._blocks_lock:
            read = self._blocks.get(address)
        if read is not None and now - read[0] < BLOCK_READ_SECONDS:
            return read[1]
        with self._store._conn() as conn:
            row = conn.execute("SELECT blocked_until FROM login_addresses WHERE address = %s",
                               (address,)).fetchone()
        until = float(row[0]) if row else 0.0
        self._remember(address, until)
        return until

    def _remember(self, address: str, until: float) -> None:
        with self._blocks_lock:
            if len(self._blocks) > 10_000:  # many addresses: start over rather than grow
                self._blocks.clear()
            self._blocks[address] = (time.monotonic(), until)

    @contextlib.contextmanager
    def changing(self, address: str, now: float) -> Iterator[AddressRecord]:
        """The address's record, written back when the block ends without an error."""
        with self._store._conn() as conn, conn.transaction():
            conn.execute("INSERT INTO login_addresses (address, last_seen) VALUES (%s, %s) "
                         "ON CONFLICT (address) DO NOTHING", (address, now))
            row = conn.execute(
                "SELECT failures, blocked_until, blocks, last_seen, in_flight "
                "FROM login_addresses WHERE address = %s FOR UPDATE", (address,)).fetchone()
            record = AddressRecord(json.loads(row[0]), float(row[1]), int(row[2]),
                                   float(row[3]), json.loads(row[4]))
            record.drop_dead_reservations(now)
            yield record
            conn.execute(
                "UPDATE login_addresses SET failures = %s, blocked_until = %s, blocks = %s, "
                "last_seen = %s, in_flight = %s WHERE address = %s",
                (json.dumps(record.failures), record.blocked_until, record.blocks,
                 record.last_seen, json.dumps(record.in_flight), address))
            self._remember(address, record.blocked_until)
            if secrets.randbelow(100) == 0:  # now and then: forget the quiet
                conn.execute("DELETE FROM login_addresses WHERE last_seen < %s "
                             "AND blocked_until < %s", (now - self._forget_after, now))
