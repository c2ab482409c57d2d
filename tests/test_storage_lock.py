"""The storage lock (``radicale_adapter.StorageRwLock``) is Radicale's, minus a write per read.

Radicale opened ``.Radicale.lock`` with ``open(path, "w+")`` at every acquire:
truncating the empty file changed its times, a metadata write on every
request, reads included. Cardfile opens it without truncating. The lock
must stay the one other processes (another worker, a stock Radicale on the
same folder, ``cardfile`` commands) see: ``flock`` on that same file, shared
for reads and exclusive for writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardfile.cli.server import Recipe
from cardfile.plugin.contacts import storage as storage_mod

LOCK_FILE = ".Radicale.lock"

#: A second process asks for the lock file's flock without waiting and says what it got.
_PROBE = """
import fcntl, sys
fd = open(sys.argv[1], "rb")
for name, flag in (("shared", fcntl.LOCK_SH), ("exclusive", fcntl.LOCK_EX)):
    try:
        fcntl.flock(fd, flag | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        print(name, "free")
    except BlockingIOError:
        print(name, "taken")
"""


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[storage_mod.Storage]:
    yield storage_mod.Storage(Recipe(data_dir=str(tmp_path), config_file=None).configuration())


def _probe(lock_file: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(lock_file)], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.split("\n")[:2]


def test_reads_leave_the_lock_file_as_it_was(storage: storage_mod.Storage,
                                             tmp_path: Path) -> None:
    with storage.acquire_lock("r"):
        pass
    lock_file = tmp_path / LOCK_FILE
    before = os.stat(lock_file)
    time.sleep(0.05)  # beyond the file system's timestamp granularity
    for _ in range(3):
        with storage.acquire_lock("r"):
            pass
    after = os.stat(lock_file)
    assert (after.st_mtime_ns, after.st_ctime_ns) == (before.st_mtime_ns, before.st_ctime_ns)


def test_another_process_sees_the_lock_on_the_same_file(storage: storage_mod.Storage,
                                                       tmp_path: Path) -> None:
    lock_file = tmp_path / LOCK_FILE
    with storage.acquire_lock("r"):
        assert storage.write_locked() is False
        assert _probe(lock_file) == ["shared free", "exclusive taken"]
    with storage.acquire_lock("w"):
        assert storage.write_locked() is True
        assert _probe(lock_file) == ["shared taken", "exclusive taken"]
    assert storage.write_locked() is False
    assert _probe(lock_file) == ["shared free", "exclusive free"]
