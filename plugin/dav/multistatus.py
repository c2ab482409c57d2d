"""A WebDAV multistatus written as a stream of byte chunks, never whole in memory.

ElementTree needs the whole tree, then the whole string: at 100,000 cards that
is hundreds of megabytes. Here an answer is plain text pieces (one per
``<response>``) joined into chunks of a few hundred. Escaping is exactly
ElementTree's (``&``, ``<``, ``>`` in text; CR written raw), so an XML parser
gives a client the same text from this writer as from Radicale's. Namespaces
get Radicale's prefixes (``D``, ``CR``, ...) and are all declared on the root,
so every name must be seen (``Names.q``) before ``root_start`` is written.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator
from urllib.parse import quote

from cardfile.plugin import radicale_adapter as radicale

#: Responses per chunk, and a size cap for chunks of big cards.
CHUNK_ITEMS = 500
CHUNK_BYTES = 256 * 1024

_C = radicale.make_clark
_XML_NS = "http://www.w3.org/XML/1998/namespace"


#: What ``urllib.parse.quote`` leaves unchanged (unreserved characters and /).
_QUOTE_UNCHANGED = re.compile(r"[A-Za-z0-9_.~/-]*").fullmatch


def quote_href(href: str) -> str:
    """``urllib.parse.quote(href)``; a plain href (most are) is returned as it is."""
    return href if _QUOTE_UNCHANGED(href) else quote(href)


def escape(text: str) -> str:
    """Character data escaped as ElementTree escapes it (CR stays raw, as in Radicale)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    return (escape(text).replace('"', "&quot;").replace("\r", "&#13;")
            .replace("\n", "&#10;").replace("\t", "&#09;"))


class Names:
    """Prefixes for the namespaces of one answer, declared once on its root."""

    def __init__(self) -> None:
        self._prefixes: dict[str, str] = {**radicale.XML_NAMESPACES_REV, _XML_NS: "xml"}
        self._used: dict[str, str] = {}
        self._status, self._prop = self.q(_C("D:status")), self.q(_C("D:prop"))
        self._propstat, self._href = self.q(_C("D:propstat")), self.q(_C("D:href"))
        self._response = self.q(_C("D:response"))
        self.propstat_start = f"<{self._propstat}><{self._prop}>"
        self.response_end = f"</{self._response}>"

    def q(self, clark: str) -> str:
        """``{ns}local`` as ``prefix:local``; an unnamespaced name stays as it is."""
        if not clark.startswith("{"):
            return clark
        ns, local = clark[1:].split("}", 1)
        prefix = self._prefixes.get(ns)
        if prefix is None:
            prefix = self._prefixes[ns] = f"ns{len(self._prefixes)}"
        if ns != _XML_NS:  # the xml: prefix is never declared
            self._used[ns] = prefix
        return f"{prefix}:{local}"

    def response_start(self, href: str) -> str:
        return f"<{self._response}><{self._href}>{escape(href)}</{self._href}>"

    def status(self, code: int) -> str:
        return f"<{self._status}>{radicale.make_response(code)}</{self._status}>"

    def propstat_end(self, code: int) -> str:
        return f"</{self._prop}>{self.status(code)}</{self._propstat}>"

    def element(self, element: ET.Element) -> str:
        """One parsed element written back (every name must be seen before root_start)."""
        q = self.q(element.tag)
        attributes = "".join(f' {self.q(k)}="{_escape_attribute(v)}"'
                             for k, v in element.attrib.items())
        inner = escape(element.text or "") + "".join(self.element(c) for c in element)
        body = f"<{q}{attributes}>{inner}</{q}>" if inner else f"<{q}{attributes} />"
        return body + escape(element.tail or "")

    def root_start(self) -> str:
        multistatus = self.q(_C("D:multistatus"))
        declarations = "".join(f' xmlns:{prefix}="{_escape_attribute(ns)}"'
                               for ns, prefix in self._used.items())
        return f"<?xml version='1.0' encoding='utf-8'?>\n<{multistatus}{declarations}>"

    def root_end(self) -> str:
        return f"</{self.q(_C('D:multistatus'))}>"


def counted_chunks(head: str, parts: Iterable[tuple[str, int]], tail: str) -> Iterator[bytes]:
    """The answer in chunks of a few hundred responses: never whole in memory.

    Each part is (text, how many responses it holds): one response, or many
    already joined (``listing.py``).
    """
    buffer, size, count = [head], len(head), 0
    for part, responses in parts:
        buffer.append(part)
        size += len(part)
        count += responses
        if count >= CHUNK_ITEMS or size >= CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8", "xmlcharrefreplace")
            buffer, size, count = [], 0, 0
    buffer.append(tail)
    yield "".join(buffer).encode("utf-8", "xmlcharrefreplace")


def gzip_stream(chunks: Iterable[bytes], level: int = 1) -> Iterator[bytes]:
    """gzip as a stream; level 1: about twice as fast as zlib's default, a few % larger.

    At ``zlib.Z_DEFAULT_COMPRESSION`` the bytes are those of Radicale's answer
    compressed whole (``book_get.py``)."""
    compressor = zlib.compressobj(level, wbits=16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()
