"""GET and HEAD of a whole index-backed address book (an export), streamed.

Radicale answers a GET of a book by serialising it: every card read, under
the storage's read lock, and the whole text held in memory; at 100,000 cards
2.3 s in which every writer of every user waited, and 60 MB. Here Radicale
still makes the answer's status and headers (its rights, ``Content-Type``,
``Last-Modified``, ``ETag``, ``Content-Disposition``, the configured extra
headers), asked within ``book_text_left_out`` so that it reads no card; the
lock is then held only to list the book from the index, and the cards are
read and sent once it is released, as a GET of each serves it (a BOM left
out), in Radicale's order (by name), asked of the disk a few at a time
(``card_reads.opened_ahead``). A card deleted meanwhile is left
out, as if the GET had come after the delete.

The body is streamed without a ``Content-Length`` unless it fits one chunk;
gzip when asked, compressed as Radicale compresses (the same bytes). It
declines (None: Radicale answers) what ``FastPath.book`` refuses (groups
view, published and shared books, anything not an address book) and a query
string.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cardfile.plugin.contacts.storage import book_text_left_out
from cardfile.plugin.dav import multistatus
from cardfile.plugin.store.card_reads import opened_ahead, read_opened

if TYPE_CHECKING:
    from cardfile.plugin.dav.fastpath import FastPath, Response

log = logging.getLogger("cardfile")


def respond(fast: FastPath, environ: dict[str, Any], method: str) -> Response | None:
    """The answer to a GET or HEAD of an address book, cards read after the lock; or None."""
    if environ.get("QUERY_STRING"):
        return None
    target = fast.target(environ)
    if target is None:
        return None
    with fast.storage.acquire_lock("r", target.user):
        if fast.book(target) is None:
            return None
    with book_text_left_out():
        status, headers, body = fast.radicale_answer(environ, b"", {"REQUEST_METHOD": "GET"})
    if not status.startswith("200 ") or body:
        return None
    with fast.storage.acquire_lock("r", target.user):
        book = fast.book(target)
        if book is None:
            return None
        folder = book.folder
        hrefs = [row[0] for row in book.listing()]
    del book
    chunks = _chunks(folder, hrefs)
    gzipped = "gzip" in [e.strip() for e in environ.get("HTTP_ACCEPT_ENCODING", "").split(",")]
    if gzipped:
        headers = [*headers, ("Content-Encoding", "gzip")]
    first = next(chunks)
    second = next(chunks, None)
    if second is None:  # all of it in one piece: sent with its length
        whole = b"".join(_gzipped([first])) if gzipped else first
        return status, [*headers, ("Content-Length", str(len(whole)))], (
            [] if method == "HEAD" else [whole])
    stream: Iterator[bytes] = itertools.chain((first, second), chunks)
    if gzipped:
        stream = _gzipped(stream)
    if method == "HEAD":
        return status, [*headers, ("Content-Length", str(sum(map(len, stream))))], []
    return status, headers, stream


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """gzip at zlib's default level, as Radicale's: the same bytes as its whole answer's."""
    return multistatus.gzip_stream(chunks, level=zlib.Z_DEFAULT_COMPRESSION)


def _chunks(folder: str, hrefs: list[str]) -> Iterator[bytes]:
    """The cards' texts one after the other, in pieces of about ``CHUNK_BYTES``;
    at least one piece (an empty book is one empty piece)."""
    hrefs.reverse()  # each name let go of once read
    buffer: list[bytes] = []
    size = 0
    for href, fd in opened_ahead(folder, _popped(hrefs), str):
        data = read_opened(fd)
        if data is None:
            log.warning("Card %r vanished while its book was read", href)
            continue
        try:
            data.decode("utf-8")  # (served only if it is UTF-8, as Radicale reads it)
        except UnicodeDecodeError as e:
            log.warning("Card %r became unreadable while its book was read: %s", href, e)
            continue
        buffer.append(data)
        size += len(data)
        if size >= multistatus.CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    yield b"".join(buffer)


def _popped(items: list[str]) -> Iterator[str]:
    """``items`` from the last, each let go of as it is taken."""
    while items:
        yield items.pop()
