"""One card file written atomically and durably, with one flush of the disk.

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
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import sys
from collections.abc import Callable

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


def write_card_file(path: str, data: bytes, durable: bool) -> None:
    """Replace ``path`` by ``data`` atomically; durably (see above) when ``durable``."""
    folder = os.path.dirname(path)
    temp = os.path.join(folder, TEMP_PREFIX + secrets.token_hex(8))
    # 0o666 less the umask: the mode Radicale's open() gives a card.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                if _write_out is not None:
                    _write_out(fd)
                else:
                    radicale.full_fsync(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if durable:
            if _write_out is not None:
                os.fsync(fd)  # commits the rename with the data: the one flush
            else:
                _fsync_folder(folder)
    finally:
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        radicale.full_fsync(fd)
    finally:
        os.close(fd)
