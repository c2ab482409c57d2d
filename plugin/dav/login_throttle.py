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
Behind a reverse proxy every client shares the proxy's address; the proxy
should then limit logins itself.
"""

from __future__ import annotations

import math
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


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0
    last_seen: float = 0.0


class LoginThrottle:
    """Failed logins per client address, and whether that address must wait."""

    def __init__(self, failures: int = FAILURES, window: float = WINDOW,
                 first_block: float = FIRST_BLOCK, max_block: float = MAX_BLOCK) -> None:
        self.failures = failures
        self.window = window
        self.first_block = first_block
        self.max_block = max_block
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_configuration(cls, configuration: Any) -> LoginThrottle:
        return cls(failures=int(configuration.get("auth", OPTION)))

    def retry_after(self, address: str) -> int:
        """Whole seconds ``address`` must still wait; 0 when it may try to log in."""
        if self.failures <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            record = self._records.get(address)
            if record is None or record.blocked_until <= now:
                return 0
            return max(1, math.ceil(record.blocked_until - now))

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
                 if now - r.last_seen > self.max_block and r.blocked_until <= now]
        for address in quiet:
            del self._records[address]
        if len(self._records) >= MAX_ADDRESSES:  # a spray: the oldest go first
            oldest = sorted(self._records, key=lambda a: self._records[a].last_seen)
            for address in oldest[: len(oldest) // 2]:
                del self._records[address]
