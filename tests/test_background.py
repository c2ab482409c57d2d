"""Background rounds (rescans, source refreshes, pruning) end cleanly with their process.

Each case runs a real Python process, as a server's worker is one, and looks at
what it left: a round that was running when the process exited had finished,
and the process exited with status 0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cardfile.plugin.store.background import Repeating

    log = Path(sys.argv[1])
    def round_of_work():
        with log.open("a") as f:
            f.write("started\\n")
        time.sleep(0.4)  # in C, without the GIL, as a rescan's stat or SQLite step is
        with log.open("a") as f:
            f.write("finished\\n")
        if sys.argv[2] == "fail":
            raise RuntimeError("a bug in one round")

    Repeating("test-round", 0.01, round_of_work).start()
    time.sleep(float(sys.argv[3]))
""")


def _run(tmp_path: Path, mode: str, seconds: float) -> tuple[list[str], str]:
    log = tmp_path / "rounds.log"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode, str(seconds)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().split(), done.stderr


def test_a_round_running_at_exit_finishes_before_the_process_ends(tmp_path: Path) -> None:
    lines, _ = _run(tmp_path, "ok", 0.2)  # exits while the first round sleeps
    assert lines == ["started", "finished"]


def test_a_failing_round_is_logged_and_the_next_one_runs(tmp_path: Path) -> None:
    lines, stderr = _run(tmp_path, "fail", 1.0)
    assert lines.count("started") >= 2
    assert lines.count("started") == lines.count("finished")
    assert "Background work test-round failed" in stderr and "a bug in one round" in stderr
