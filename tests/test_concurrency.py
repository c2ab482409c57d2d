"""Concurrent clients and ``cardfile import`` on one book: nothing lost, nothing corrupt.

The workload and every check live in ``bench/load_test.py`` (run it there for
longer: ``--seconds 300 --clients 32``); this runs it briefly against a real
server. Duration and clients: ``CARDFILE_LOAD_SECONDS`` (default 12) and
``CARDFILE_LOAD_CLIENTS`` (default 8).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import load_test
from tests.conftest import cardfile_command, start_server

pytestmark = pytest.mark.slow  # measured: see README "Set up a fresh machine"

SECONDS = float(os.environ.get("CARDFILE_LOAD_SECONDS", "12"))
CLIENTS = int(os.environ.get("CARDFILE_LOAD_CLIENTS", "8"))


def test_concurrent_writers_and_import_lose_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path, {load_test.USER: load_test.PASSWORD})
    try:
        report = load_test.run(server.url, server.data_dir, cardfile_command(), SECONDS,
                               CLIENTS, import_cards=300)
    finally:
        server.stop()
    print("\n" + report.summary())
    assert report.ok, report.summary()
    assert report.requests > 0 and report.writes > 0 and report.import_runs >= 1
    assert report.conflicts > 0  # the mix made writes collide, and they were refused
    assert "Traceback" not in server.log()
