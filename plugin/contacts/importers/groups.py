"""Group cards in an import become categories of their members.

Apple (``X-ADDRESSBOOKSERVER-KIND:group`` with ``X-ADDRESSBOOKSERVER-MEMBER``)
and vCard 4 (``KIND:group`` with ``MEMBER``) keep groups as cards of their
own; Cardfile keeps ``CATEGORIES`` on each card as the one truth (DESIGN.md
section 4), so a group card is not stored: its name and member UIDs go into
``Parsed.groups`` and the members get the category when they are written.
"""

from __future__ import annotations

from cardfile.plugin.contacts.importers.model import Parsed
from cardfile.plugin.vcard.card_fields import CardSyntaxError, extract, parse_lines, unescape


def split_groups(parsed: Parsed) -> None:
    kept = []
    for card in parsed.cards:
        try:
            fields = extract(card.text)
        except CardSyntaxError:
            kept.append(card)
            continue
        if fields.kind != "group":
            kept.append(card)
            continue
        name = fields.fn or _n_value(card.text) or fields.uid
        members = [member_uid(m) for m in fields.members]
        parsed.groups.setdefault(name, []).extend(m for m in members if m)
    parsed.cards = kept


def member_uid(reference: str) -> str:
    """``urn:uuid:ABC`` -> ``ABC`` (other references are taken as UIDs as they are)."""
    ref = reference.strip()
    for prefix in ("urn:uuid:", "uuid:"):
        if ref.lower().startswith(prefix):
            return ref[len(prefix):]
    return ref


def _n_value(text: str) -> str:
    for line in parse_lines(text):
        if line.name == "N":
            return unescape(line.value.split(";")[0]).strip()
    return ""
