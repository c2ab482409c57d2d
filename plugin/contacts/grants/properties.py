"""Which vCard properties a grant lets through: the one filter every shared view uses.

A friend's copy of a *me* card and an application token's view of a book are
the same question: which properties may this reader see? The answer is a
set of *scopes* (``email``, ``phone``...), each naming the vCard properties
it opens. ``filter_card`` keeps only those lines (plus the card's frame:
VERSION and UID) and is the only place a card is cut down for a reader, so
every representation built from its result (vCard, jCard, JSON, search,
photos) can only show what it kept.

Apple item groups (``item1.EMAIL`` with ``item1.X-ABLabel``) keep their label
only when a kept property shares the group: a label alone would say what a
hidden value is ("Mother's mobile").
"""

from __future__ import annotations

from collections.abc import Iterable

from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_fields
from cardfile.plugin.vcard.card_text import CardText

#: scope -> the vCard properties it opens.
SCOPES: dict[str, frozenset[str]] = {
    "name": frozenset({"FN", "N"}),
    "photo": frozenset({"PHOTO"}),
    "nickname": frozenset({"NICKNAME"}),
    "email": frozenset({"EMAIL"}),
    "phone": frozenset({"TEL"}),
    "address": frozenset({"ADR", "LABEL"}),
    "birthday": frozenset({"BDAY", "ANNIVERSARY"}),
    "org": frozenset({"ORG", "TITLE", "ROLE"}),
    "url": frozenset({"URL"}),
    "im": frozenset({"IMPP"}),
    "notes": frozenset({"NOTE"}),
    "categories": frozenset({"CATEGORIES"}),
}
#: Other words people type for a scope.
ALIASES = {"fn": "name", "n": "name", "names": "name", "tel": "phone", "phones": "phone",
           "emails": "email", "adr": "address", "addresses": "address", "bday": "birthday",
           "note": "notes", "title": "org", "organization": "org", "urls": "url",
           "impp": "im", "photos": "photo", "nicknames": "nickname"}
#: What every friend sees: a name and a face.
FRIEND_ALWAYS = ("name", "photo")
#: Lines every filtered card keeps: its frame, never a value of the person's.
_FRAME = frozenset({"VERSION", "UID", "KIND"})
_LABELS = frozenset({"X-ABLABEL"})


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    """Scope names from ``"email,phone"`` (or a list), canonical and sorted; 400 if unknown."""
    words = text.split(",") if isinstance(text, str) else list(text)
    found: set[str] = set()
    for word in words:
        key = word.strip().lower()
        if not key:
            continue
        key = ALIASES.get(key, key)
        if key not in SCOPES:
            raise Refused(400, f"{word.strip()!r} is not a property scope; use "
                               f"{', '.join(SCOPES)}")
        found.add(key)
    return sorted(found)


def allowed_properties(scopes: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= SCOPES[scope]
    return frozenset(out)


def filter_card(text: str, scopes: Iterable[str]) -> str:
    """``text`` with only the lines ``scopes`` open (and VERSION, UID, KIND)."""
    allowed = allowed_properties(scopes) | _FRAME
    card = CardText(text)
    kept_groups = {p.group.lower() for p in card.parsed
                   if p is not None and p.group and p.name in allowed}
    keep: list[str] = []
    for raw, parsed in zip(card.raw, card.parsed, strict=True):
        if parsed is None:
            stripped = "".join(card_fields.unfold(raw)).strip().upper()
            if stripped in ("BEGIN:VCARD", "END:VCARD"):
                keep.append(raw)
            continue  # a line the reader cannot parse is never passed on
        if parsed.name in allowed or (parsed.name in _LABELS and parsed.group
                                      and parsed.group.lower() in kept_groups):
            keep.append(raw)
    return "".join(keep)


def value_visible(name: str, scopes: Iterable[str]) -> bool:
    """Whether property ``name`` (``EMAIL``) is open to ``scopes``."""
    return name.upper() in allowed_properties(scopes)
