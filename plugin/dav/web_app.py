"""The contacts web page: static files served beside CardDAV and the API.

``cardfile serve`` answers ``/`` with the page (``web/index.html``) and
``/.web/<file>`` with its scripts, styles and icons, read from the installed
package (``cardfile.plugin`` package data), so the page works the same from a
wheel as from a source checkout. The prefix is Radicale's own reserved web
prefix: no user's CardDAV path can be shadowed by it.

Only plain file names from the folder are served (no sub-paths, no dot
files), each with a fixed content type. Every file is sent with an ETag and
``Cache-Control: no-cache``: the page has no build step and so no hashed file
names, and a revalidated cache is what keeps an upgraded server from running
yesterday's script. A Content-Security-Policy allows only this origin: the
page fetches nothing from anywhere else.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

PREFIX = "/.web/"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
     "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
     "frame-ancestors 'none'"),
]
Result = tuple[str, list[tuple[str, str]], bytes]


def is_web_path(path: str, method: str = "GET") -> bool:
    """Whether a request is for the page or one of its files.

    ``/`` is the page only for GET and HEAD: CardDAV clients send PROPFIND and
    OPTIONS to ``/`` to discover the principal, and those stay Radicale's.
    """
    if path.startswith(PREFIX):
        return True
    return path in ("", "/", "/index.html") and method.upper() in ("GET", "HEAD")


class WebApp:
    """Serves the files of ``cardfile/plugin/web`` (kept in memory once read)."""

    def __init__(self) -> None:
        self.folder = resources.files("cardfile.plugin") / "web"
        self._cache: dict[str, tuple[bytes, str]] = {}

    def _file(self, name: str) -> tuple[bytes, str] | None:
        """(bytes, etag) of a file of the page, or None when there is none by that name."""
        if name in self._cache:
            return self._cache[name]
        if not _NAME.fullmatch(name) or ".." in name:
            return None
        extension = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if extension not in TYPES:
            return None
        entry = self.folder / name
        if not entry.is_file():
            return None
        data = entry.read_bytes()
        found = (data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
        self._cache[name] = found
        return found

    def handle(self, environ: dict[str, Any]) -> Result:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/index.html":
            base = environ.get("SCRIPT_NAME", "").rstrip("/")
            return "301 Moved Permanently", [("Location", base + "/"),
                                             ("Content-Length", "0"), *SECURITY_HEADERS], b""
        name = "index.html" if path == "/" else path[len(PREFIX):]
        found = self._file(name)
        if found is None:
            return _text("404 Not Found", "There is no such file of the web page.")
        if method not in ("GET", "HEAD"):
            result = _text("405 Method Not Allowed", "The web page's files can only be read.")
            result[1].append(("Allow", "GET, HEAD"))
            return result
        data, etag = found
        extension = "." + name.rsplit(".", 1)[-1]
        headers = [("ETag", etag), ("Cache-Control", "no-cache"), *SECURITY_HEADERS]
        if _matches(environ.get("HTTP_IF_NONE_MATCH", ""), etag):
            return "304 Not Modified", headers, b""
        headers += [("Content-Type", TYPES[extension]), ("Content-Length", str(len(data)))]
        return "200 OK", headers, b"" if method == "HEAD" else data


def _matches(header: str, etag: str) -> bool:
    return any(part.strip().removeprefix("W/") in (etag, "*") for part in header.split(",")
               if part.strip())


def _text(status: str, sentence: str) -> Result:
    body = (sentence + "\n").encode()
    return status, [("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"),
                    *SECURITY_HEADERS], body
