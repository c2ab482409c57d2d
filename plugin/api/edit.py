"""Apply a readable JSON contact to a card's text, line by line.

Only the lines of fields whose value changed are rewritten; every other line
(folds, groups, parameters, unknown properties, the photo) is kept byte for
byte, as ``card_edit`` does for category edits. A list entry that is still
there in the same derived form keeps its original line too, so editing one
email does not rewrite the other three or lose their Apple labels.

``replace=True`` is PUT: every modelled field not in the body is cleared.
``replace=False`` is PATCH (RFC 7396 merge patch): only fields in the body
change, ``null`` clears one.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cardfile.plugin.api import representation as rep
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.vcard import card_edit, card_fields
from cardfile.plugin.vcard.card_fields import escape_text
from cardfile.plugin.vcard.card_text import CardText

_WRITABLE = ("name", "given", "family", *rep.LIST_FIELDS, "organization", *rep.TEXT_FIELDS,
             "categories")
_BIRTHDAY = re.compile(r"([0-9]{4}|--)-?[0-9]{2}-?[0-9]{2}|[0-9]{4}-[0-9]{2}|---[0-9]{2}")


def new_card(uid: str | None = None) -> str:
    """The empty vCard 3.0 a JSON POST starts from (3.0: what Apple and DAVx5 write)."""
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{escape_text(uid or str(uuid.uuid4()))}"
            "\r\nFN:\r\nN:;;;;\r\nEND:VCARD\r\n")


def apply(text: str, data: dict[str, Any], replace: bool) -> str:
    """``text`` with the fields of ``data`` applied (see the module docstring)."""
    card = CardText(text)
    lines = [p for p in card.parsed if p is not None]
    current = {"given": rep.name_parts(lines)[0], "family": rep.name_parts(lines)[1]}
    for field in _WRITABLE:
        if field not in data and not replace:
            continue
        value = data.get(field)
        if field in rep.LIST_FIELDS:
            _set_list(card, field, value or [])
        elif field in ("given", "family"):
            current[field] = value or ""
        elif field == "categories":
            names = [str(n) for n in value or []]
            now = card_edit.categories_of(card.text())
            if [card_edit.category_key(n) for n in names] != [card_edit.category_key(n)
                                                               for n in now]:
                card = CardText(card_edit.set_categories(card.text(), names))
        elif field != "name":
            _set_scalar(card, field, value)
    if "given" in data or "family" in data or replace:
        _set_n(card, current["given"], current["family"])
    if "name" in data or replace:
        _set_fn(card, data.get("name") or "")
    if "photo" in data and data["photo"] is None:
        card.replace("PHOTO", [])
    return card.text()


def _set_fn(card: CardText, name: str) -> None:
    name = " ".join(name.split())
    if not name and not card.lines("FN"):
        return  # a vCard 2.1 card may go without FN; GET-then-PUT must not add one
    if not name:
        lines = [p for p in card.parsed if p is not None]
        given, family = rep.name_parts(lines)
        org = rep.scalar(lines, "organization")
        email = next((rep.text_of(p) for p in lines if p.name == "EMAIL"), "")
        name = " ".join(x for x in (given, family) if x) or (org or "") or email.strip()
    old = card.lines("FN")
    if old and rep.text_of(old[0][1]).strip() == name and len(old) == 1:
        return
    card.replace("FN", [card.line("FN:" + escape_text(name))])


def _set_n(card: CardText, given: str, family: str) -> None:
    old = card.lines("N")
    parts = rep.split_raw(card_fields.decode_value(old[0][1]), ";") if old else []
    parts += [""] * (5 - len(parts))
    if old:
        current = [c.strip() for c in rep.components(old[0][1])[:2]] + ["", ""]
        if current[:2] == [family.strip(), given.strip()]:
            return
    elif not (given or family):
        return
    parts[0], parts[1] = escape_text(family), escape_text(given)
    card.replace("N", [card.line("N:" + ";".join(parts))])


def _set_scalar(card: CardText, field: str, value: Any) -> None:
    lines = [p for p in card.parsed if p is not None]
    value = None if value is None or str(value) == "" else str(value)
    if (rep.scalar(lines, field) or None) == value:
        return
    prop = "ORG" if field == "organization" else rep.TEXT_FIELDS[field]
    if value is None:
        card.replace(prop, [])
        return
    if field == "organization":
        old = card.lines("ORG")
        parts = rep.split_raw(card_fields.decode_value(old[0][1]), ";") if old else [""]
        parts[0] = escape_text(value)
        card.replace("ORG", [card.line("ORG:" + ";".join(parts))])
    elif field == "birthday":
        card.replace("BDAY", [card.line(_birthday_line(card, value.strip()))])
    else:
        card.replace(prop, [card.line(f"{prop}:" + escape_text(value))])


def _birthday_line(card: CardText, value: str) -> str:
    """A date as it is; free text (``circa 1800``) only where vCard 4 allows it."""
    if _BIRTHDAY.fullmatch(value):
        return "BDAY:" + value
    if card.v4:
        return "BDAY;VALUE=text:" + escape_text(value)
    raise Problem(422, f"birthday {value!r} is not a date; write it as YYYY-MM-DD (or "
                       "--MM-DD without a year); free text needs a vCard 4 card")


def _set_list(card: CardText, field: str, entries: list[dict[str, Any]]) -> None:
    prop = rep.LIST_FIELDS[field]
    wanted = [rep.normalise_entry(field, e) for e in entries]
    wanted = [e for e in wanted if field == "addresses" or e["value"]]
    old = [(card.raw[i], rep.entry_of(field, p)) for i, p in card.lines(prop)]
    if [entry for _, entry in old] == wanted:
        return
    unused = list(old)
    new_raw = []
    for entry in wanted:
        match = next((pair for pair in unused if pair[1] == entry), None)
        if match is not None:
            unused.remove(match)
            new_raw.append(match[0])
        else:
            new_raw.append(card.line(_format_entry(card, prop, field, entry)))
    card.replace(prop, new_raw)


def _format_entry(card: CardText, prop: str, field: str, entry: dict[str, Any]) -> str:
    types = [re.sub(r"[^A-Za-z0-9-]", "", t) for t in entry["type"]]
    types = [t for t in types if t]
    head = prop
    if card.v4:
        if types:
            head += ";TYPE=" + ",".join(types)
        if entry["pref"]:
            head += ";PREF=1"
    else:
        if prop == "EMAIL":
            types = ["internet", *types]
        if entry["pref"]:
            types.append("pref")
        if types:
            head += ";TYPE=" + ",".join(types)
    if field == "addresses":
        value = ";".join(escape_text(entry[p]) for p in rep.ADDRESS_PARTS)
    elif prop == "URL":
        value = " ".join(entry["value"].split())
    else:
        value = escape_text(entry["value"])
    return f"{head}:{value}"
