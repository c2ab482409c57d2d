"""Refuse state-changing API requests that another web site made a browser send.

A browser that holds the user's Basic credentials for Cardfile sends them with
any request to it, including one a page on another site starts: a plain HTML
form can POST ``text/plain``, form-encoded or multipart bodies anywhere, and
``fetch(..., {mode: "no-cors"})`` can POST too. Such a request is refused with
403 when the browser says where it came from:

- ``Sec-Fetch-Site: cross-site`` or ``same-site`` (every current browser sends
  it). ``same-site`` is refused too: another port or subdomain of the same
  host is a different origin, and on a loopback server any page on
  ``http://127.0.0.1:<another port>`` is "same-site" with Cardfile.
- an ``Origin`` header (browsers send it with every POST, PUT, PATCH and
  DELETE) that is not this server's own origin, ``Origin: null`` included
  (sandboxed frames, ``data:`` pages, some redirects).

The server's own origin is ``scheme://host[:port]`` from the request's Host
header, the scheme being ``X-Forwarded-Proto`` when a reverse proxy sets it
(config/cardfile.nginx does) and the connection's scheme otherwise. A page on
another site cannot set ``X-Forwarded-Proto`` or any other such header without
a CORS preflight, which Cardfile never grants. Requests with neither header
(curl, scripts, the CLI, CardDAV clients) are not browsers and pass.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: The methods that change what is stored.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalised(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in, or None if unreadable."""
    scheme = scheme.strip().lower()
    try:
        parts = urlsplit(f"{scheme}://{netloc.strip()}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def own_origin(environ: dict[str, Any]) -> tuple[str, str, int] | None:
    """This server's origin as the request addresses it."""
    forwarded = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip()
    scheme = forwarded or environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if not environ.get("HTTP_HOST") and environ.get("SERVER_PORT"):
        host = f"{host}:{environ['SERVER_PORT']}"
    return _normalised(scheme, host)


def refusal(environ: dict[str, Any], method: str) -> str | None:
    """Why this request is refused as cross-site, or None when it may go on."""
    if method.upper() not in WRITE_METHODS:
        return None
    site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return (f"this request came from a page on another site (Sec-Fetch-Site: {site}); "
                "change your contacts from Cardfile's own page or a client program")
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return None
    origin = origin.strip()
    if origin.lower() == "null":
        return ("this request came from a page without an origin (Origin: null); "
                "change your contacts from Cardfile's own page or a client program")
    scheme, sep, rest = origin.partition("://")
    theirs = _normalised(scheme, rest) if sep and "/" not in rest else None
    if theirs is None or theirs != own_origin(environ):
        shown = origin[:100]
        return (f"this request came from a page on another origin ({shown!r}); change "
                "your contacts from Cardfile's own page or a client program")
    return None
