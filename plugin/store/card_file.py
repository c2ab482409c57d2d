"""One card file written atomically and durably, with one flush of the disk (and read back).

Radicale's atomic write (``_atomic_write``) makes a temporary folder beside
the card, writes the file in it, fsyncs the file, renames it over the card,
removes the folder and fsyncs the book's folder: four changes of the folder
and two flushes of the disk's write cache per card. A flush is what a PUT
waits for (about a millisecond on a quiet SSD, several when the disk is
shared), so the second one doubles the write's cost.

Both flushes are there for a reason, and this module keeps both guarantees
with one:

- **Atomic**: after a crash the card's name holds the old text or the new
  one, never an empty or partial file. So the new text must be on the disk
  before its rename can be: the file's data is written out (not flushed)
  with ``sync_file_range`` before the rename. Without that, a journaling
  file system with delayed allocation (ext4 creating a file, XFS always)
  can commit the rename before the file has any data, and a crash in that
  moment leaves an empty card where the old one was.
- **Durable when answered**: once the client has its 201/204, a power cut
  must not lose the card. An fsync of the file *before* the rename says
  nothing about the rename, which is a change of the folder: that is why
  Radicale fsyncs the folder too, and a folder fsync is what POSIX asks for.
  Here the file is fsynced *after* the rename instead. On Linux's journaling
  file systems that one fsync makes the rename durable as well: the rename
  changes the file's own inode (its ctime), so fsync must commit the journal
  transaction that holds the rename (ext4: the inode's ``i_sync_tid``; XFS:
  the log is forced up to the inode's last change; btrfs logs the inode's
  new name with it). Transactions commit in order, so the written-out data,
  its allocation and size, committed no later, are in the same flush; the
  commit's cache flush puts the data written out before it on stable
  storage too. (``fsync``, not ``fdatasync``: a rename changes no data of
  the file, only its ctime, which ``fdatasync`` does not wait for.)

So on Linux a write costs one flush and keeps both guarantees. Where
``sync_file_range`` does not exist (macOS, the BSDs) the reasoning above
does not hold, and the write is Radicale's: fsync the file (``F_FULLFSYNC``
on macOS), rename, fsync the folder, two flushes. With ``[storage]
_filesystem_fsync = False`` nothing is flushed (tests, throwaway data).

An fsync that fails after the rename (an I/O error) leaves the new text in
place though the write is reported as failed; the disk is then failing
anyway. A temporary file left by a crash is a dot file, never listed, and
removed at the next start (``storage._remove_stale_temp_files``).

Two parts of the write need not hold the storage lock, and every save
holds it exclusively (in the 50-client mix a save held it 5.6-6.8 ms, of
which the card file took 1.6-1.9 ms):

- **Staged before the lock** (``staged``): a PUT knows the bytes it will
  store before it takes the lock, so its temporary file is written and
  written out first, in a staging folder of the data folder: not in the
  book's folder, whose mtime says whether another program changed the book
  (a file created there outside the lock would make the next request
  compare the whole folder with the index). Under the lock, a write of
  exactly those bytes into that book only renames the file into it; any
  other write (the server changed the card, or no write came) writes as
  above, and the staged file is removed. So is one that cannot be renamed
  (another file system: then the write is made as above).
- **Flushed after the lock** (``flushes_after``): the one fsync waits until
  the lock is released, and comes before the client is answered. This
  gives up one thing: for that moment another client may read the card
  before it is durable. After a power cut just then, the writer was never
  answered and sends the card again, as it does for any write cut off, and
  the reader gets that write at its next sync; nothing answered is lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cardfile.plugin import radicale_adapter as radicale

#: Radicale's prefix for temporary files: its tools and ours skip and clean them.
TEMP_PREFIX = ".Radicale.tmp-"
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _find_sync_file_range() -> Callable[[int], None] | None:
    """``fd -> None``: write a file's dirty pages out and wait for them, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def write_out(fd: int) -> None:
        if function(fd, 0, 0, _WAIT_BEFORE | _WRITE | _WAIT_AFTER) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))

    return write_out


_write_out = _find_sync_file_range()


@dataclass
class _Staged:
    """A temporary file holding ``data``, written out, not yet renamed into ``folder``."""

    folder: str
    data: bytes
    temp: str
    fd: int
    durable: bool
    used: bool = False


@dataclass
class _Flushes:
    """Renamed cards whose one fsync waits for the end of ``flushes_after``."""

    fds: list[int] = field(default_factory=list)


#: Deferred flushes at most per hold of the lock: an import of 10,000 cards under
#: one hold flushes as it goes instead of holding 10,000 files open.
_DEFERRED_AT_MOST = 32
_this_thread = threading.local()


def read_to_end(fd: int, size: int) -> bytes:
    """All of the open card file ``fd``; ``size``: its length as last seen (it may have grown).

    One read of ``size + 1`` bytes tells whether there is more: a GET, a
    multiget and a rebuild's readers read every card this way, with no file
    object and no ``stat`` by name (13-16 us a card that way, 7 us this way).
    """
    raw = os.read(fd, size + 1)
    if len(raw) > size:  # grown since
        raw += b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
    return raw


def write_card_file(path: str, data: bytes, durable: bool) -> None:
    """Replace ``path`` by ``data`` atomically; durably (see above) when ``durable``."""
    folder = os.path.dirname(path)
    staged: _Staged | None = getattr(_this_thread, "staged", None)
    if (staged is not None and not staged.used and staged.folder == folder
            and staged.data == data and (staged.durable or not durable)):
        staged.used = True
        try:
            os.replace(staged.temp, path)
        except OSError:  # removed meanwhile, another file system...: write anew
            _discard(staged.fd, staged.temp)
        else:
            _finish(staged.fd, folder, durable)
            return
    fd, temp = _written(folder, data, durable)
    try:
        os.replace(temp, path)
    except BaseException:
        _discard(fd, temp)
        raise
    _finish(fd, folder, durable)


@contextlib.contextmanager
def staged(folder: str, staging_folder: str, data: bytes, durable: bool
           ) -> Iterator[None]:
    """Within: ``data`` is already in a temporary file of ``staging_folder``, for
    a ``write_card_file`` of exactly those bytes into ``folder`` to rename (see above).

    Nothing is staged if the file cannot be made: the write then makes it
    itself, and says what failed.
    """
    try:
        try:
            fd, temp = _written(staging_folder, data, durable)
        except FileNotFoundError:  # the first PUT, or the folder was removed by hand
            os.makedirs(staging_folder, exist_ok=True)
            fd, temp = _written(staging_folder, data, durable)
    except OSError:
        yield
        return
    _this_thread.staged = staged_file = _Staged(folder, data, temp, fd, durable)
    try:
        yield
    finally:
        _this_thread.staged = None
        if not staged_file.used:
            _discard(fd, temp)


def remove_staged(staging_folder: str) -> None:
    """Remove what ``staged`` left in ``staging_folder`` (a killed process's files;
    call before serving: a staged file removed under a waiting save only makes
    that save write its card itself)."""
    with contextlib.suppress(FileNotFoundError), os.scandir(staging_folder) as entries:
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def flushes_after() -> Iterator[None]:
    """Within: each card's one fsync is deferred to the end of this block (see
    above); an fsync that fails then raises its ``OSError`` there."""
    if getattr(_this_thread, "flushes", None) is not None:
        yield  # an inner block: the outer one flushes
        return
    _this_thread.flushes = flushes = _Flushes()
    try:
        yield
    finally:
        _this_thread.flushes = None
        _flush(flushes.fds)


def _written(folder: str, data: bytes, durable: bool) -> tuple[int, str]:
    """A temporary file in ``folder`` holding ``data``, written out when
    ``durable``: its open descriptor and its path."""
    temp = os.path.join(folder, TEMP_PREFIX + secrets.token_hex(8))
    # 0o666 less the umask: the mode Radicale's open() gives a card.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            if _write_out is not None:
                _write_out(fd)
            else:
                radicale.full_fsync(fd)
    except BaseException:
        _discard(fd, temp)
        raise
    return fd, temp


def _discard(fd: int, temp: str) -> None:
    """Close and remove a temporary file that will not become a card."""
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temp)


def _finish(fd: int, folder: str, durable: bool) -> None:
    """After the rename: the one flush (now, or at the end of ``flushes_after``)."""
    if not durable:
        os.close(fd)
        return
    if _write_out is None:
        os.close(fd)
        _fsync_folder(folder)
        return
    flushes: _Flushes | None = getattr(_this_thread, "flushes", None)
    if flushes is None:
        _flush([fd])
        return
    flushes.fds.append(fd)
    if len(flushes.fds) >= _DEFERRED_AT_MOST:
        pending, flushes.fds = flushes.fds, []
        _flush(pending)


def _flush(fds: list[int]) -> None:
    """fsync each file (it commits its rename with its data) and close it; the
    first failure raised once all are closed."""
    failure: OSError | None = None
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as e:
            failure = failure or e
        finally:
            os.close(fd)
    if failure is not None:
        raise failure


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        radicale.full_fsync(fd)
    finally:
        os.close(fd)
