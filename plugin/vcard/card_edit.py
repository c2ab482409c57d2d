"""Change one property of a stored card without touching anything else.

Category edits (rename, delete, group cards from Apple clients) rewrite many
cards at once. Re-serialising them through vobject would reorder and
re-escape every line; editing the text keeps each untouched line byte for
byte, so a card's photo, Apple ``item1.`` groups and unknown properties come
back exactly as the client wrote them.
"""

from __future__ import annotations

import re

from cardfile.plugin.vcard import card_fields

category_key = card_fields.category_key
_LINE = re.compile(r"[^\r\n]*(?:\r\r\n|\r\n|\n|\r|$)")


def _logical_lines(text: str) -> list[str]:
    """Physical lines grouped so each item is one property with its folds."""
    physical = [m.group(0) for m in _LINE.finditer(text) if m.group(0)]
    logical: list[str] = []
    for raw in physical:
        if raw[:1] in (" ", "\t") and logical:
            logical[-1] += raw
        else:
            logical.append(raw)
    return logical


def _name_of(line: str) -> str:
    head = re.split(r"[;:]", line, maxsplit=1)[0]
    return head.rpartition(".")[2].strip().upper()


escape_text = card_fields.escape_text  # one writer: card_fields


def categories_of(text: str) -> list[str]:
    """The card's categories, in order, without duplicates (case-insensitive)."""
    seen: dict[str, str] = {}
    for line in card_fields.parse_lines(text):
        if line.name == "CATEGORIES":
            for value in card_fields.text_values(line):
                seen.setdefault(category_key(value), value.strip())
    return list(seen.values())


def set_categories(text: str, names: list[str]) -> str:
    """``text`` with its CATEGORIES replaced by ``names`` (one line, or none)."""
    unique: dict[str, str] = {}
    for name in names:
        if name.strip():
            unique.setdefault(category_key(name), " ".join(name.split()))
    lines = _logical_lines(text)
    newline = next((m for m in ("\r\n", "\n", "\r") if lines and lines[0].endswith(m)), "\r\n")
    kept: list[str] = []
    position: int | None = None
    for line in lines:
        if _name_of(line) == "CATEGORIES" and not line.startswith((" ", "\t")):
            if position is None:
                position = len(kept)
            continue
        kept.append(line)
    if unique:
        new_line = card_fields.fold(
            "CATEGORIES:" + ",".join(escape_text(v) for v in unique.values()))
        new_line = new_line.replace("\r\n", newline)
        if position is None:
            end = max(i for i, line in enumerate(kept) if line.strip().upper() == "END:VCARD")
            position = end
        kept.insert(position, new_line)
    result = "".join(kept)
    if not result.endswith(("\n", "\r")):
        result += newline
    return result


def add_category(text: str, name: str) -> str:
    current = categories_of(text)
    if category_key(name) in {category_key(c) for c in current}:
        return text
    return set_categories(text, [*current, name])


def remove_category(text: str, name: str) -> str:
    key = category_key(name)
    current = categories_of(text)
    remaining = [c for c in current if category_key(c) != key]
    return text if len(remaining) == len(current) else set_categories(text, remaining)


def rename_category(text: str, old: str, new: str) -> str:
    old_key = category_key(old)
    current = categories_of(text)
    if old_key not in {category_key(c) for c in current}:
        return text
    return set_categories(text, [new if category_key(c) == old_key else c for c in current])
