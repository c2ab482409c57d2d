"""Work a process repeats in the background, stopped before the interpreter ends.

Cardfile runs a few rounds on timers in its server processes: the rescan of
books for cards edited in place (``storage``), source refreshes
(``refresher``) and the pruning of old deletions (``tombstones``). Each ran
in a daemon thread left running at exit. At exit Python clears the frames of
the threads still alive while they may be inside C code (SQLite, a
directory listing), which can crash the process at its very end. The test
run's own process once ended so in CI, with a segmentation fault after every
test had passed; rescan threads of the applications some tests build in that
process are alive at its end.

A ``Repeating`` is still a daemon thread (it never holds up an exit by
itself), but every one is stopped at exit (``atexit``, which runs before
that clearing): no new round starts, and a running round is waited for, up
to ``EXIT_WAIT`` seconds.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

log = logging.getLogger("cardfile")

#: Longest an exit waits for a running round (a rescan of 100,000 cards is about a second).
EXIT_WAIT = 10.0

_running: weakref.WeakSet[Repeating] = weakref.WeakSet()
_running_lock = threading.Lock()


class Repeating:
    """``work()`` every ``interval`` seconds in a daemon thread, until ``stop``.

    An exception from a round is logged and the next round runs on time: a
    bug in one round must not end the schedule.
    """

    def __init__(self, name: str, interval: float, work: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        with _running_lock:
            _running.add(self)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """No new round; wait up to ``wait`` seconds for a running one to end."""
        self._stop.set()
        thread = self._thread
        if wait > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    @property
    def stopping(self) -> bool:
        """For long rounds: stop early between steps once this is true."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._work()
            except Exception:
                log.exception("Background work %s failed", self.name)


@atexit.register
def _stop_all() -> None:
    """Stop every schedule of this process before Python tears its threads down."""
    with _running_lock:
        schedules = list(_running)
    for schedule in schedules:
        schedule.stop()
    for schedule in schedules:
        schedule.stop(wait=EXIT_WAIT)
