"""Per-request notes: why a request failed, gathered from wherever it failed.

Radicale answers a bad request with a bare status ("Bad Request") and writes
the reason only to its log. The reason is what a user needs, so a logging
handler copies Radicale's warnings for the current request into a
``ContextVar``; the storage adds its own notes (which card holds a clashing
UID) the same way. The WSGI wrapper then puts them in the response body.

Only Radicale warnings about the caller's own request are copied, those
that start with one of ``SAFE_RADICALE_WARNINGS``: what was wrong with the
body, the path or a precondition. Every other line (a failed login, which
says whether the user exists and which hash is used; an access denied by
the rights backend; an exception; the state of the server's files) stays
in the log only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

#: Beginnings of Radicale (3.9) warnings that describe the caller's own request.
SAFE_RADICALE_WARNINGS = (
    "Bad PUT request", "Bad PROPFIND request", "Bad PROPPATCH request",
    "Bad REPORT request", "Bad MKCOL request", "Bad MKCALENDAR request",
    "Bad MOVE request", "Bad DELETE request", "Bad free-busy view",
    "PUT request contains item with UID", "Precondition failed",
    "Invalid REPORT method", "Unsupported REPORT method", "Destination ",
    "request contains invalid path", "Skipping invalid path",
    "Problem during prepare item",
)

_notes: ContextVar[list[str] | None] = ContextVar("cardfile_request_notes", default=None)
_MAX_NOTE = 300


def add(note: str) -> None:
    """Record a reason for the current request (no-op outside a request)."""
    notes = _notes.get()
    if notes is not None:
        notes.append(note.splitlines()[0][:_MAX_NOTE] if note else note)


@contextlib.contextmanager
def collecting() -> Iterator[list[str]]:
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


class _WarningCollector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            with contextlib.suppress(Exception):
                message = record.getMessage()
                if message.startswith(SAFE_RADICALE_WARNINGS):
                    add(message)


class _QuietPerRequestLines(logging.Filter):
    """Drop Radicale's own two info lines per request; Cardfile logs one."""

    _PHRASES = (" request for ", " response status for ")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = str(record.msg)
        return not any(phrase in message for phrase in self._PHRASES)


_installed = False


def install(logger: logging.Logger) -> None:
    """Attach the collector and the filter to Radicale's logger (once)."""
    global _installed
    if _installed:
        return
    logger.addHandler(_WarningCollector(level=logging.WARNING))
    logger.addFilter(_QuietPerRequestLines())
    _installed = True
