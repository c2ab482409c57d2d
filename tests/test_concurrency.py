"""Concurrent clients and ``cardfile import`` on one book: nothing lost, nothing corrupt.

The workload and every check live in ``bench/load_test.py`` (run it there for
longer: ``--seconds 300 --clients 32``); this runs it briefly against a real
server. Duration and clients: ``CARDFILE_LOAD_SECONDS`` (default 12) and
``CARDFILE_LOAD_CLIENTS`` (default 8).
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from bench import load_test
from cardfile.plugin.store.turnstile import Turnstile
from tests.conftest import ServerProcess, cardfile_command, start_server
from tests.davclient import card

pytestmark = pytest.mark.slow  # measured: see README "Set up a fresh machine"

SECONDS = float(os.environ.get("CARDFILE_LOAD_SECONDS", "12"))
CLIENTS = int(os.environ.get("CARDFILE_LOAD_CLIENTS", "8"))


def test_concurrent_writers_and_import_lose_nothing(tmp_path: Path, store_config: str) -> None:
    server = start_server(tmp_path, {load_test.USER: load_test.PASSWORD},
                          store_config=store_config)
    try:
        report = load_test.run(server.url, server.data_dir, cardfile_command(), SECONDS,
                               CLIENTS, import_cards=300, config=server.config_path)
    finally:
        server.stop()
    print("\n" + report.summary())
    assert report.ok, report.summary()
    assert report.requests > 0 and report.writes > 0 and report.import_runs >= 1
    assert report.conflicts > 0  # the mix made writes collide, and they were refused
    assert "Traceback" not in server.log()


def test_a_save_is_not_held_up_by_a_stream_of_reads(server: ServerProcess) -> None:
    """While readers keep the storage lock busy, a save is answered in good time.

    Each reader here holds the lock as every Cardfile process does
    (``Storage.acquire_lock``: the turnstile, then a shared ``flock`` on
    Radicale's lock file) for 0.3 s, three at a time and staggered, so there is
    never a moment without a reader: a stream of overlapping syncs, as 50
    clients make. Before writers went first (plugin/store/turnstile.py), a
    save waited for such a moment, so here until the readers stopped.
    """
    alice = server.client()
    assert alice.put("first.vcf", card("first", "First One"))[0] == 201
    stop = threading.Event()

    def read_in_turn(delay: float) -> int:
        time.sleep(delay)
        held = 0
        while not stop.is_set():
            with Turnstile(str(server.data_dir)).passing():
                fd = os.open(server.data_dir / ".Radicale.lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(fd, fcntl.LOCK_SH)
            time.sleep(0.3)
            os.close(fd)
            held += 1
        return held

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(read_in_turn, 0.1 * n) for n in range(3)]
        try:
            time.sleep(0.8)  # the readers overlap
            started = time.monotonic()
            save = pool.submit(alice.put, "ann.vcf", card("ann", "Ann Lee"))
            # Waited for at most 2 s; after that the readers stop, so it ends.
            concurrent.futures.wait([save], timeout=2.0)
            waited = time.monotonic() - started
        finally:
            stop.set()
        assert all(reader.result() > 0 for reader in readers)
        assert save.result()[0] == 201
    assert waited < 2.0, "the save was still waiting behind the readers after 2 s"
