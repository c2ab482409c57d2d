"""Repeated failed logins slow down the address they come from, nobody else.

Radicale's ``[auth] delay`` makes each failed login wait about a second,
but a guesser with many connections waits in parallel. Here each client
address (``REMOTE_ADDR``) may fail ``FAILURES`` times within ``WINDOW``
seconds; then every request from it that carries credentials, right or
wrong, is answered 429 with ``Retry-After`` until its block ends. Each new
block of the same address is twice as long as the one before (from
``FIRST_BLOCK`` up to ``MAX_BLOCK``); an address quiet for ``MAX_BLOCK`` is
forgotten. Logins from other addresses are never affected.

The refusal happens before any password is checked or any delay slept. The
lock guards only a few dictionary operations, never a sleep or a hash.

A burst is counted before it is checked: a credential not yet seen to work
reserves one of the address's remaining attempts for as long as its request
runs (``begin`` ... ``finish``). A login beyond them waits (at most
``QUEUE_SECONDS``) until a running one ends: fifty wrong passwords sent at
once from one address get as many checks as five sent one after the other,
and the rest find the address blocked. Right passwords sent at once (a phone
opening eight connections to a server that just started) wait only for the
first to succeed: a credential that worked (kept only as a keyed hash, in
memory) is never held back again.

With several server processes (``cardfile serve``'s workers), each keeps its
own records and admits its ``share`` of the failures: the shares add up to
the configured limit, so a burst spread over the processes still gets no
more checks than one process would allow.
Behind a reverse proxy every client shares the proxy's address; the proxy
should then limit logins itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cardfile.plugin import radicale_adapter as radicale

FAILURES = 5
#: ``[auth] failed_logins``: failures allowed per address per WINDOW (0 turns the throttle off).
OPTION = "failed_logins"
WINDOW = 60.0
FIRST_BLOCK = 60.0
MAX_BLOCK = 3600.0
radicale.register_option("auth", OPTION, str(FAILURES),
                         "failed logins allowed per client address per minute before it "
                         "must wait (0: no limit)", int)
#: Addresses remembered at most (memory stays bounded under a spray of addresses).
MAX_ADDRESSES = 10_000
#: Credentials remembered as working, at most, and for how long.
MAX_GOOD_CREDENTIALS = 10_000
GOOD_FOR = 3600.0
#: How long a login may wait for a running one from its address to end.
QUEUE_SECONDS = 10.0


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0
    last_seen: float = 0.0
    #: Logins with a credential not yet known to work, running now.
    in_flight: int = 0


@dataclass
class LoginAttempt:
    """One request's login, from ``begin`` to ``finish``."""

    address: str
    credential: bytes
    #: Seconds the address must wait (the request is refused 429); 0 = go on.
    wait: int = 0
    #: The request holds one of the address's attempts until it finishes.
    reserved: bool = False


class LoginThrottle:
    """Failed logins per client address, and whether that address must wait."""

    def __init__(self, failures: int = FAILURES, window: float = WINDOW,
                 first_block: float = FIRST_BLOCK, max_block: float = MAX_BLOCK) -> None:
        self.failures = failures
        self.window = window
        self.first_block = first_block
        self.max_block = max_block
        self._records: dict[str, _Record] = {}
        self._good: dict[bytes, float] = {}  # keyed hash of a working credential -> expiry
        self._key = secrets.token_bytes(32)  # per process: the hashes mean nothing elsewhere
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # a reserved login finished

    def share(self, index: int, of: int) -> None:
        """Admit this process's part (``index`` of ``of`` processes) of the failures allowed."""
        if self.failures > 0 and of > 1:
            self.failures = max(1, self.failures // of + (1 if index < self.failures % of else 0))

    @classmethod
    def from_configuration(cls, configuration: Any) -> LoginThrottle:
        return cls(failures=int(configuration.get("auth", OPTION)))

    def begin(self, address: str, authorization: str) -> LoginAttempt:
        """Start a login from ``address``: refused (``wait`` > 0) or admitted.

        Call ``finish`` with the answer's status when the request ends.
        """
        credential = hmac.new(self._key, authorization.encode("utf-8", "replace"),
                              hashlib.sha256).digest()
        attempt = LoginAttempt(address, credential)
        if self.failures <= 0:
            return attempt
        give_up = time.monotonic() + QUEUE_SECONDS
        with self._lock:
            while True:
                now = time.monotonic()
                record = self._records.get(address)
                if record is not None and record.blocked_until > now:
                    attempt.wait = max(1, math.ceil(record.blocked_until - now))
                    return attempt
                if self._good.get(credential, 0.0) > now:
                    return attempt
                if record is None:
                    if len(self._records) >= MAX_ADDRESSES:
                        self._forget_quiet(now)
                    record = self._records[address] = _Record(last_seen=now)
                recent = sum(1 for t in record.failures if now - t < self.window)
                if recent + record.in_flight < self.failures:
                    record.in_flight += 1
                    attempt.reserved = True
                    return attempt
                if now >= give_up:
                    attempt.wait = 1  # unchecked logins from here kept running all along
                    return attempt
                self._ended.wait(give_up - now)

    def finish(self, attempt: LoginAttempt, status: int) -> None:
        """End ``attempt``: 401 counts a failure, a success remembers the credential."""
        if self.failures <= 0 or attempt.wait:
            return
        if status == 401:
            self.failed(attempt.address)  # counted before the reservation is given back
        elif status < 400:
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
        now = time.monotonic()
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
        with self._lock:
            record = self._records.get(attempt.address)
            if record is not None and record.in_flight > 0:
                record.in_flight -= 1
            self._ended.notify_all()

    def failed(self, address: str) -> None:
        """Count a failed login from ``address``; block it when it failed too often."""
        if self.failures <= 0:
            return
        now = time.monotonic()
        with self._lock:
            record = self._records.get(address)
            if record is None:
                if len(self._records) >= MAX_ADDRESSES:
                    self._forget_quiet(now)
                record = self._records[address] = _Record()
            elif now - record.last_seen > self.max_block:
                record.blocks = 0  # quiet long enough: blocks start short again
            record.last_seen = now
            record.failures = [t for t in record.failures if now - t < self.window]
            record.failures.append(now)
            if len(record.failures) >= self.failures:
                block = min(self.first_block * 2 ** record.blocks, self.max_block)
                record.blocked_until = now + block
                record.blocks += 1
                record.failures.clear()

    def _forget_quiet(self, now: float) -> None:
        quiet = [a for a, r in self._records.items()
                 if now - r.last_seen > self.max_block and r.blocked_until <= now
                 and not r.in_flight]
        for address in quiet:
            del self._records[address]
        if len(self._records) >= MAX_ADDRESSES:  # a spray: the oldest go first
            oldest = sorted(self._records, key=lambda a: self._records[a].last_seen)
            for address in oldest[: len(oldest) // 2]:
                del self._records[address]
