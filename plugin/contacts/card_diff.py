"""What changed between two versions of a contact, field by field, in words.

A history that showed vCard lines would show folding, escaping and parameter
order; people want "Phone +49 30 1234 added, Email ada@old.org removed".
Both versions are read with ``export.summary`` (the fields the CLI and the
page show); every other property is compared by name and value, so an
X-property or a photo that changed is still named (a photo by "changed",
never its bytes).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cardfile.plugin.contacts.export import summary
from cardfile.plugin.vcard import card_fields

#: (summary key, label) of single-valued fields, in the order they are shown.
_SCALARS = (("fn", "Name"), ("nickname", "Nickname"), ("org", "Organization"),
            ("title", "Title"), ("bday", "Birthday"), ("note", "Note"))
#: Properties the summary covers (or that change with every save and mean nothing).
_COVERED = frozenset({"FN", "N", "NICKNAME", "ORG", "TITLE", "BDAY", "NOTE", "EMAIL", "TEL",
                      "ADR", "URL", "CATEGORIES", "UID", "VERSION", "PRODID", "REV", "BEGIN",
                      "END"})
_ADDRESS_ORDER = ("street", "extended", "box", "code", "city", "region", "country")


def _typed(value: str, types: list[str]) -> str:
    kinds = [t for t in types if t not in ("internet", "pref", "voice")]
    return f"{value} ({', '.join(kinds)})" if kinds else value


def _entries(s: dict[str, Any]) -> dict[str, list[str]]:
    address = [_typed(", ".join(a[k] for k in _ADDRESS_ORDER if a.get(k)), a["types"])
               for a in s["addresses"]]
    return {"Email": [_typed(e["value"], e["types"]) for e in s["emails"]],
            "Phone": [_typed(p["value"], p["types"]) for p in s["phones"]],
            "Address": address, "Web address": list(s["urls"]),
            "Category": list(s["categories"])}


def _other(text: str) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for line in card_fields.parse_lines(text):
        if line.name not in _COVERED:
            found[(line.name, line.value)] += 1
    return found


def _label(name: str) -> str:
    return {"PHOTO": "Photo", "LOGO": "Logo", "IMPP": "Messaging", "ROLE": "Role",
            "GENDER": "Gender", "ANNIVERSARY": "Anniversary", "RELATED": "Related",
            "X-SOCIALPROFILE": "Social profile", "KIND": "Kind"}.get(name, name)


def _shown(name: str, value: str) -> str:
    if name in ("PHOTO", "LOGO", "SOUND", "KEY") or len(value) > 200:
        return f"({len(value)} characters)"
    return card_fields.unescape(value)


def diff(old: str | None, new: str | None) -> list[dict[str, Any]]:
    """``[{"field", "old", "new"}]``: a value added has ``old`` null, one removed ``new``."""
    if old is None and new is None:
        return []
    before = summary(old) if old is not None else None
    after = summary(new) if new is not None else None
    out: list[dict[str, Any]] = []
    for key, label in _SCALARS:
        a = before[key] if before else ""
        b = after[key] if after else ""
        if a != b:
            out.append({"field": label, "old": a or None, "new": b or None})
    old_lists = _entries(before) if before else {}
    new_lists = _entries(after) if after else {}
    for label in ("Email", "Phone", "Address", "Web address", "Category"):
        a_values = Counter(old_lists.get(label, []))
        b_values = Counter(new_lists.get(label, []))
        for value in (a_values - b_values).elements():
            out.append({"field": label, "old": value, "new": None})
        for value in (b_values - a_values).elements():
            out.append({"field": label, "old": None, "new": value})
    a_other = _other(old) if old is not None else Counter()
    b_other = _other(new) if new is not None else Counter()
    gone, came = a_other - b_other, b_other - a_other
    for name in sorted({n for n, _ in gone} | {n for n, _ in came}):
        olds = [v for n, v in gone.elements() if n == name]
        news = [v for n, v in came.elements() if n == name]
        for i in range(max(len(olds), len(news))):
            out.append({"field": _label(name),
                        "old": _shown(name, olds[i]) if i < len(olds) else None,
                        "new": _shown(name, news[i]) if i < len(news) else None})
    return out


def describe(changes: list[dict[str, Any]]) -> list[str]:
    """One line per change, for the command line."""
    lines = []
    for change in changes:
        field, old, new = change["field"], change["old"], change["new"]
        if old is None:
            lines.append(f"+ {field}: {new}")
        elif new is None:
            lines.append(f"- {field}: {old}")
        else:
            lines.append(f"~ {field}: {old} -> {new}")
    return lines
