"""The first connections to a fresh data folder's shared SQLite files all open.

Every worker process and thread opens its own connection to the login
records (and the index, and the history) and asks for WAL mode. On a new
file SQLite refuses at once ("database is locked", without waiting its busy
timeout) a connection that meets another one switching the file to WAL: CI
saw a 500 for one of the first requests of a fresh two-worker server
(tests/test_serve.py, ``test_each_worker_answers_on_a_core_of_its_own``).
Here two real processes of 16 threads each make their first look at fresh
records at the same moment, many times over (the race came about once in
twenty fresh files).
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

from cardfile.plugin.store.login_records import LoginRecords

PROCESSES, THREADS, FRESH_FILES = 2, 16, 40


def _first_looks(path: str, start: Any, errors: Any) -> None:
    """THREADS threads of one process look at the records at once; errors are sent back."""
    records = LoginRecords(path, forget_after=60)
    together = threading.Barrier(THREADS)
    found: list[str] = []

    def look() -> None:
        together.wait()
        try:
            records.blocked_until("192.0.2.1")
        except Exception as e:  # what a request would have answered 500 for
            found.append(repr(e))

    start.wait()
    threads = [threading.Thread(target=look) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors.put(found)


def test_every_first_connection_to_fresh_login_records_opens(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    failed: list[str] = []
    for i in range(FRESH_FILES):
        path = str(tmp_path / f"logins-{i}.sqlite3")
        start, errors = context.Event(), context.Queue()
        processes = [context.Process(target=_first_looks, args=(path, start, errors))
                     for _ in range(PROCESSES)]
        for process in processes:
            process.start()
        start.set()
        for _ in processes:
            failed += errors.get(timeout=60)
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    assert failed == [], failed[:3]
