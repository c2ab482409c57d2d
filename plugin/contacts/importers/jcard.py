"""Read jCard (RFC 7095): a ``["vcard", [...]]`` array, or a JSON list of them.

Each property array becomes one vCard 4.0 content line: structured values
are joined with ``;`` (a list inside a component with ``,``), text is escaped,
URIs and dates are written as they are, and a value type that differs from
the property's default is kept as ``VALUE=``.
"""

from __future__ import annotations

import json
from typing import Any

from cardfile.plugin.contacts.export import escape_text
from cardfile.plugin.contacts.importers.model import Parsed, Problem, SourceCard
from cardfile.plugin.contacts.importers.vcard import repair
from cardfile.plugin.vcard.card_fields import ContentLine

_DEFAULT_TYPES = {"text", "unknown", "uri", "date-and-or-time", "timestamp", "utc-offset",
                  "language-tag"}


def read_jcards(text: str, name: str) -> Parsed:
    parsed = Parsed("jcard")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        parsed.problems.append(Problem(f"{name}:{e.lineno}", f"not valid JSON ({e.msg}); "
                                       "nothing imported"))
        return parsed
    cards = [data] if _is_jcard(data) else data if isinstance(data, list) else []
    if not cards:
        parsed.problems.append(Problem(name, 'not a jCard: expected ["vcard", [...]] or a '
                                       "list of them; nothing imported"))
    for number, card in enumerate(cards, 1):
        origin = f"{name}:card {number}"
        if not _is_jcard(card):
            parsed.problems.append(Problem(origin, "not a jCard array; skipped"))
            continue
        try:
            lines = [_line(prop) for prop in card[1]]
        except (TypeError, ValueError, IndexError) as e:
            parsed.problems.append(Problem(origin, f"malformed property ({e}); skipped"))
            continue
        lines = [ContentLine("", "VERSION", {}, "4.0")] + [
            ln for ln in lines if ln.name != "VERSION"]
        notes: list[str] = []
        parsed.cards.append(SourceCard(repair(lines, notes), origin))
        parsed.problems.extend(Problem(origin, n, skipped=False) for n in notes)
    return parsed


def _is_jcard(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and value[0] == "vcard"
            and isinstance(value[1], list))


def _line(prop: list[Any]) -> ContentLine:
    if not isinstance(prop, list) or len(prop) < 4:
        raise ValueError(f"property {prop!r} needs name, parameters, type and a value")
    name, params, value_type, *values = prop
    out_params: dict[str, list[str]] = {}
    group = ""
    for key, value in dict(params).items():
        if key.lower() == "group":
            group = str(value)
            continue
        out_params[key.upper()] = [str(v) for v in value] if isinstance(value, list) \
            else [str(value)]
    if (value_type not in _DEFAULT_TYPES
            or (value_type == "text" and name.lower() in ("bday", "anniversary"))
            or (value_type == "uri" and name.lower() in ("tel", "related", "uid"))):
        out_params["VALUE"] = [str(value_type)]
    raw = value_type in ("uri", "date-and-or-time", "timestamp", "utc-offset", "date",
                         "time", "date-time", "language-tag")
    parts = [_value(v, raw) for v in values]
    return ContentLine(group, str(name).upper(), out_params, ",".join(parts))


def _value(value: Any, raw: bool) -> str:
    if isinstance(value, list):
        return ";".join(",".join(escape_text(str(x)) for x in v) if isinstance(v, list)
                        else escape_text(str(v)) for v in value)
    if raw:
        return str(value)
    return escape_text(str(value)) if isinstance(value, str) else json.dumps(value)
