"""At the server's start, one process compares every book's files with the index.

Each worker process used to compare every book with the index before it
served (``Storage.warm_up``), one worker after the other under the storage
write lock: at 100,000 cards, two workers took 3.4 s to start where one
comparison is 0.6 s. Now ``cardfile serve`` forks one process for it, before
Granian starts the workers, and that process records the comparison in the
index under this start's generation (``Storage.generation``); the workers
trust it (``Collection._coll``) and only ever compare a book again when its
folder changes or on their periodic rescans.

The process is forked from the master, so it starts with the master's
imports and no interpreter start, and it exits when done, so its memory (a
first index build of 100,000 cards holds far more than serving them does)
is given back instead of staying in a worker for the server's life. It
takes the storage's write lock before the master goes on: every request a
worker receives meanwhile waits for the comparison of the books whose
folders changed (a card added, removed or renamed), as it waited for the
workers' own before; the other books are compared after the lock is let go,
while the workers serve, since only an edit in place can be found there
(``Storage.warm_up``). The master meanwhile imports the rest of the
application and starts Granian, so the two overlap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from typing import Any

from cardfile.plugin.store import parent_death

log = logging.getLogger("cardfile")


def check_in_a_child(configuration: Any) -> bool:
    """Start the comparison in a forked process; True once it holds the write lock.

    False if the process could not be started or ended before taking the lock:
    then each worker compares the books itself, as before.
    """
    master = os.getpid()
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        log.warning("Could not start the index check (%s); each worker checks", e)
        os.close(read_end)
        os.close(write_end)
        return False
    if pid == 0:  # pragma: no cover (the child process)
        os.close(read_end)
        _child(configuration, master, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as signal_pipe:
        locked = signal_pipe.read(1) == b"1"  # b"" if the child ended first
    # Reaped when it ends, so it leaves no zombie while the server runs.
    threading.Thread(target=os.waitpid, args=(pid, 0), name="cardfile-check-reaper",
                     daemon=True).start()
    return locked


def _child(configuration: Any, master: int, write_end: int) -> None:
    """Compare, log what was found, and leave without running the master's exit code."""
    status = 1
    try:
        # Stop with the master (kill -9 of cardfile serve); a transaction cut short rolls back.
        parent_death.end_with(master)
        from cardfile.plugin import Storage

        def locked() -> None:
            os.write(write_end, b"1")

        started = time.monotonic()
        storage = Storage(configuration)
        books, cards = storage.warm_up(on_locked=locked)
        log.info("Index ready: %d address book(s), %d card(s) in %.1f s", books, cards,
                 time.monotonic() - started)
        status = 0
    except BaseException:  # the workers then check the books themselves
        log.error("The index check at start failed; each worker checks:\n%s",
                  traceback.format_exc())
    finally:
        os._exit(status)
