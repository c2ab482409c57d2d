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

import concurrent.futures
import threading
from typing import Any

from cardfile.plugin.refused import Refused

#: Bytes one read waits for: the body may stall for ``body_timeout`` per slice.
CHUNK = 1 << 16

_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_timeout: float | None = None


class BodyStalled(Exception):
    """Nothing more of the body arrived within the deadline."""


def configure(timeout: float, threads: int) -> None:
    """Use a deadline of ``timeout`` seconds for the bodies of this process's server.

    ``threads`` is the number of requests answered at once: with one reader
    each, a stalled body never makes another request's read wait for a
    reader. Twice that leaves room for readers still blocked on clients that
    were already answered.
    """
    global _pool, _timeout
    with _lock:
        _timeout = timeout
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=2 * threads, thread_name_prefix="cardfile-body")


def read_chunk(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes of the body (``b""`` at its end), or BodyStalled."""
    size = min(size, CHUNK)
    if _pool is None or _timeout is None or _has_own_deadline(stream):
        read = getattr(stream, "read1", stream.read)  # what has arrived: a timeout loses none
        try:
            return bytes(read(size))
        except TimeoutError:
            raise BodyStalled from None
    future = _pool.submit(stream.read, size)
    try:
        return bytes(future.result(timeout=_timeout))
    except concurrent.futures.TimeoutError:
        raise BodyStalled from None


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
