"""A small, bounded HTTP client for sources (stdlib ``http.client``).

A source is someone else's server: it may answer slowly, endlessly, in a
redirect loop or with a 50 MB page. Every request here has a timeout per
read and a deadline for the whole answer, at most ``max_redirects``
redirects, and a body cap; past any of them the request ends with a
``SourceFailure`` that says which bound was hit. Credentials are sent only
to the origin they were given for, never to where a redirect points
elsewhere.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from cardfile.plugin.refused import Refused

USER_AGENT = "Cardfile-sources/0.1"

#: What a failure means for the source, and what its status line says.
SIGN_IN = "needs sign-in again"
NETWORK = "unreachable"
BAD_ANSWER = "bad answer"


class SourceFailure(Refused):
    """A refresh that could not complete; ``kind`` is SIGN_IN, NETWORK or BAD_ANSWER."""

    def __init__(self, kind: str, reason: str, status: int = 502) -> None:
        super().__init__(status, reason)
        self.kind = kind


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    timeout: float = 30.0  # seconds per connect or read
    deadline: float = 300.0  # seconds for one whole answer
    max_cards: int = 50_000


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


@dataclass
class Client:
    """Requests to one source, with its credentials and a count of requests made."""

    limits: Limits = field(default_factory=Limits)
    username: str = ""
    password: str = ""
    requests: int = 0

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        origin = _origin(url)
        seen = []
        for _ in range(self.limits.max_redirects + 1):
            sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
            if self.username and _origin(url) == origin:
                token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
                sent["Authorization"] = f"Basic {token}"
            response = self._once(method, url, body, sent)
            location = response.headers.get("location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            seen.append(url)
            url = urljoin(url, location)
            if response.status == 303 and method != "GET":
                method, body = "GET", None
        raise SourceFailure(BAD_ANSWER, f"the source redirected more than "
                                        f"{self.limits.max_redirects} times (a redirect loop? "
                                        f"last: {_short(seen[-1])})")

    def _once(self, method: str, url: str, body: bytes | None,
              headers: dict[str, str]) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceFailure(BAD_ANSWER, f"{_short(url)} is not an http(s) address", 400)
        connection: http.client.HTTPConnection
        try:
            port = parts.port
        except ValueError:
            raise SourceFailure(BAD_ANSWER, f"{_short(url)} has an invalid port", 400) from None
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname, port, timeout=self.limits.timeout,
                context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(parts.hostname, port,
                                                    timeout=self.limits.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.requests += 1
        started = time.monotonic()
        try:
            connection.request(method, target, body=body, headers=headers)
            answer = connection.getresponse()
            declared = answer.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.limits.max_bytes:
                raise _too_large(self.limits.max_bytes)
            chunks, size = [], 0
            while True:
                chunk = answer.read1(65536) if method != "HEAD" else b""
                if not chunk:
                    break
                size += len(chunk)
                if size > self.limits.max_bytes:
                    raise _too_large(self.limits.max_bytes)
                if time.monotonic() - started > self.limits.deadline:
                    raise SourceFailure(NETWORK, f"the source took more than "
                                                 f"{self.limits.deadline:g} s to answer")
                chunks.append(chunk)
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()},
                            b"".join(chunks), url)
        except SourceFailure:
            raise
        except ssl.SSLError as e:
            raise SourceFailure(NETWORK, f"TLS with {parts.hostname} failed: "
                                         f"{e.reason or e}") from None
        except TimeoutError:
            raise SourceFailure(NETWORK, f"{parts.hostname} did not answer within "
                                         f"{self.limits.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            reason = getattr(e, "strerror", None) or type(e).__name__
            raise SourceFailure(NETWORK, f"cannot reach {parts.hostname}: {reason}") from None
        finally:
            connection.close()


def check(response: Response, what: str) -> None:
    """Raise the failure a non-2xx answer means (sign-in, back off, or bad answer)."""
    if 200 <= response.status < 300:
        return
    if response.status in (401, 403):
        raise SourceFailure(SIGN_IN, f"the source refused the login ({response.status}) "
                                     f"for {what}; sign in again with 'cardfile sources "
                                     "login'", 401)
    if response.status >= 500 or response.status == 429:
        raise SourceFailure(NETWORK, f"the source answered {response.status} for {what}; "
                                     "trying again later")
    raise SourceFailure(BAD_ANSWER, f"the source answered {response.status} for {what}")


def _too_large(limit: int) -> SourceFailure:
    return SourceFailure(BAD_ANSWER, f"the source's answer is larger than "
                                     f"{limit // (1024 * 1024)} MB; nothing was changed", 413)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _short(url: str) -> str:
    """A URL for a status line: no user information, at most 120 characters."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    shown = f"{parts.scheme}://{host}{parts.path}"
    return shown if len(shown) <= 120 else shown[:117] + "..."


def display_url(url: str) -> str:
    return _short(url)
