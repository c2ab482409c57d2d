"""RFC 9110 conditional requests where Radicale's handling falls short.

Radicale compares ``If-Match`` with one etag as a string and knows
``If-None-Match`` only as ``*`` on PUT. So ``If-Match: "a", "b"`` fails even
when ``"b"`` is current, ``If-None-Match: "<current etag>"`` on a PUT
overwrites instead of answering 412, DELETE ignores ``If-None-Match``, and a
conditional GET never gets 304 or 412. Clients that cache (and proxies) rely
on these answers.

Requests with the shapes Radicale gets right (no condition, one strong etag
in ``If-Match``, ``If-None-Match: *`` on PUT) pass straight through at no
cost. For the others the current etag is read by running the same request
as a HEAD through Radicale (so login, rights and the 401/403 answers are
Radicale's own), the conditions are evaluated as RFC 9110 section 13.2.2
orders them, and a request that may proceed is handed on with its condition
rewritten to the one form Radicale checks under its write lock (the single
matching etag), so the check and the write stay atomic.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

Response = tuple[str, list[tuple[str, str]], list[bytes]]
Application = Callable[[dict[str, Any], Callable[..., Any]], Any]

_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


def _etags(header: str) -> list[str]:
    """The entity tags of an If-Match/If-None-Match list (``*`` kept as is)."""
    tags, current, quoted = [], "", False
    for ch in header:
        if ch == '"':
            quoted = not quoted
            current += ch
        elif ch == "," and not quoted:
            tags.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        tags.append(current.strip())
    return [t for t in tags if t]


def _simple(method: str, if_match: str | None, if_none_match: str | None) -> bool:
    """Whether Radicale already evaluates these conditions correctly."""
    if method in ("GET", "HEAD"):
        return if_match is None and if_none_match is None
    match_ok = if_match is None or (len(_etags(if_match)) == 1
                                    and not if_match.strip().startswith("W/"))
    none_ok = if_none_match is None or (method == "PUT" and if_none_match.strip() == "*")
    return match_ok and none_ok


def _current_etag(app: Application, environ: dict[str, Any]) -> tuple[int, str | None]:
    """(status, etag) of a HEAD of the same address, as this user sees it."""
    head = {k: v for k, v in environ.items()
            if k not in ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "CONTENT_TYPE")}
    head.update({"REQUEST_METHOD": "HEAD", "CONTENT_LENGTH": "0",
                 "wsgi.input": io.BytesIO(b"")})
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, headers

    chunks = app(head, capture)
    try:
        for _ in chunks:
            pass
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    code = int(str(captured.get("status", "500")).split(" ", 1)[0])
    etag = next((v for k, v in captured.get("headers", []) if k.lower() == "etag"), None)
    return code, etag


def evaluate(app: Application, environ: dict[str, Any], method: str) -> Response | None:
    """A 304/412 answer, or None after rewriting the conditions for Radicale."""
    if_match = environ.get("HTTP_IF_MATCH")
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if method not in _METHODS or _simple(method, if_match, if_none_match):
        return None
    path = environ.get("PATH_INFO", "")
    if path.endswith("/"):
        return None  # collections: Radicale's business
    code, current = _current_etag(app, environ)
    if code not in (200, 404):
        return None  # 401/403/...: let Radicale answer it as usual
    exists = code == 200
    if if_match is not None:
        tags = _etags(if_match)
        if "*" in tags:
            matched = current if exists else None
        else:
            matched = next((t for t in tags if exists and t == current), None)
        if matched is None:
            if not exists and method in ("GET", "HEAD", "DELETE"):
                return None  # without the condition this is a 404 (RFC 9110 13.2.1)
            return _failed()
        environ["HTTP_IF_MATCH"] = matched
    if if_none_match is not None:
        tags = [t.removeprefix("W/") for t in _etags(if_none_match)]
        hit = exists and ("*" in tags or (current is not None and current in tags))
        if hit:
            if method in ("GET", "HEAD"):
                return ("304 Not Modified", [("ETag", current or "")], [b""])
            return _failed()
        del environ["HTTP_IF_NONE_MATCH"]
        if method in ("PUT", "DELETE") and "HTTP_IF_MATCH" not in environ:
            # Pin the state just seen, so Radicale's check under its write lock
            # refuses (412, always safe) if another write came in between.
            if exists and current:
                environ["HTTP_IF_MATCH"] = current
            elif method == "PUT":
                environ["HTTP_IF_NONE_MATCH"] = "*"
    return None


def _failed() -> Response:
    return ("412 Precondition Failed", [], [b""])
