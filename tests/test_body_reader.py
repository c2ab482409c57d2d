"""A request body is read by reader threads under a deadline (``body_reader``).

The streams here are real pipes, as blocking as a client's connection: a
body that stops arriving must cost its request a 400 after the deadline,
never a thread for ever, and must not keep other requests' bodies from
being read, up to the pool's limit of readers.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator

import pytest

from cardfile.plugin.dav.body_reader import BodyStalled, ReaderThreads


@pytest.fixture
def pipes() -> Iterator[list[tuple[io.FileIO, int]]]:
    """Pipes made by the test: (read end as an unbuffered stream, write end)."""
    made: list[tuple[io.FileIO, int]] = []
    yield made
    for stream, write_end in made:
        if write_end >= 0:
            os.close(write_end)
        stream.close()


def _pipe(pipes: list[tuple[io.FileIO, int]]) -> tuple[io.FileIO, int]:
    read_end, write_end = os.pipe()
    made = (io.FileIO(read_end, "r"), write_end)
    pipes.append(made)
    return made


def _client_done(pipes: list[tuple[io.FileIO, int]], write_end: int) -> None:
    """The client of the pipe with this write end closed its side."""
    for n, (stream, end) in enumerate(pipes):
        if end == write_end:
            os.close(end)
            pipes[n] = (stream, -1)


def _sent(pipes: list[tuple[io.FileIO, int]], body: bytes) -> io.FileIO:
    """A pipe's read end whose client has sent ``body`` (and keeps the pipe open)."""
    stream, write_end = _pipe(pipes)
    os.write(write_end, body)
    return stream


def test_a_body_that_arrived_is_read(pipes: list[tuple[io.FileIO, int]]) -> None:
    readers = ReaderThreads(4)
    assert readers.read(_sent(pipes, b"BEGIN:VCARD"), 1024, timeout=5) == b"BEGIN:VCARD"


def test_a_stalled_body_ends_at_the_deadline_and_others_are_still_read(
        pipes: list[tuple[io.FileIO, int]]) -> None:
    readers = ReaderThreads(4)
    stalled, _ = _pipe(pipes)
    started = time.monotonic()
    with pytest.raises(BodyStalled):
        readers.read(stalled, 1024, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3
    # The stalled reader is still blocked on its client; the next body gets another.
    assert readers.read(_sent(pipes, b"second"), 1024, timeout=5) == b"second"


def test_readers_stay_within_the_limit_and_a_freed_one_is_used_again(
        pipes: list[tuple[io.FileIO, int]]) -> None:
    readers = ReaderThreads(2)
    before = {t.ident for t in threading.enumerate()}
    stalled = [_pipe(pipes) for _ in range(2)]
    for stream, _ in stalled:  # both readers held by clients that stopped sending
        with pytest.raises(BodyStalled):
            readers.read(stream, 1024, timeout=0.2)
    waiting, write_end = _pipe(pipes)
    os.write(write_end, b"third")
    _client_done(pipes, write_end)  # all of it sent: a read of it never blocks
    with pytest.raises(BodyStalled):  # no reader free: it waits its turn, then gives up
        readers.read(waiting, 1024, timeout=0.3)
    started = [t for t in threading.enumerate()
               if t.ident not in before and t.name == "cardfile-body"]
    assert len(started) == 2
    # One client goes away: its reader is free again, and the next body is read.
    _client_done(pipes, stalled[0][1])
    assert readers.read(_sent(pipes, b"fourth"), 1024, timeout=5) == b"fourth"
    # The request that gave up is not read for after it was answered.
    time.sleep(0.2)
    assert waiting.read(1024) == b"third"


def test_a_failed_read_is_the_request_s_error(pipes: list[tuple[io.FileIO, int]]) -> None:
    readers = ReaderThreads(2)
    stream, _ = _pipe(pipes)
    stream.close()
    with pytest.raises(ValueError):  # reading a closed stream
        readers.read(stream, 1024, timeout=5)
