"""A whole book's listing kept as a few long strings while its answer is streamed.

A first sync-collection that asks for the cards' text takes the book's rows
from the index under the storage lock and streams the answer after releasing
it, reading each card as its response is written (the other whole-book
listings are written as text while the index is read: ``listing.py``). Kept
as a tuple of Python objects per card, the rows of 100,000 cards were 40 MB
of small objects per request; a server answering a few such requests at
once grew by hundreds of megabytes, and kept most of it (the small objects
of many requests interleave in the allocator's pages, which are then never
wholly free). Here every ``ROWS_PER_CHUNK`` rows are joined into one string
(about 250 KB: allocated and given back to the system as one block), and the
rows are split out again a chunk at a time as the answer is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

#: Rows per string.
ROWS_PER_CHUNK = 2000
#: Between fields and rows: no href (a file name), etag or number holds a NUL.
_SEP = "\0"


class CompactRows:
    """Rows of ``width`` fields (str or int), iterated back as tuples of str."""

    def __init__(self, rows: Iterable[tuple[str | int, ...]], width: int) -> None:
        self.width = width
        self._chunks: list[str] = []
        self._count = 0
        buffer: list[str] = []
        for row in rows:
            buffer.extend(map(str, row))
            self._count += 1
            if len(buffer) >= ROWS_PER_CHUNK * width:
                self._chunks.append(_SEP.join(buffer))
                buffer = []
        if buffer:
            self._chunks.append(_SEP.join(buffer))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for chunk in self._chunks:
            fields = chunk.split(_SEP)
            yield from zip(*[iter(fields)] * self.width, strict=True)
