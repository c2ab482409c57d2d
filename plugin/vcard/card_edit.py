"""Change one property of a stored card without touching anything else.

Category edits (rename, delete, group cards from Apple clients) rewrite many
cards at once. Re-serialising them through vobject would reorder and
re-escape every line; editing the text keeps each untouched line byte for
byte, so a card's photo, Apple ``item1.`` groups and unknown properties come
back exactly as the client wrote them.
"""

from __future__ import annotations

from cardfile.plugin.vcard import card_fields
from cardfile.plugin.vcard.card_text import CardText

category_key = card_fields.category_key


escape_text = card_fields.escape_text  # one writer: card_fields


def categories_of(text: str) -> list[str]:
    """The card's categories, in order, without duplicates (``unique_categories``)."""
    return card_fields.unique_categories(
        value for line in card_fields.parse_lines(text) if line.name == "CATEGORIES"
        for value in card_fields.text_values(line))


def set_categories(text: str, names: list[str]) -> str:
    """``text`` with its CATEGORIES replaced by ``names`` (one line, or none)."""
    card = CardText(text)
    unique = card_fields.unique_categories(names)
    new = ("CATEGORIES:" + ",".join(escape_text(v) for v in unique)) if unique else None
    card.replace("CATEGORIES", [card.line(new)] if new else [])
    return card.text()


def add_category(text: str, name: str) -> str:
    return add_categories(text, [name])


def add_categories(text: str, names: list[str]) -> str:
    """``text`` with ``names`` added to its categories; unchanged (same bytes) if it had them."""
    current = categories_of(text)
    wanted = card_fields.unique_categories([*current, *names])
    return text if len(wanted) == len(current) else set_categories(text, wanted)


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
