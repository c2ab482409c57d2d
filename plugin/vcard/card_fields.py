"""Extract the fields the index needs from a vCard's text, without vobject.

The index is rebuilt from every file on disk when it is missing or stale, so
this runs once per card on a 100,000-card book: vobject takes about a
millisecond per card, this line parser a few dozen microseconds. It reads
vCard 2.1, 3.0 and 4.0 leniently (any line ending, folded lines,
quoted-printable soft breaks) and never rewrites anything: the file stays the
truth, these fields are only what queries look at.

Text-match semantics follow Radicale's own filter code (which the index
replaces): each value of a list property (CATEGORIES, NICKNAME) is matched on
its own, structured values (N, ADR, ORG) as their non-empty components joined
by a space, and case-insensitive matching compares ``str.lower()`` forms.
"""

from __future__ import annotations

import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cardfile.plugin.refused import Refused

#: Properties whose values are binary or huge; only their presence is indexed.
BINARY_PROPERTIES = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
#: Properties whose value is a comma-separated list of texts.
LIST_PROPERTIES = frozenset({"CATEGORIES", "NICKNAME"})
#: Properties whose value is a semicolon-structured text.
STRUCTURED_PROPERTIES = frozenset({"N", "ADR", "ORG", "GENDER", "CLIENTPIDMAP"})

_LINE_BREAK = re.compile(r"\r\r\n|\r\n|\n|\r")
_NOT_A_DIGIT = re.compile(r"\D")
_MAX_INDEXED_VALUE = 4096


class CardSyntaxError(Refused, ValueError):
    """The text is not a vCard the index can describe: the core's refusal, a 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


@dataclass(slots=True)  # a rebuild makes a million: slots make each cheaper to build
class ContentLine:
    group: str
    name: str
    params: dict[str, list[str]]
    value: str


@dataclass
class CardFields:
    """What the index stores about one card."""

    uid: str
    fn: str
    kind: str
    version: str
    #: (property name, value as text-match sees it) for every indexed value.
    values: list[tuple[str, str]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    #: Family and given name from N, for sorting by family name.
    family: str = ""
    given: str = ""


def unfold(text: str) -> list[str]:
    """Split into logical lines: folded continuations and QP soft breaks joined."""
    physical = _LINE_BREAK.split(text)
    lines: list[str] = []
    for raw in physical:
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        elif lines and lines[-1].endswith("=") and is_quoted_printable(lines[-1]):
            # vCard 2.1 quoted-printable soft line break: the next physical
            # line continues the value even though it is not indented.
            lines[-1] = lines[-1][:-1] + raw
        elif raw.strip():
            lines.append(raw)
    return lines


def is_quoted_printable(line: str) -> bool:
    head = line.split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def parse_line(line: str) -> ContentLine:
    """Parse ``group.NAME;param=a,b;BARE:value``, respecting quoted params."""
    colon = line.find(":")
    if colon > 0 and '"' not in line[:colon]:
        return _parse_plain_line(line, colon)
    return _parse_quoted_line(line)


def _parse_quoted_line(line: str) -> ContentLine:
    """Any line, character by character: a ``;`` or ``:`` inside quotes is a value's."""
    i = 0
    length = len(line)
    while i < length and line[i] not in ";:":
        i += 1
    if i == length:
        raise CardSyntaxError(f"line without ':' separator: {line[:60]!r}")
    head = line[:i]
    group, _, name = head.rpartition(".")
    params: dict[str, list[str]] = {}
    while i < length and line[i] == ";":
        i += 1
        start = i
        in_quotes = False
        while i < length and (in_quotes or line[i] not in ";:"):
            if line[i] == '"':
                in_quotes = not in_quotes
            i += 1
        param = line[start:i]
        if "=" in param:
            key, _, raw_values = param.partition("=")
            values = [v.strip('"') for v in _split_param_values(raw_values)]
        else:
            # vCard 2.1 bare parameter: TEL;CELL means TYPE=CELL.
            key, values = "TYPE", [param]
        params.setdefault(key.strip().upper(), []).extend(values)
    if i >= length or line[i] != ":":
        raise CardSyntaxError(f"line without ':' separator: {line[:60]!r}")
    return ContentLine(group, name.strip().upper(), params, line[i + 1 :])


def _parse_plain_line(line: str, colon: int) -> ContentLine:
    """The common case (no quoted parameter values): plain string splits."""
    head = line[:colon]
    if ";" not in head and "." not in head:  # NAME:value, most lines: nothing to split
        return ContentLine("", head.strip().upper(), {}, line[colon + 1 :])
    head, *raw_params = head.split(";")
    group, _, name = head.rpartition(".")
    params: dict[str, list[str]] = {}
    for param in raw_params:
        key, eq, raw_values = param.partition("=")
        if eq:
            params.setdefault(key.strip().upper(), []).extend(raw_values.split(","))
        else:
            params.setdefault("TYPE", []).append(param)
    return ContentLine(group, name.strip().upper(), params, line[colon + 1 :])


def _split_param_values(raw: str) -> list[str]:
    values, current, in_quotes = [], [], False
    for ch in raw:
        if ch == '"':
            in_quotes = not in_quotes
            current.append(ch)
        elif ch == "," and not in_quotes:
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return values


def split_escaped(value: str, separator: str, keep_escapes: bool = False) -> list[str]:
    """Split on unescaped ``separator``; undo vCard text escapes unless asked to keep them.

    Kept escapes let a caller re-join untouched parts byte for byte (line edits).
    """
    if "\\" not in value:
        return value.split(separator)
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if keep_escapes:
                current.append(ch + nxt)
            else:
                current.append("\n" if nxt in ("n", "N") else nxt)
        elif ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return split_escaped(value, "\x00")[0] if "\\" in value else value


def decode_value(line: ContentLine) -> str:
    """The raw value with 2.1 quoted-printable decoded (charset honoured)."""
    params = line.params
    if not params:  # most lines: nothing to look up
        return line.value
    encoding = [e.upper() for e in params.get("ENCODING", ())]
    if "QUOTED-PRINTABLE" in encoding or "QUOTED-PRINTABLE" in params.get("TYPE", ()):
        charset = (line.params.get("CHARSET") or ["utf-8"])[0]
        data = quopri.decodestring(line.value.encode("latin-1", "replace"))
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")
    return line.value


def text_values(line: ContentLine) -> list[str]:
    """The values a CardDAV text-match compares against for this line."""
    raw = decode_value(line)
    if line.name in LIST_PROPERTIES:
        return [v.strip() for v in split_escaped(raw, ",") if v.strip()]
    if line.name in STRUCTURED_PROPERTIES:
        return [" ".join(p.strip() for p in split_escaped(raw, ";") if p.strip())]
    return [unescape(raw)]


def parse_lines(text: str) -> list[ContentLine]:
    """Content lines of the first card in ``text`` (BEGIN/END excluded)."""
    lines = unfold(text.lstrip("\ufeff"))
    if not lines or lines[0].strip().upper() != "BEGIN:VCARD":
        raise CardSyntaxError("does not start with BEGIN:VCARD")
    result: list[ContentLine] = []
    depth = 0
    for raw in lines:
        if raw[0].isalpha() and raw[0] not in "bBeE":  # neither BEGIN nor END: most lines
            result.append(parse_line(raw))
            continue
        upper = raw.strip().upper()
        if upper == "BEGIN:VCARD":
            depth += 1
            continue
        if upper == "END:VCARD":
            depth -= 1
            if depth == 0:
                return result
            continue
        result.append(parse_line(raw))
    raise CardSyntaxError("END:VCARD is missing")


def uid_of(lines: Iterable[ContentLine]) -> str:
    """The card's UID: its first UID line, unescaped and trimmed ("" when it has none).

    The one way a UID is read from card text, so the index, the write path,
    category edits, merges and the API agree on which contact a card is.
    """
    for line in lines:
        if line.name == "UID":
            values = text_values(line)
            return values[0].strip() if values else ""
    return ""


def extract(text: str) -> CardFields:
    """Everything the index keeps about the card in ``text``."""
    fields = CardFields(uid="", fn="", kind="individual", version="")
    for line in parse_lines(text):
        name = line.name
        if name in BINARY_PROPERTIES:
            fields.values.append((name, ""))
            continue
        values = text_values(line)
        for value in values:
            fields.values.append((name, value[:_MAX_INDEXED_VALUE]))
        first = values[0] if values else ""
        if name == "UID" and not fields.uid:
            fields.uid = first.strip()
        elif name == "FN" and not fields.fn:
            fields.fn = first.strip()
        elif name == "VERSION":
            fields.version = first.strip()
        elif name == "N" and not (fields.family or fields.given):
            parts = split_escaped(decode_value(line), ";")
            fields.family = parts[0].strip()
            fields.given = parts[1].strip() if len(parts) > 1 else ""
        elif name in ("KIND", "X-ADDRESSBOOKSERVER-KIND"):
            fields.kind = first.strip().lower()
        elif name in ("MEMBER", "X-ADDRESSBOOKSERVER-MEMBER"):
            fields.members.extend(v.strip() for v in values if v.strip())
    if not fields.fn:
        fields.fn = _name_from_n(fields.values)
    return fields


def _name_from_n(values: list[tuple[str, str]]) -> str:
    for name, value in values:
        if name == "N" and value:
            return value
    for name, value in values:
        if name in ("ORG", "EMAIL", "NICKNAME") and value:
            return value
    return ""


def category_name(name: str) -> str:
    """A category name as it is stored: trimmed, each run of inner white space one space."""
    return " ".join(name.split())


def category_key(name: str) -> str:
    """Category names compare case-insensitively, after ``category_name``."""
    return category_name(name).casefold()


def unique_categories(names: Iterable[str]) -> list[str]:
    """``names`` as stored (``category_name``), empty and repeated ones (by key) left out.

    The first spelling of a name wins. The one normalisation of a list of
    categories, for the index, imports, merges and every category edit.
    """
    unique: dict[str, str] = {}
    for name in names:
        cleaned = category_name(name)
        if cleaned:
            unique.setdefault(cleaned.casefold(), cleaned)
    return list(unique.values())


def normalise_email(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value.casefold()


def normalise_phone(value: str) -> str:
    """Digits only (and a leading +), so formatting never hides a match."""
    value = value.strip()
    if value.lower().startswith("tel:"):
        value = value[4:]
    value = value.split(";", 1)[0]
    plus = "+" if value.lstrip().startswith("+") else ""
    return plus + _NOT_A_DIGIT.sub("", value)


# -- writing content lines: the one writer (export, import, merges, API and category edits) --
_NEEDS_QUOTES = re.compile(r"[:;,]")


def escape_text(value: str) -> str:
    """vCard text escaping (RFC 6350 3.4) for one value component."""
    return (value.replace("\\", "\\\\").replace("\r\n", "\n").replace("\r", "\n")
            .replace("\n", "\\n").replace(",", "\\,").replace(";", "\\;"))


def _param_value(value: str) -> str:
    value = value.replace('"', "'").replace("\r", " ").replace("\n", " ")
    return f'"{value}"' if _NEEDS_QUOTES.search(value) else value


def format_line(line: ContentLine) -> str:
    """One unfolded content line; ``line.value`` is written as it is (already escaped)."""
    head = f"{line.group}.{line.name}" if line.group else line.name
    for key, values in line.params.items():
        if values:
            head += f";{key}=" + ",".join(_param_value(v) for v in values)
        else:
            head += f";{key}"
    return f"{head}:{line.value}"


def fold(line: str, limit: int = 75) -> str:
    """Fold one logical line into CRLF-terminated physical lines of <= 75 octets."""
    data = line.encode("utf-8")
    if len(data) <= limit:
        return line + "\r\n"
    parts: list[str] = []
    start, width = 0, limit
    while start < len(data):
        end = min(start + width, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # never cut inside a UTF-8 sequence
        parts.append(data[start:end].decode("utf-8"))
        start, width = end, limit - 1
    return "\r\n ".join(parts) + "\r\n"


def card_text(version: str, lines: Iterable[ContentLine]) -> str:
    body = "".join(fold(format_line(line)) for line in lines
                   if line.name not in ("VERSION", "BEGIN", "END"))
    return f"BEGIN:VCARD\r\nVERSION:{version}\r\n{body}END:VCARD\r\n"
