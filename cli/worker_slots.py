"""Which of the server's worker processes this one is: a numbered slot held by a file lock.

Granian starts ``workers`` processes on one socket and starts a new one when
one dies; none is told its place. Background work needs it: only slot 0
refreshes connected sources (so that no two processes refresh the same source
at once) and prunes old deletions from PostgreSQL (``contacts/tombstones.py``).
A slot is an exclusive ``flock`` on ``.cardfile-worker-N.lock`` at the top of the data folder,
held while the process lives; the kernel frees it when the process dies, so
its replacement takes the same slot. ``cardfile backup`` leaves these out.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

PREFIX = ".cardfile-worker-"
#: How long a new worker waits for a slot a dying one still holds.
WAIT_SECONDS = 10.0

_held: list[IO[str]] = []  # open for the life of the process: closing frees the slot


def claim(data_dir: Path, count: int) -> int:
    """This process's slot, 0 to ``count - 1`` (the last if none frees in time)."""
    give_up = time.monotonic() + WAIT_SECONDS
    while True:
        for index in range(count):
            handle = open(data_dir / f"{PREFIX}{index}.lock", "a", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            os.set_inheritable(handle.fileno(), False)
            _held.append(handle)
            return index
        if time.monotonic() >= give_up:
            return count - 1
        time.sleep(0.1)
