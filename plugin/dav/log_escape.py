"""Log lines cannot be forged by what a client sends.

A path with ``%0a``, a Basic user name with a newline, a User-Agent with an
escape sequence: written to the log as they are, they would start a new,
fake log line or drive the terminal of whoever reads the log. Every control
character (C0, DEL, C1, and the Unicode line and paragraph separators) is
written as a visible escape instead: ``\\n``, ``\\r``, ``\\t`` or ``\\xNN`` /
``\\uNNNN``. A backslash is left alone, so ordinary text reads unchanged.

``escape`` is used for the request line ``app.py`` writes; ``EscapingFormatter``
is the server's log formatter, so Radicale's own messages (which quote
request data: failed-login names, paths) are escaped too. A traceback keeps
its line breaks, but every one of its lines is indented, so an exception
message that quotes a client's newline cannot start a line of its own.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape."""
    return _CONTROL.sub(_visible, text)


#: What a terminal must not be sent as it is: the control characters above but
#: tab and line feed, and a CR that does not end a line (it would write over it).
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


def escape_for_terminal(text: str) -> str:
    """``text`` with every control character but tab and line breaks written as
    a visible escape: what the CLI writes to a terminal (``cli/terminal.py``)."""
    return _TERMINAL_CONTROL.sub(_visible, text)


class EscapingFormatter(logging.Formatter):
    """A formatter whose message part is always one line of visible characters."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape(line) for line in text.splitlines())
