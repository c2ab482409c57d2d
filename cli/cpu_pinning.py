"""A worker's request threads on a core of their own, so they find their data in its cache.

A worker's request threads (up to 64) take turns holding Python's
interpreter lock, and Linux moves each thread to whichever core is free. So
one request's thread often ran on the other core from the last request's:
the interpreter's objects, the application's dicts and SQLite's pages were
then read from the other core's cache, or from memory. In process, one GET's
application call at 100,000 cards took 0.25-0.29 ms in a loop on one
thread, 0.67-0.73 ms passed round 64 threads, and 0.34-0.43 ms passed round
64 threads that were all kept on one core.

So when there are at least as many usable cores as workers (two or more),
each worker keeps the threads that run its requests on the core of its slot
(``worker_slots``; a worker that dies is replaced on the same core). Each
request thread is moved there when it runs its first request
(``CorePinning.pin_this_thread``), and the threads it starts (body readers)
inherit it. Granian's own I/O thread (Rust, ``tokio-rt-worker``) keeps every
core: it reads and writes the sockets while the interpreter runs, and kept
on the same core it took that core's time from the request holding the
storage lock (the mix's slowest saves took three times as long). The cores
used are those this process may use (``os.sched_getaffinity``: a
container's or ``taskset``'s set); with fewer of them than workers nothing
is pinned, as the scheduler shares them better than a fixed assignment.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("cardfile")


class CorePinning:
    """The core this worker's request threads run on (``core`` None: they are not pinned)."""

    def __init__(self, core: int | None) -> None:
        self.core = core
        self._pinned = threading.local()

    @classmethod
    def for_worker(cls, slot: int, workers: int) -> CorePinning:
        """The core of ``slot`` when each of ``workers`` workers can have one of its own."""
        try:
            usable = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            return cls(None)
        if workers < 2 or len(usable) < workers:
            return cls(None)
        core = usable[slot % len(usable)]
        log.debug("Worker %d runs its requests on core %d", slot, core)
        return cls(core)

    def pin_this_thread(self) -> None:
        """Keep the calling thread on this worker's core (once per thread)."""
        if self.core is None or getattr(self._pinned, "done", False):
            return
        self._pinned.done = True
        try:
            os.sched_setaffinity(0, {self.core})  # 0: the calling thread
        except OSError as e:  # the core was taken from this process meanwhile
            log.debug("Could not keep a request thread on core %d: %s", self.core, e)
