"""The one error the contacts core raises for something it will not do.

Every way in (CardDAV, the JSON API, the CLI, imports, merges, backups) ends
in the same core, so a refusal is one type: what was refused and why, in a
sentence meant for the user, and the HTTP status that fits. Only the edges
turn it into something else: ``app.py`` into a status line with the reason in
the body (which vdirsyncer and DAVx5 log), ``api`` into a problem document,
``cli/errors.py`` into an ``Error:`` line and exit status 1. Nothing in the
core knows which edge it is answering.

It sits below every layer (it imports nothing) so the store, the vCard
reader and the contacts layer can all raise it.
"""

from __future__ import annotations

_STATUS_LINES = {
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    409: "409 Conflict",
    410: "410 Gone",
    412: "412 Precondition Failed",
    413: "413 Request Entity Too Large",
    415: "415 Unsupported Media Type",
    422: "422 Unprocessable Content",
    503: "503 Service Unavailable",
}


class Refused(Exception):
    """A request the core refused: ``status`` (an HTTP code) and ``reason`` (a sentence)."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        #: Seconds after which the same request may succeed (a 503 while a database is away).
        self.retry_after = retry_after

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Headers the answer carries besides the status (``Retry-After``)."""
        return [("Retry-After", str(self.retry_after))] if self.retry_after else []

    @property
    def status_line(self) -> str:
        """The HTTP status line for ``status`` (``"404 Not Found"``)."""
        return _STATUS_LINES.get(self.status, f"{self.status} Error")

    def __str__(self) -> str:
        return self.reason
