"""The one way Cardfile writes its small files, so several servers can share them.

Book properties, category lists, grants, sources and their secrets, the
password file, per-user settings and merge records are small files in the
data folder. Each used to be written by a copy of the same lines (temporary
file, fsync, rename); they are all written here now, and that one place is
also what makes them shared when the cards live in PostgreSQL:

- **Files** (the embedded default): an atomic write (temporary file in the
  same folder, fsync, rename, fsync of the folder), so a reader never sees
  half a file and a crash leaves the old one or the new one.
- **PostgreSQL**: the bytes go to the database first (``store/pg_files.py``,
  one revision per write, in order), then this server's folder is brought up
  to the database's revision, its own write included, in revision order. So
  two servers writing one file at once end with the same bytes on both.

Every request (``app.py``) and every CLI command first brings the folder up
to date (``catch_up``: one small query when nothing changed), so a device
password added through one server logs in on another at its next request,
a book made with MKCOL on one is listed by all, and a revoked share ends
everywhere.

Readers are unchanged: they read the files, as with the file store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from cardfile.plugin.refused import Refused
from cardfile.plugin.store.pg_files import PgFiles, StateRow

log = logging.getLogger("cardfile")

#: In the data folder: the revision of ``state_files`` this folder holds.
REVISION_FILE = ".cardfile-state-revision"
#: In the data folder: one process at a time brings the folder up to date.
LOCK_FILE = ".cardfile-state.lock"

_shared: dict[str, PgFiles] = {}
_known: dict[str, int] = {}
_guard = threading.Lock()


def share(data_folder: str | os.PathLike[str], files: PgFiles) -> None:
    """From now on (in this process) the data folder's small files live in ``files``."""
    with _guard:
        for key in {os.path.abspath(data_folder), os.path.realpath(data_folder)}:
            _shared[key] = files
            _known.pop(key, None)


def shared_in(data_folder: str | os.PathLike[str]) -> PgFiles | None:
    return _shared.get(os.path.abspath(data_folder))


# -- writing ---------------------------------------------------------------------
def write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace the file at ``path`` with ``data``, atomically (and everywhere, if shared)."""
    owner = _owner(path)
    if owner is None:
        _write_local(str(path), data, mode)
        return
    folder, files, relative = owner
    files.put(relative, data, mode)
    try:
        catch_up(folder)
    except Refused:  # recorded, but the database went away: keep this server current
        _write_local(str(path), data, mode)


def write_text(path: str | os.PathLike[str], text: str, mode: int = 0o600) -> None:
    write(path, text.encode("utf-8"), mode)


def write_json(path: str | os.PathLike[str], data: Any, mode: int = 0o600,
               **dump_options: Any) -> None:
    """``data`` as JSON (``dump_options`` as for ``json.dumps``), ending in a newline."""
    write_text(path, json.dumps(data, **dump_options) + "\n", mode)


def remove(path: str | os.PathLike[str]) -> None:
    """Remove one file (a missing one is not an error)."""
    owner = _owner(path)
    if owner is not None:
        folder, files, relative = owner
        files.put(relative, None)
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def record(path: str | os.PathLike[str]) -> None:
    """Share a file another library wrote in place (Radicale's ``.Radicale.props``)."""
    owner = _owner(path)
    if owner is None:
        return
    folder, files, relative = owner
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    files.put(relative, data, 0o600)
    catch_up(folder)


def removed_folder(path: str | os.PathLike[str]) -> None:
    """Tell the other servers a folder (a deleted book) is gone, with all below it."""
    owner = _owner(path)
    if owner is None:
        return
    folder, files, relative = owner
    files.put(relative.rstrip("/") + "/", None)


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str]) -> Iterator[None]:
    """For a read-modify-write of ``path``: one process of all servers at a time.

    The caller keeps its own local lock (``flock``) too; this adds the lock
    that reaches other machines, and the folder is brought up to date inside
    it, so the read sees the last write of any server.
    """
    owner = _owner(path)
    if owner is None:
        yield
        return
    folder, files, relative = owner
    with files.exclusive(relative):
        catch_up(folder)
        yield


# -- bringing a folder up to date -------------------------------------------------
def catch_up(data_folder: str | os.PathLike[str]) -> None:
    """Bring the folder's shared files up to the database (nothing to do for files)."""
    key = os.path.abspath(data_folder)
    files = _shared.get(key)
    if files is None:
        return
    now = files.revision()
    if now <= _known.get(key, -1):
        return
    with _locked(os.path.join(key, LOCK_FILE)):
        held = _read_revision(key)
        if held < now:
            revision, rows = files.since(held)
            for row in rows:
                _apply(key, row)
            _write_local(os.path.join(key, REVISION_FILE), f"{revision}\n".encode(), 0o600)
            held = revision
    _known[key] = held


def _apply(folder: str, row: StateRow) -> None:
    target = _inside(folder, row.path)
    if target is None:
        log.warning("Ignored a shared file with an unsafe path: %r", row.path)
        return
    if row.body is None:
        if row.path.endswith("/"):
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(target)
        return
    try:
        with open(target, "rb") as f:
            if f.read() == row.body:
                return
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    _write_local(target, row.body, row.mode)


def _inside(folder: str, relative: str) -> str | None:
    parts = relative.rstrip("/").split("/")
    if (not relative or relative.startswith("/") or "\x00" in relative
            or any(p in ("", ".", "..") for p in parts)):
        return None
    return os.path.join(folder, *parts)


def _read_revision(folder: str) -> int:
    try:
        with open(os.path.join(folder, REVISION_FILE), encoding="ascii") as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _owner(path: str | os.PathLike[str]) -> tuple[str, PgFiles, str] | None:
    """(data folder, its shared files, the path inside it) when ``path`` is shared."""
    if not _shared:
        return None
    full = os.path.abspath(path)
    for folder, files in _shared.items():
        if full.startswith(folder + os.sep):
            return folder, files, os.path.relpath(full, folder).replace(os.sep, "/")
    return None


@contextlib.contextmanager
def _locked(lock_path: str) -> Iterator[None]:
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _write_local(path: str, data: bytes, mode: int) -> None:
    """Temporary file beside it, fsync, rename, fsync of the folder."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cardfile-tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
