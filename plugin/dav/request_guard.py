"""Refuse hostile requests before Radicale sees them, with a reason a person can read.

Radicale parses XML bodies with defusedxml, which stops entity tricks
("billion laughs", external entities) by raising, but Radicale turns that
exception, and the recursion error of a very deeply nested body, into a 500:
to a client and in the log that reads as a server bug, and a 500 is retried.
These checks run first and answer 400 instead, naming what is refused. They
cost one pass of expat (C) over bodies that are small for real clients.

Also here: ``Depth: infinity`` on PROPFIND (RFC 4918 section 9.1 lets a
server refuse it with 403 and ``propfind-finite-depth``; Radicale silently
answers as if it were Depth 1, which misleads a client), a malformed Depth,
and item names too long for the file system (the write would fail with a
500 deep inside the storage).
"""

from __future__ import annotations

import io
import xml.parsers.expat
from typing import Any
from urllib.parse import unquote

from cardfile.plugin.dav.body_reader import read_exactly
from cardfile.plugin.refused import Refused

#: Methods whose body Radicale parses as XML.
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCOL", "MKCALENDAR"})
#: Deeper than any real CardDAV/CalDAV request (an addressbook-query is ~6 levels).
MAX_XML_DEPTH = 64
#: File names are at most 255 bytes on common file systems; Radicale's temporary
#: folders and our own suffixes need room beside an item's name.
MAX_NAME_BYTES = 200

_FINITE_DEPTH = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                 b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>')

#: Reports Radicale implements (RFC 3253, 4791, 6352, 6578), as "namespace name".
KNOWN_REPORTS = frozenset({
    "DAV: expand-property", "DAV: principal-search-property-set",
    "DAV: principal-property-search", "DAV: sync-collection",
    "urn:ietf:params:xml:ns:carddav addressbook-multiget",
    "urn:ietf:params:xml:ns:carddav addressbook-query",
    "urn:ietf:params:xml:ns:caldav calendar-multiget",
    "urn:ietf:params:xml:ns:caldav calendar-query",
    "urn:ietf:params:xml:ns:caldav free-busy-query",
})
_UNSUPPORTED_REPORT = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                       b'<D:error xmlns:D="DAV:"><D:supported-report/></D:error>')

Response = tuple[str, list[tuple[str, str]], list[bytes]]


def screen(environ: dict[str, Any], method: str, length: int) -> Response | None:
    """A response for a request refused here, else None (then Radicale answers).

    Bad requests raise ``Refused`` (400, the reason as the body); an
    XML body that passes is put back into ``wsgi.input`` for Radicale.
    """
    if method == "PROPFIND":
        depth = environ.get("HTTP_DEPTH")
        if depth is not None:
            value = depth.strip().lower()
            if value == "infinity":
                return ("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8")],
                        [_FINITE_DEPTH])
            if value not in ("0", "1"):
                raise Refused(400, f"The Depth header must be 0, 1 or infinity, "
                                        f"not {depth[:40]!r}")
    if method in ("PUT", "MKCOL", "MKCALENDAR", "MOVE", "COPY"):
        check_item_name(environ.get("PATH_INFO", ""))
        destination = environ.get("HTTP_DESTINATION")
        if destination:
            check_item_name(destination)
    if method in XML_METHODS and length:
        body = read_exactly(environ, length)
        root = check_xml_body(body)
        environ["wsgi.input"] = io.BytesIO(body)
        if method == "REPORT" and root and root not in KNOWN_REPORTS:
            # Radicale answers an empty 207, which a client reads as "no cards".
            return ("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8")],
                    [_UNSUPPORTED_REPORT])
    return None


def check_item_name(path: str) -> None:
    """Refuse a path segment the file system could not store (400, not a 500).

    A backslash is refused too: the file system would store it, but a backup
    could not restore it (a backslash is a path separator elsewhere).
    """
    for segment in path.split("/"):
        name = unquote(segment)
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > MAX_NAME_BYTES:
            raise Refused(400, f"A name in this address is {size} bytes long; names may "
                                    f"be at most {MAX_NAME_BYTES} bytes")
        if "\\" in name:
            raise Refused(400, f"The name {name[:60]!r} contains a backslash (\\), which "
                                    "Cardfile refuses because a backup could not restore it; "
                                    "use another name")


def check_xml_body(body: bytes) -> str:
    """Refuse DTDs, entity declarations and absurd nesting in an XML request body.

    Returns the root element as "namespace name" ("" for an empty body).
    """
    if not body.strip():
        return ""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    depth = 0
    root = ""

    def refuse_dtd(*_: Any) -> None:
        raise Refused(400, "XML with a DOCTYPE or entity declarations is not accepted "
                                "(entity expansion and external entities are refused)")

    def start(name: str, *_: Any) -> None:
        nonlocal depth, root
        if not root:
            root = name
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise Refused(400, f"The XML body is nested more than {MAX_XML_DEPTH} "
                                    "elements deep")

    def end(*_: Any) -> None:
        nonlocal depth
        depth -= 1

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.UnparsedEntityDeclHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as e:
        raise Refused(400, f"The request body is not well-formed XML: "
                                f"{xml.parsers.expat.ErrorString(e.code)} (line {e.lineno}, "
                                f"column {e.offset + 1})") from None
    return root
