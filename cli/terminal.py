"""What the CLI writes to a terminal shows a card's control characters, never runs them.

A card a client sends, or an import reads, has its control characters
removed (``card_check``), but a card file placed in the data folder by hand,
or synced into it by another program, is read as it is. Printed raw by
``contacts list``, ``search``, ``categories list`` or an export to the screen, an ESC
in a name or an email address is a command to the terminal: CSI moves the
cursor and erases lines (a listing that lies), OSC 0 sets the window title,
OSC 52 writes the clipboard in some terminals. So when standard output or
error is a terminal, every C0 and C1 control character but tab and the line
breaks is written as a visible escape, as the server's log writes it
(``log_escape``). A pipe or a file gets the text exactly: an export into a
file or another program is the cards' own text (``main.py`` tells click not
to cut colour codes out of it).

One wrapper around each stream, installed before any command runs, so no
command that writes through click or ``sys.stdout`` can forget it. What the
CLI draws itself with a CR and escape codes (the import's progress bar) is
written to the terminal ``unguarded``. Not covered: a stream click rebuilds
on the bytes beneath because its encoding is ASCII (``PYTHONIOENCODING=ascii``).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO, cast

from cardfile.plugin.dav.log_escape import escape_for_terminal


class _ShownControls:
    """A terminal's text stream whose writes show control characters as escapes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        if isinstance(text, str):
            self._stream.write(escape_for_terminal(text))
            return len(text)
        return self._stream.write(text)  # (bytes: refused by the stream, as click expects)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def unguarded(stream: TextIO) -> TextIO:
    """The terminal under ``stream``: for what the CLI draws itself (a progress bar)."""
    return stream._stream if isinstance(stream, _ShownControls) else stream


def guard_terminal_streams() -> None:
    """Wrap standard output and error in ``_ShownControls`` where they are terminals."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ShownControls) and _is_terminal(stream):
            setattr(sys, name, cast(TextIO, _ShownControls(stream)))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # (no isatty, or closed)
        return False
