"""Repeated failed logins slow down the address they come from, nobody else.

Radicale's ``[auth] delay`` makes each failed login wait about a second,
but a guesser with many connections waits in parallel. Here each client
address (``REMOTE_ADDR``) may fail ``FAILURES`` times within ``WINDOW``
seconds; then every request from it that carries credentials, right or
wrong, is answered 429 with ``Retry-After`` until its block ends. Each new
block of the same address is twice as long as the one before (from
``FIRST_BLOCK`` up to ``MAX_BLOCK``); an address quiet for ``MAX_BLOCK`` is
forgotten. Logins from other addresses are never affected.

The refusal happens before any password is checked or any delay slept. A
record is read and written in one short transaction, never across a sleep
or a hash.

A burst is counted before it is checked: a credential not yet seen to work
reserves one of the address's remaining attempts for as long as its request
runs (``begin`` ... ``finish``). A login beyond them waits (at most
``QUEUE_SECONDS``) until a running one ends: fifty wrong passwords sent at
once from one address get as many checks as five sent one after the other,
and the rest find the address blocked. Right passwords sent at once (a phone
opening eight connections to a server that just started) wait only for the
first to succeed: a credential that worked (kept only as a keyed hash, in
memory) is never held back again.

The records are kept in a small SQLite file in the data folder, so the
server's worker processes count an address's failures and running logins
together: a burst spread over the processes gets no more checks than one
process would allow. With PostgreSQL they are a table of the database
(``store/pg_login_records.py``), so several servers count together too.
Behind a reverse proxy every client shares the proxy's address; the proxy
should then limit logins itself.
"""

from __future__ import annotations

import hmac
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.store.login_records import LoginRecords, Records, Reservation, reservation
from cardfile.plugin.store.pg_login_records import PgLoginRecords

if TYPE_CHECKING:
    from cardfile.plugin.store.postgres import PgStore

FAILURES = 5
#: ``[auth] failed_logins``: failures allowed per address per WINDOW (0 turns the throttle off).
OPTION = "failed_logins"
WINDOW = 60.0
FIRST_BLOCK = 60.0
MAX_BLOCK = 3600.0
radicale.register_option("auth", OPTION, str(FAILURES),
                         "failed logins allowed per client address per minute before it "
                         "must wait (0: no limit)", int)
#: The records' file in the data folder, shared by the server's processes.
RECORDS_FILE = ".cardfile-logins.sqlite3"
#: A reservation outlives a login that never ends by at most this (one whose process
#: died on this machine is dropped at once: ``drop_dead_reservations``).
RESERVATION_SECONDS = 120.0
#: How often a login waiting for a running one looks again.
QUEUE_POLL = 0.05
#: Credentials remembered as working, at most, and for how long.
MAX_GOOD_CREDENTIALS = 10_000
GOOD_FOR = 3600.0
#: How long a login may wait for a running one from its address to end.
QUEUE_SECONDS = 10.0


@dataclass
class LoginAttempt:
    """One request's login, from ``begin`` to ``finish``."""

    address: str
    credential: bytes
    #: Seconds the address must wait (the request is refused 429); 0 = go on.
    wait: int = 0
    #: The request holds one of the address's attempts until it finishes.
    reserved: bool = False
    held: Reservation | None = None


class LoginThrottle:
    """Failed logins per client address, and whether that address must wait.

    The records live in a small SQLite file in the data folder
    (``.cardfile-logins.sqlite3``, ``store/login_records.py``), so the
    server's worker processes count one address's failures together;
    ``path=None`` keeps them in this process only. Times are wall-clock
    seconds, the one clock processes share.
    """

    def __init__(self, failures: int = FAILURES, window: float = WINDOW,
                 first_block: float = FIRST_BLOCK, max_block: float = MAX_BLOCK,
                 path: str | None = None, records: Records | None = None) -> None:
        self.failures = failures
        self.window = window
        self.first_block = first_block
        self.max_block = max_block
        self._records: Records = records or LoginRecords(path, forget_after=max_block)
        self._good: dict[bytes, float] = {}  # keyed hash of a working credential -> expiry
        self._key = secrets.token_bytes(32)  # per process: the hashes mean nothing elsewhere
        self._lock = threading.Lock()  # guards _good

    @classmethod
    def from_configuration(cls, configuration: Any, database: PgStore | None = None
                           ) -> LoginThrottle:
        """The throttle of the configuration; with ``database``, shared by every server."""
        folder = str(configuration.get("storage", "filesystem_folder"))
        records = PgLoginRecords(database, MAX_BLOCK) if database is not None else None
        return cls(failures=int(configuration.get("auth", OPTION)),
                   path=os.path.join(folder, RECORDS_FILE), records=records)

    # -- a login ------------------------------------------------------------------
    def begin(self, address: str, authorization: str) -> LoginAttempt:
        """Start a login from ``address``: refused (``wait`` > 0) or admitted.

        Call ``finish`` with the answer's status when the request ends.
        """
        credential = hmac.digest(self._key, authorization.encode("utf-8", "replace"),
                                 "sha256")
        attempt = LoginAttempt(address, credential)
        if self.failures <= 0:
            return attempt
        give_up = time.time() + QUEUE_SECONDS
        while True:
            now = time.time()
            with self._lock:
                good = self._good.get(credential, 0.0) > now
            if good:  # only a block can stop it: one read, no write transaction
                blocked_until = self._records.blocked_until(address)
                if blocked_until > now:
                    attempt.wait = max(1, math.ceil(blocked_until - now))
                return attempt
            with self._records.changing(address, now) as record:
                if record.blocked_until > now:
                    attempt.wait = max(1, math.ceil(record.blocked_until - now))
                    return attempt
                recent = sum(1 for t in record.failures if now - t < self.window)
                if recent + len(record.in_flight) < self.failures:
                    attempt.reserved, attempt.held = True, reservation(now + RESERVATION_SECONDS)
                    record.in_flight.append(attempt.held)
                    return attempt
            if now >= give_up:
                attempt.wait = 1  # unchecked logins from here kept running all along
                return attempt
            time.sleep(QUEUE_POLL)

    def finish(self, attempt: LoginAttempt, status: int) -> None:
        """End ``attempt``: 401 counts a failure, a success remembers the credential."""
        if self.failures <= 0 or attempt.wait:
            return
        if status == 401:
            self.failed(attempt.address, attempt)  # counted as the reservation is given back
            return
        if status < 400:
            self._remember(attempt.credential)
        self._give_back(attempt)

    def proved(self, attempt: LoginAttempt) -> None:
        """The credential was checked and works: remember it and give back the attempt now.

        For a request whose login is checked before it does its slow part
        (reading a body): other logins with the same credential need not wait
        for it to end.
        """
        if self.failures <= 0 or attempt.wait:
            return
        self._remember(attempt.credential)
        self._give_back(attempt)

    def _remember(self, credential: bytes) -> None:
        now = time.time()
        with self._lock:
            if len(self._good) >= MAX_GOOD_CREDENTIALS:
                self._good = {k: t for k, t in self._good.items() if t > now}
                if len(self._good) >= MAX_GOOD_CREDENTIALS:
                    self._good.clear()
            self._good[credential] = now + GOOD_FOR

    def _give_back(self, attempt: LoginAttempt) -> None:
        if not attempt.reserved:
            return
        attempt.reserved = False  # once: proved() and then finish() give back one attempt
        with self._records.changing(attempt.address, time.time()) as record:
            if attempt.held in record.in_flight:
                record.in_flight.remove(attempt.held)

    def failed(self, address: str, attempt: LoginAttempt | None = None) -> None:
        """Count a failed login from ``address``; block it when it failed too often."""
        if self.failures <= 0:
            return
        now = time.time()
        with self._records.changing(address, now) as record:
            if attempt is not None and attempt.reserved:
                attempt.reserved = False
                if attempt.held in record.in_flight:
                    record.in_flight.remove(attempt.held)
            if now - record.last_seen > self.max_block:
                record.blocks = 0  # quiet long enough: blocks start short again
            record.last_seen = now
            record.failures = [t for t in record.failures if now - t < self.window]
            record.failures.append(now)
            if len(record.failures) >= self.failures:
                block = min(self.first_block * 2 ** record.blocks, self.max_block)
                record.blocked_until = now + block
                record.blocks += 1
                record.failures.clear()
