"""Read a request body under a deadline, whatever server delivered it.

The server (Granian, ``cli/server.py``) hands the application a body stream
whose reads wait as long as the client keeps its connection open: a client
that announces 500 bytes and sends 13 would hold the request's thread for
ever. So each read runs on a small pool of reader threads while the
request's own thread waits at most ``body_timeout`` for it. When the wait
runs out the request is answered (400, by ``read_exactly``) and
its thread is free; the reader stays blocked until the client goes away,
which is why the pool is bounded and why each reader waits only for a slice
of the body (``CHUNK``), never the whole of a large one.

A stream that already has a deadline of its own (a file, ``io.BytesIO``: the
tests' in-process calls, the fast path's re-reads) is read directly.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from cardfile.plugin.refused import Refused

#: Bytes one read waits for: the body may stall for ``body_timeout`` per slice.
CHUNK = 1 << 16

_lock = threading.Lock()
_readers: ReaderThreads | None = None
_timeout: float | None = None


class BodyStalled(Exception):
    """Nothing more of the body arrived within the deadline."""


class _Read:
    """One read handed to a reader thread; ``done`` is released when it ended."""

    __slots__ = ("stream", "size", "done", "data", "error", "abandoned")

    def __init__(self, stream: Any, size: int) -> None:
        self.stream, self.size = stream, size
        self.done = threading.Lock()
        self.done.acquire()  # released by the reader
        self.data: bytes = b""
        self.error: BaseException | None = None
        #: Its request gave up waiting: a reader that gets to it only later skips it.
        self.abandoned = False


class ReaderThreads:
    """Reader threads, started as reads find none idle, at most ``limit`` of them.

    A read is handed over through a queue and its end signalled by releasing
    a plain lock. ``concurrent.futures.ThreadPoolExecutor`` (a future with a
    condition, a work item, a semaphore per read) was 7 % of the server's
    interpreter time in the 50-client mix, where nearly every request has a
    small body that has long arrived.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._reads: queue.SimpleQueue[_Read] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def read(self, stream: Any, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes of ``stream``, or BodyStalled after ``timeout`` seconds."""
        job = _Read(stream, size)
        with self._lock:
            start = self._idle <= 0 and self._threads < self.limit
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # this read is taken by an idle reader (or waits its turn)
        self._reads.put(job)
        if start:
            threading.Thread(target=self._serve, name="cardfile-body", daemon=True).start()
        if not job.done.acquire(timeout=timeout):
            job.abandoned = True
            raise BodyStalled
        if job.error is not None:
            raise job.error
        return job.data

    def _serve(self) -> None:
        while True:
            job = self._reads.get()
            try:
                if not job.abandoned:
                    job.data = bytes(job.stream.read(job.size))
            except BaseException as e:  # handed to the request, whose thread raises it
                job.error = e
            finally:
                job.stream = None  # the request may be long gone: keep nothing of it
                with self._lock:
                    self._idle += 1
                job.done.release()


def configure(timeout: float, threads: int) -> None:
    """Use a deadline of ``timeout`` seconds for the bodies of this process's server.

    ``threads`` is the number of requests answered at once: with one reader
    each, a stalled body never makes another request's read wait for a
    reader. Twice that leaves room for readers still blocked on clients that
    were already answered.
    """
    global _readers, _timeout
    with _lock:
        _timeout = timeout
        if _readers is None:
            _readers = ReaderThreads(2 * threads)


def read_chunk(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes of the body (``b""`` at its end), or BodyStalled."""
    size = min(size, CHUNK)
    if _readers is None or _timeout is None or _has_own_deadline(stream):
        read = getattr(stream, "read1", stream.read)  # what has arrived: a timeout loses none
        try:
            return bytes(read(size))
        except TimeoutError:
            raise BodyStalled from None
    return _readers.read(stream, size, _timeout)


def _has_own_deadline(stream: Any) -> bool:
    return hasattr(stream, "read1") or hasattr(stream, "getvalue")


def read_exactly(environ: dict[str, Any], length: int) -> bytes:
    """The request body, all ``length`` bytes of it, or a 400 saying where it ended."""
    stream = environ["wsgi.input"]
    parts, remaining = [], length
    while remaining > 0:
        try:
            chunk = read_chunk(stream, remaining)
        except BodyStalled:
            timeout = f"{_timeout:g} s" if _timeout is not None else "the socket's timeout"
            raise Refused(400, f"The body is shorter than its Content-Length: it stopped "
                               f"before all {length} bytes arrived (nothing more came for "
                               f"{timeout}, body_timeout)") from None
        if not chunk:
            raise Refused(400, f"The body is shorter than its Content-Length: it ended "
                               f"after {length - remaining} of {length} bytes")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
