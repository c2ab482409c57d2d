"""The byte-keeping line model: an edit changes only the lines it means to change."""

from __future__ import annotations

from cardfile.plugin.vcard import card_edit
from cardfile.plugin.vcard.card_text import CardText

# An Android vCard 2.1 export: a quoted-printable value whose last soft break is
# followed by an empty line, then another property.
ANDROID_QP = (
    "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Jo\r\n"
    "ORG;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=91=C3=91=\r\n=C3=91=\r\n\r\n"
    "ORG;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=91\r\n"
    "CATEGORIES:My Contacts\r\nUID:qp\r\nEND:VCARD\r\n")


def test_a_soft_break_before_an_empty_line_ends_the_value() -> None:
    card = CardText(ANDROID_QP)
    assert [p.name for _, p in card.lines("ORG")] == ["ORG", "ORG"]
    assert card.text() == ANDROID_QP


def test_a_category_edit_keeps_every_other_line_and_its_place() -> None:
    renamed = card_edit.rename_category(ANDROID_QP, "my contacts", "Family")
    assert renamed == ANDROID_QP.replace("CATEGORIES:My Contacts", "CATEGORIES:Family")
    assert card_edit.add_category(ANDROID_QP, " MY   contacts ") == ANDROID_QP
    removed = card_edit.remove_category(ANDROID_QP, "My Contacts")
    assert removed == ANDROID_QP.replace("CATEGORIES:My Contacts\r\n", "")
