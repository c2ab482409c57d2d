"""The request and response shapes the API handlers see.

Handlers get a parsed ``Request`` (query, headers, a bounded body, the
logged-in user) and return a ``Response``; they never touch WSGI. Body
limits, JSON decoding and content negotiation live here once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cardfile.plugin.api.problems import Problem
from cardfile.plugin.dav.body_reader import read_exactly
from cardfile.plugin.refused import Refused

JSON = "application/json"
JCARD = "application/vcard+json"
VCARD = "text/vcard"
MERGE_PATCH = "application/merge-patch+json"
_VCARD_TYPES = (VCARD, "text/x-vcard", "text/directory")
#: What an import body must be sent as: the media types of the files it reads.
#: text/plain, form-encoded and multipart bodies (what an HTML form on any web
#: site can send) are refused, as is a body without a type.
IMPORT_TYPES = (
    *_VCARD_TYPES,                                        # vCard
    JCARD, JSON,                                          # jCard
    "text/csv", "text/comma-separated-values", "application/csv",  # CSV
    "text/x-ldif", "application/x-ldif", "application/ldif",       # LDIF
)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200, content_type: str = JSON,
             headers: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(data, ensure_ascii=False, indent=1).encode() + b"\n"
        return cls(status, body, content_type, headers or [])

    @classmethod
    def empty(cls, status: int = 204, headers: list[tuple[str, str]] | None = None
              ) -> Response:
        return cls(status, b"", "", headers or [])


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    user: str
    base: str  # scheme://host, for absolute links where a header needs one

    @classmethod
    def from_environ(cls, environ: dict[str, Any], user: str, max_length: int) -> Request:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items()
                   if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        body = read_body(environ, max_length)
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        return cls(method, environ.get("PATH_INFO", ""), query, headers, body, user, base)

    # -- query -------------------------------------------------------------
    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise Problem(400, f"the query parameter {name!r} may be given only once")
        return values[0]

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    # -- body ----------------------------------------------------------------
    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def body_kind(self, allowed: tuple[str, ...]) -> str:
        """``json``, ``jcard`` or ``vcard`` from Content-Type, or 415."""
        kind = {JSON: "json", MERGE_PATCH: "json", JCARD: "jcard"}.get(self.content_type)
        if kind is None and self.content_type in _VCARD_TYPES:
            kind = "vcard"
        if kind is None and not self.content_type and self.body.lstrip()[:1] in (b"{", b"["):
            kind = "json"
        if kind not in allowed:
            names = {"json": JSON, "jcard": JCARD, "vcard": VCARD}
            raise Problem(415, f"send this body as {' or '.join(names[k] for k in allowed)} "
                               f"(Content-Type was {self.content_type or 'missing'!r})")
        return kind

    def text(self) -> str:
        if not self.body:
            raise Problem(400, "the request needs a body")
        try:
            return self.body.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Problem(400, f"the body is not UTF-8 text (byte {e.start})") from None

    def json(self) -> Any:
        try:
            data = json.loads(self.text())
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except json.JSONDecodeError as e:
            raise Problem(400, f"the body is not valid JSON: {e.msg} at line {e.lineno}, "
                               f"column {e.colno}") from None
        except (UnicodeEncodeError, RecursionError, ValueError):
            raise Problem(400, "the body holds JSON text this server cannot store "
                               "(a lone surrogate or too deep nesting)") from None
        return data

    # -- negotiation ------------------------------------------------------------
    def wants(self) -> str:
        """``vcard``, ``jcard`` or ``json`` from Accept (JSON unless asked otherwise)."""
        best, best_q = "json", 0.0
        for part in self.headers.get("accept", "").split(","):
            media, *params = [p.strip() for p in part.split(";")]
            kind = {VCARD: "vcard", "text/x-vcard": "vcard", JCARD: "jcard",
                    JSON: "json"}.get(media.lower())
            if kind is None:
                continue
            q = 1.0
            for p in params:
                if p.lower().startswith("q="):
                    try:
                        q = float(p[2:])
                    except ValueError:
                        q = 0.0
            if q > best_q:
                best, best_q = kind, q
        return best


def read_body(environ: dict[str, Any], max_length: int) -> bytes:
    """The request body, refused with 413 past ``max_length`` (max_content_length)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Problem(400, "the Content-Length header is not a number") from None
    if length < 0:
        raise Problem(400, "the Content-Length header is negative")
    if length > max_length:
        raise Problem(413, f"the request body is {length} bytes; this server accepts at most "
                           f"{max_length} (max_content_length)")
    if length == 0 or environ.get("wsgi.input") is None:
        return b""
    try:
        return read_exactly(environ, length)
    except Refused as e:  # the shared reader says where the body ended
        raise Problem(400, e.reason[0].lower() + e.reason[1:]) from None


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag`` (``*`` names any)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate == etag:
            return True
    return False
