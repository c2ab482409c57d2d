"""Where grants live: one JSON file per user, ``<data>/grants/<user>.json``.

Why files and not a table in the index: the index is derived (deleting it
loses nothing), grants are not; a file per user is read by a person with
``cat``, backed up by ``cardfile backup`` like every other file in the data
folder (secrets are only ever bcrypt hashes), restored by copying, and goes
with the user when their folder moves. A server has few users and each has
few grants, so the cross-user questions (invitations *to* me, an admin's
list, a token's owner) read every file, which is cheap.

Every change is a read-modify-write under an exclusive ``flock`` of the
``grants`` folder (the server and the CLI may both write), written to a
temporary file, fsynced and renamed: a reader never sees half a file.

A reader keeps the parsed file keyed by its *revision* (inode, size and
mtime of the file, taken with one ``stat`` per request): a revoke is a
rename, so the next request sees a new revision and the grant gone. Nothing
read from a grant outlives the file it came from.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cardfile.plugin.contacts import state_files
from cardfile.plugin.refused import Refused

FOLDER = "grants"
FORMAT = 1

Revision = tuple[int, int, int]


def empty() -> dict[str, Any]:
    return {"format": FORMAT, "me": None, "grants": []}


class GrantStore:
    """The grant files of one data folder."""

    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / FOLDER
        self._cache: dict[str, tuple[Revision, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def path(self, user: str) -> Path:
        if not user or "/" in user or "\\" in user or user.startswith(".") or "\x00" in user:
            raise Refused(400, f"invalid user name {user!r}")
        return self.folder / f"{user}.json"

    def revision(self, user: str) -> Revision | None:
        try:
            st = os.stat(self.path(user))
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self, user: str) -> dict[str, Any]:
        """The user's grants as stored now (a copy: changing it changes nothing)."""
        revision = self.revision(user)
        if revision is None:
            return empty()
        with self._lock:
            cached = self._cache.get(user)
        if cached is None or cached[0] != revision:
            try:
                data = json.loads(self.path(user).read_text(encoding="utf-8"))
            except FileNotFoundError:
                return empty()
            except (OSError, ValueError) as e:
                raise Refused(500, f"the grants of {user!r} cannot be read: {e}") from None
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise Refused(500, f"{self.path(user)} is not a Cardfile grants file")
            with self._lock:
                self._cache[user] = (revision, data)
            cached = (revision, data)
        return copy.deepcopy(cached[1])

    def users(self) -> list[str]:
        """Every user that has a grants file."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive, across processes, for a read-modify-write of any number of users."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with state_files.exclusive(self.folder / ".lock"):  # other servers (PostgreSQL)
                yield
        finally:
            os.close(fd)  # releases the lock

    def write(self, user: str, data: dict[str, Any]) -> None:
        """Replace the user's file (call inside ``locked``)."""
        state_files.write_json(self.path(user), data, 0o600, indent=1, sort_keys=True,
                               ensure_ascii=False)

    @contextlib.contextmanager
    def editing(self, user: str) -> Iterator[dict[str, Any]]:
        """The user's data to change in place; written when the block ends without error."""
        with self.locked():
            data = self.read(user)
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self.write(user, data)
