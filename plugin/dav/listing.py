"""A whole book's ``<response>`` elements written as text while the index is read.

PROPFIND Depth 1 and a first sync-collection list every card with the same
``<response>`` around a different href, etag (and date). At 100,000 cards,
keeping the rows as compact strings under the storage lock and formatting
each one afterwards (a dict, a %-format, two escapes and a quote per card)
took 0.55 s of a 0.88 s PROPFIND. Here each response is made by joining five
strings as the row is read, for the names that need no escaping, no quoting
and no safety check (``PLAIN_NAME``: every name Cardfile and the common
clients make). Other names, and answers with a date, take the general path,
which is exactly the old per-card formatting. The text is kept as a few
strings of ``ROWS_PER_PART`` responses each (allocated and freed as blocks,
as ``compact_rows.py`` explains), so the lock is held only while the index is
read, never while a slow client reads the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.dav import multistatus

#: Where a card's href, etag, last-modified date and length go in a response template.
HREF, ETAG, DATE, LENGTH = "\0h", "\0e", "\0d", "\0l"
#: Responses per string kept: about 500 KB, so each is its own block of memory,
#: given back to the system when freed (parts of 500 responses, 130 KB, came
#: from the heap and kept a worker 50 MB bigger after a 100,000-card PROPFIND).
ROWS_PER_PART = 2000
#: A listing's text: (responses joined, how many), as ``multistatus.counted_chunks`` takes.
Part = tuple[str, int]
#: Names that Radicale's two safety checks accept, ``urllib.parse.quote``
#: leaves unchanged and XML needs no escape in: a subset of
#: ``radicale_adapter._PLAINLY_SAFE_NAME`` and of ``multistatus.quote_href``'s.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*").fullmatch
_MARKER = re.compile("(\0[hedl])")


class ResponseTemplate:
    """One card's ``<response>``, with ``HREF``, ``ETAG``, ``DATE`` and ``LENGTH`` to fill in.

    ``href_base`` is the book's quoted href, put before each card's name;
    ``date`` writes a modification time (ns) as Radicale does; ``safe_names``
    lists a name Radicale would refuse as gone instead (what a sync report does).
    """

    def __init__(self, response: str, href_base: str, date: Callable[[int], str],
                 safe_names: bool = False) -> None:
        self._pieces = _MARKER.split(response)
        self._href_base = href_base
        self._date = date
        self._safe_names = safe_names
        markers = self._pieces[1::2]
        #: (before href, between href and etag, after etag), when those are the only two.
        self._plain: tuple[str, str, str] | None = None
        if markers == [HREF, ETAG]:
            self._plain = (self._pieces[0] + multistatus.escape(href_base), self._pieces[2],
                           self._pieces[4])

    def render(self, rows: Iterable[tuple[str, str, int, int]], unsafe: list[str]
               ) -> list[Part]:
        """The responses of ``rows`` (href, etag, mtime_ns, size), in order, as strings of
        ``ROWS_PER_PART``; names Radicale would refuse are appended to ``unsafe``. The
        size is what ``LENGTH`` is filled with: the caller passes the served length."""
        parts: list[Part] = []
        batch: list[str] = []
        append = batch.append
        plain = self._plain
        escape = multistatus.escape
        for href, etag, mtime_ns, size in rows:
            if plain is not None and PLAIN_NAME(href):
                append(plain[0] + href + plain[1] + escape(etag) + plain[2])
            elif self._safe_names and not (radicale.is_safe_path_component(href)
                                           and radicale.is_safe_name(href)):
                unsafe.append(href)
                continue
            else:
                append(self.general(href, etag, mtime_ns, size))
            if len(batch) >= ROWS_PER_PART:
                parts.append(("".join(batch), len(batch)))
                batch.clear()
        if batch:
            parts.append(("".join(batch), len(batch)))
        return parts

    def general(self, href: str, etag: str, mtime_ns: int, size: int = 0) -> str:
        """Any card's response: the name quoted and escaped, the date and length written
        if asked."""
        values = {HREF: multistatus.escape(self._href_base + multistatus.quote_href(href)),
                  ETAG: multistatus.escape(etag)}
        out = []
        for i, piece in enumerate(self._pieces):
            if i % 2 == 0:
                out.append(piece)
            elif piece == DATE:
                out.append(self._date(mtime_ns))
            elif piece == LENGTH:
                out.append(str(size))
            else:
                out.append(values[piece])
        return "".join(out)
