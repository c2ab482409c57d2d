"""Radicale's clean-up of an uploaded body before vobject reads it, in linear time.

Radicale 3.9's ``read_components`` runs every body through five workaround
substitutions (an InfCloud photo header, control characters, blank lines, and
two Microsoft Outlook time-zone spaces). Three of them rescan the rest of a
line, or of the body, from every occurrence of a keyword, so one hostile card
line of ``TZID:TZID:...``, ``TZID=TZID=...`` or ``PHOTO;ENCODING=b;ENCODING=b...``
is quadratic: 50,000 characters hold a worker, and the GIL, for 3 to 7 s.

``clean`` makes the same rewrites, each in one pass. It is text in, text out;
plugin/radicale_adapter.py installs it in Radicale's place (with vobject's read
after it). tests/test_radicale_contract.py checks that Radicale still applies
exactly these substitutions and that the results agree on ordinary and odd cards.
"""

from __future__ import annotations

import re

# InfCloud writes ``PHOTO;ENCODING=b;TYPE=png:data:image/png;base64,...``. Radicale:
# ``^(PHOTO(?:;[^:\r\n]*)?;ENCODING=b(?:;[^:\r\n]*)?:)data:[^;,\r\n]*;base64,`` -> ``\1``
# (multiline, ignoring case). Its header always runs to the line's first colon, so read
# it possessively and look for ``;ENCODING=b`` in it once.
_PHOTO_HEAD = re.compile(r"^(PHOTO;[^:\r\n]*+:)data:[^;,\r\n]*+;base64,", re.M | re.I)
_B_ENCODING = re.compile(r";ENCODING=b(?:;|$)", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F]")  # Radicale's own (linear)
_BLANK_LINE = re.compile(r"(?m)^[ \t]*\r?\n")  # Radicale's own (tried at line starts only)
_LINE_END = re.compile(r"(\r?\n)")


def _photo_head(match: re.Match[str]) -> str:
    """Drop the data-URI prefix when the header says ``ENCODING=b`` (Radicale's rule)."""
    head = match.group(1)
    return head if _B_ENCODING.search(head[len("PHOTO"):-1]) else match.group(0)


def _trim_tz_line_ends(text: str) -> str:
    """Radicale's ``(TZID|TZNAME)(:[^\\r\\n]+) (\\r?\\n)`` -> ``\\1\\2\\3``.

    One space before a line end goes when the stretch of the line with no CR
    before it holds ``TZID:`` or ``TZNAME:`` and at least one character
    between that colon and the space.
    """
    if "TZID:" not in text and "TZNAME:" not in text:
        return text
    parts = _LINE_END.split(text)  # content, line end, content, ..., content
    for i in range(0, len(parts) - 1, 2):
        stretch = parts[i].rpartition("\r")[2]  # the pattern's [^\r\n] run before the end
        if not stretch.endswith(" "):
            continue
        colons = [found + len(key) - 1 for key in ("TZID:", "TZNAME:")
                  if (found := stretch.find(key)) >= 0]
        if colons and min(colons) < len(stretch) - 2:  # a character between colon and space
            parts[i] = parts[i][:-1]
    return "".join(parts)


def _trim_tzid_params(text: str) -> str:
    """Radicale's ``(TZID=[^:]+) (:)`` -> ``\\1\\2``: the space before the next colon goes.

    ``[^:]+`` cannot pass a colon, so only the first colon after ``TZID=`` can
    match, and every ``TZID=`` before that colon succeeds or fails alike.
    """
    out: list[str] = []
    pos = 0
    while (start := text.find("TZID=", pos)) >= 0:
        colon = text.find(":", start + len("TZID="))
        if colon < 0:
            break
        if colon - 1 > start + len("TZID=") and text[colon - 1] == " ":
            out.append(text[pos:colon - 1])
        else:
            out.append(text[pos:colon])
        out.append(":")
        pos = colon + 1
    out.append(text[pos:])
    return "".join(out)


def clean(text: str) -> str:
    """The body as Radicale's ``read_components`` hands it to vobject."""
    text = _PHOTO_HEAD.sub(_photo_head, text)
    text = _CONTROL.sub("", text)
    text = _BLANK_LINE.sub("", text)
    text = _trim_tz_line_ends(text)
    return _trim_tzid_params(text)
