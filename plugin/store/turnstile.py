"""Writers first: a turnstile in front of Radicale's storage lock.

Radicale's storage lock is a readers-writer lock on one file (``flock``):
shared for reads, exclusive for writes, across the threads and the worker
processes of a server. Linux grants a shared ``flock`` whenever no exclusive
one is *held*, even while a writer waits, so under a steady stream of reads
(50 clients syncing, fetching and searching) a write waited for a moment
with no reader at all: in the 50-client mix a PUT that takes 5 ms alone
waited a median of 350 ms, and the writes were the mix's slowest tenth.

The turnstile is a second lock file taken exclusively, briefly, by everyone
on the way in: a reader holds it only until it has its shared lock, a writer
until it has its exclusive lock. A waiting writer thus holds the turnstile,
new readers queue behind it, the readers already in finish, and the writer
goes next. Readers still read together; they only pass the turnstile one at
a time, which is one ``flock`` each.

Only the outermost hold of a thread passes the turnstile: a thread that
already holds the storage lock and takes it again (nested) must not wait
behind a writer that waits for that thread.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

#: The turnstile's file, beside Radicale's ``.Radicale.lock`` in the data folder.
TURNSTILE_FILE_NAME = ".cardfile-turnstile.lock"


class Turnstile:
    """The way in to the storage lock, one at a time (see the module's docstring)."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, TURNSTILE_FILE_NAME)

    @contextlib.contextmanager
    def passing(self) -> Iterator[None]:
        """Hold the turnstile for the block: take the storage lock inside it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


class ReadSlots:
    """At most ``count`` reads of this process inside the storage lock at once.

    The others wait, in the order they came, for a slot before they go to
    the turnstile: a slot passes straight to the longest waiting read, so a
    read that just arrived never takes it first (a plain semaphore let it,
    and the mix's slowest reads waited longer).

    A waiting read waits on a plain lock of its own, taken for it in advance
    and released by the read that passes it the slot. A ``threading.Event``
    per wait (a condition, a lock and a waiter lock inside) was 5 % of the
    server's interpreter time in the 50-client mix, half of it in
    ``Event.set``.
    """

    def __init__(self, count: int) -> None:
        self._free = count
        self._lock = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a slot for the block."""
        with self._lock:
            turn = None
            if self._free and not self._waiting:
                self._free -= 1
            else:
                turn = threading.Lock()
                turn.acquire()  # released by the read that passes the slot on
                self._waiting.append(turn)
        if turn is not None:
            turn.acquire()
        try:
            yield
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().release()  # the slot passes on
                else:
                    self._free += 1
