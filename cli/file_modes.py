"""Keep an existing data folder private to its owner.

New files and folders are private because every ``cardfile`` command runs
with umask 077 (``cli/main.py``). A data folder made by an older version, by
hand, or by a test harness may still be readable by others: ``cardfile serve``
tightens the folder itself (0700, so nothing inside can be reached by another
user whatever its own mode) and the private files at its top (htpasswd, the
index), and says what it changed. Once tightened there is nothing to say, so
the warning appears once.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: Files at the top of the data folder that hold secrets or every contact.
_TOP_FILES = ("htpasswd", "cardfile-index.sqlite3", "cardfile-index.sqlite3-wal",
              "cardfile-index.sqlite3-shm", "first-run-password")


def _tighten(path: Path, wanted: int) -> str | None:
    """Take group and other bits off ``path``; say what changed, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return None
    old = stat.S_IMODE(st.st_mode)
    os.chmod(path, wanted)
    return f"{path} ({old:04o} -> {wanted:04o})"


def tighten_data_dir(data_dir: Path) -> list[str]:
    """Make ``data_dir`` and its top-level private files owner-only; return warnings."""
    changed = [c for c in [_tighten(data_dir, PRIVATE_DIR)]
               + [_tighten(data_dir / name, PRIVATE_FILE) for name in _TOP_FILES] if c]
    if not changed:
        return []
    return [f"the data folder was readable by other users; made private: {', '.join(changed)}"]
