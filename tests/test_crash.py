"""``kill -9`` of the server and of ``cardfile import`` during writes loses nothing acknowledged.

The procedure and its checks live in ``bench/crash_test.py`` (run it there
for many more kills: ``--kills 100``); this runs it a few times against a
real server. Kills: ``CARDFILE_CRASH_KILLS`` (default 10).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import crash_test
from tests.conftest import cardfile_command, run_cli

pytestmark = pytest.mark.slow  # measured: see README "Set up a fresh machine"

KILLS = int(os.environ.get("CARDFILE_CRASH_KILLS", "10"))


def test_kill_9_during_writes_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run_cli("user", "add", crash_test.USER, "--password-stdin", data_dir=data_dir,
            stdin=crash_test.PASSWORD + "\n")
    report = crash_test.run(data_dir, cardfile_command(), KILLS, writers=4, per_writer=15,
                            import_cards=150)
    print("\n" + report.summary())
    assert report.ok, report.summary()
    assert report.kills == KILLS and report.restarts_checked == KILLS
    assert report.writes > 0
    # The last clean start removed what the kills left behind.
    book = data_dir / "collection-root" / crash_test.USER / "contacts"
    assert not [p for p in book.iterdir() if p.name.startswith(".Radicale.tmp")]
    assert not list((data_dir / ".staged-cards").glob("*"))  # cards written before a save
