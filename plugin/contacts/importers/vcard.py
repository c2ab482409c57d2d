"""Read vCard 2.1, 3.0 and 4.0 files as real programs write them, and repair them.

Phones and old desktop programs write vCards that strict parsers refuse:
quoted-printable values with soft line breaks, bare 2.1 parameters
(``TEL;CELL``), ``\\r\\r\\n`` line ends, unescaped commas, base64 photos with
no ``ENCODING`` or with broken padding, cards without a name or a UID. This
pre-pass repairs what it can on content lines, converts 2.1 to 3.0 (the
oldest version clients still read), and reports a card it cannot read with
its first line number, so one bad card never stops the rest of the file.
"""

from __future__ import annotations

import base64
import binascii
import re

from cardfile.plugin.contacts.export import (
    MEDIA_PROPERTIES,
    card_text,
    escape_text,
    sniff_media_type,
)
from cardfile.plugin.contacts.importers.model import Parsed, Problem, SourceCard, stable_uid
from cardfile.plugin.vcard.card_fields import (
    CardSyntaxError,
    ContentLine,
    decode_value,
    parse_line,
    split_escaped,
    unescape,
)

#: Text properties whose value is one text (a comma in them is not a separator).
_SINGLE_TEXT = frozenset({"FN", "NOTE", "TITLE", "ROLE", "LABEL", "X-ABLABEL", "SORT-STRING",
                          "X-PHONETIC-FIRST-NAME", "X-PHONETIC-LAST-NAME"})
_STRUCTURED_TEXT = frozenset({"N", "ADR", "ORG"})
_ENCODING_WORDS = frozenset({"QUOTED-PRINTABLE", "BASE64", "B", "8BIT", "7BIT"})
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_SEMI = re.compile(r"(?<!\\);")
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9-]+")
_NOT_NAME = re.compile(r"[^A-Za-z0-9-]+")


def repair_card(text: str, name: str) -> tuple[str | None, list[str]]:
    """One card's text repaired as import repairs it, with what was repaired; None if unreadable.

    CardDAV uses this for a card strict parsing refuses, so a phone's card is
    kept on the same terms as the same card in an imported file.
    """
    parsed = read_vcards(text, name)
    if len(parsed.cards) != 1:
        return None, []
    notes = [p.reason for p in parsed.problems if not p.skipped]
    return parsed.cards[0].text, notes


def split_physical(text: str) -> list[str]:
    """Physical lines: CR CR LF and CR LF are one break; a lone CR inside a line is data.

    Thunderbird writes a bare CR inside values (``X-CUSTOM3:custom\\r3``); only a
    file with no LF at all (classic Mac) uses CR as its line break.
    """
    if "\n" not in text:
        return text.split("\r")
    # str.split, not re.split(r"\r*\n"): that regex retried a run of CRs from every
    # position (100,000 CRs without an LF took minutes); the CRs are stripped anyway.
    return [line.rstrip("\r") for line in text.split("\n")]


def read_vcards(text: str, name: str) -> Parsed:
    """Every card in ``text``; ``name`` is the file name used in problem reports."""
    parsed = Parsed("vcard")
    lines = split_physical(text.lstrip("\ufeff"))
    current: list[tuple[int, str]] | None = None
    start = 0
    for number, raw in enumerate(lines, 1):
        upper = raw.strip().upper()
        if upper == "BEGIN:VCARD" and current is None:
            current, start = [], number
            continue
        if upper == "BEGIN:VCARD" and current is not None and not _inside_agent(current):
            parsed.problems.append(Problem(f"{name}:{start}", "END:VCARD is missing; the card "
                                           f"was cut off at line {number}. Skipped"))
            current, start = [], number
            continue
        if upper == "END:VCARD" and current is not None:
            _finish(parsed, current, name, start)
            current = None
            continue
        if current is not None:
            current.append((number, raw))
        elif raw.strip():
            parsed.problems.append(Problem(f"{name}:{number}", "text outside BEGIN:VCARD/"
                                           "END:VCARD ignored", skipped=False))
    if current is not None:
        parsed.problems.append(Problem(f"{name}:{start}", "END:VCARD is missing (the file "
                                       "ends inside this card). Skipped; add END:VCARD and "
                                       "import again"))
    return parsed


def _inside_agent(current: list[tuple[int, str]]) -> bool:
    return bool(current) and current[-1][1].upper().startswith("AGENT")


def _finish(parsed: Parsed, physical: list[tuple[int, str]], name: str, start: int) -> None:
    origin = f"{name}:{start}"
    try:
        logical = _unfold(physical)
        lines = [parse_line(raw) for _, raw in logical]
    except CardSyntaxError as e:
        parsed.problems.append(Problem(origin, f"{e}. Skipped"))
        return
    notes: list[str] = []
    text = repair(lines, notes)
    for note in notes:
        parsed.problems.append(Problem(origin, note, skipped=False))
    parsed.cards.append(SourceCard(text, origin))


def _unfold(physical: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Logical lines: folded continuations and QP soft breaks joined.

    A line without a colon that is not a continuation is a value broken by a
    careless exporter: it is joined to the previous line as a new text line.
    """
    out: list[tuple[int, str]] = []
    for number, raw in physical:
        if not raw.strip():
            continue
        if out and out[-1][1].endswith("=") and _is_qp(out[-1][1]):
            prev_n, prev = out[-1]
            out[-1] = (prev_n, prev[:-1] + raw)
        elif raw[:1] in (" ", "\t") and out:
            prev_n, prev = out[-1]
            out[-1] = (prev_n, prev + raw[1:])
        else:
            out.append((number, raw))
    joined: list[tuple[int, str]] = []
    for number, line in out:
        if ":" not in line and joined:
            prev_n, prev = joined[-1]
            joined[-1] = (prev_n, prev + "\\n" + line)
        else:
            joined.append((number, line))
    return joined


def _is_qp(line: str) -> bool:
    return "QUOTED-PRINTABLE" in line.split(":", 1)[0].upper()


def repair(lines: list[ContentLine], notes: list[str]) -> str:
    """A storable 3.0/4.0 card text from ``lines``; repairs are described in ``notes``."""
    version = next((ln.value.strip() for ln in lines if ln.name == "VERSION"), "3.0")
    target = "4.0" if version.startswith("4") else "3.0"
    out: list[ContentLine] = []
    for line in lines:
        if line.name in ("VERSION", "BEGIN", "END", "") or not line.name:
            continue
        fixed = _repair_line(line, version, notes)
        if fixed is not None:
            out.append(fixed)
    _ensure_name(out, target, notes)
    if not any(ln.name == "UID" and ln.value.strip() for ln in out):
        out = [ln for ln in out if ln.name != "UID"]
        content = "\n".join(f"{ln.name}:{ln.value}" for ln in out
                            if ln.name not in ("REV", "PRODID"))
        out.insert(0, ContentLine("", "UID", {}, stable_uid("vcard", content)))
    return card_text(target, out)


def _repair_line(line: ContentLine, version: str, notes: list[str]) -> ContentLine | None:
    if not _PROPERTY_NAME.fullmatch(line.name):
        # Old exporters wrote names such as X-messaging/twitter-All; vobject refuses the
        # whole card over one, so the name is spelt the way vCard allows.
        name = "X-" + "-".join(_NOT_NAME.split(line.name.removeprefix("X-"))).strip("-")
        notes.append(f"property name {line.name} is not valid vCard; kept as {name}")
        line = ContentLine(line.group, name, line.params, line.value)
    params = {k: list(v) for k, v in line.params.items()}
    value = line.value
    types = params.get("TYPE", [])
    encodings = {e.upper() for e in params.get("ENCODING", [])} | {
        t.upper() for t in types if t.upper() in _ENCODING_WORDS}
    if "QUOTED-PRINTABLE" in encodings:
        decoded = decode_value(line)
        value = _escape_decoded(line.name, decoded)
        params.pop("ENCODING", None)
        params.pop("CHARSET", None)
    elif version.startswith("2"):
        params.pop("CHARSET", None)
        if line.name in _SINGLE_TEXT or line.name in _STRUCTURED_TEXT:
            value = _UNESCAPED_COMMA.sub("\\,", value)
    if "TYPE" in params:
        params["TYPE"] = [t for t in params["TYPE"] if t.upper() not in _ENCODING_WORDS]
        if not params["TYPE"]:
            del params["TYPE"]
    if "\r" in value:
        value = value.replace("\r\n", "\\n").replace("\r", "\\n")
    if line.name in MEDIA_PROPERTIES:
        return _repair_media(ContentLine(line.group, line.name, params, value), encodings, notes)
    if encodings & {"BASE64", "B"}:
        params["ENCODING"] = ["b"]
    if line.name in ("LABEL", "NOTE") and "\\" not in value and "," in value:
        value = _UNESCAPED_COMMA.sub("\\,", value)
    return ContentLine(line.group, line.name, params, value)


def _escape_decoded(name: str, decoded: str) -> str:
    """Quoted-printable text is unescaped: write it in 3.0 escaping, keeping ``;`` fields."""
    if name in _STRUCTURED_TEXT:
        return ";".join(escape_text(p) for p in _UNESCAPED_SEMI.split(decoded))
    if name in ("CATEGORIES", "NICKNAME"):
        return ",".join(escape_text(p.strip()) for p in decoded.split(","))
    return escape_text(decoded)


def _repair_media(line: ContentLine, encodings: set[str], notes: list[str]
                  ) -> ContentLine | None:
    value = line.value.strip()
    if value.lower().startswith(("data:", "http:", "https:", "file:", "cid:")):
        return ContentLine(line.group, line.name, line.params, value)
    looks_binary = bool(encodings & {"BASE64", "B"}) or (
        "VALUE" not in line.params and sniff_media_type(value) is not None)
    if not looks_binary:
        return ContentLine(line.group, line.name, line.params, value)
    data = re.sub(r"\s+", "", value)
    data += "=" * (-len(data) % 4)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        notes.append(f"{line.name} is not valid base64 data and was left out")
        return None
    params = dict(line.params)
    params["ENCODING"] = ["b"]
    if not params.get("TYPE"):
        mime = sniff_media_type(data)
        if mime:
            params["TYPE"] = [mime.split("/")[1].upper()]
    return ContentLine(line.group, line.name, params, data)


def _ensure_name(lines: list[ContentLine], version: str, notes: list[str]) -> None:
    """FN is required (and N in 3.0): take them from what the card has."""
    fn = next((ln for ln in lines if ln.name == "FN"), None)
    if fn is None or not unescape(fn.value).strip():
        name = _display_name(lines)
        if fn is not None:
            fn.value = escape_text(name)
        else:
            lines.insert(0, ContentLine("", "FN", {}, escape_text(name)))
        notes.append(f"the card had no formatted name; FN set to {name!r}" if name
                     else "the card has no name, organisation, email or phone")


def _display_name(lines: list[ContentLine]) -> str:
    for line in lines:
        if line.name == "N":
            parts = [p.strip() for p in split_escaped(line.value, ";")]
            parts += [""] * (5 - len(parts))
            words = [parts[3], parts[1], parts[2], parts[0], parts[4]]
            name = " ".join(w for w in words if w)
            if name:
                return name
    for prop in ("ORG", "NICKNAME", "EMAIL", "TEL"):
        for line in lines:
            if line.name == prop:
                value = unescape(line.value.split(";")[0]).strip()
                if value:
                    return value
    return ""
