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
from cardfile.plugin.vcard import card_edit, card_fields, normalize
from cardfile.plugin.vcard.card_fields import ContentLine, escape_text
from cardfile.plugin.vcard.card_text import CardText

_WRITABLE = ("name", *rep.N_PARTS, *rep.LIST_FIELDS, "organization", *rep.TEXT_FIELDS,
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
    current = rep.n_parts(lines)
    for field in _WRITABLE:
        if field not in data and not replace:
            continue
        value = data.get(field)
        if field in rep.LIST_FIELDS:
            _set_list(card, field, value or [])
        elif field in rep.N_PARTS:
            current[field] = value or ""
        elif field == "categories":
            names = [str(n) for n in value or []]
            now = card_edit.categories_of(card.text())
            if [card_edit.category_key(n) for n in names] != [card_edit.category_key(n)
                                                               for n in now]:
                card = CardText(card_edit.set_categories(card.text(), names))
        elif field != "name":
            _set_scalar(card, field, value)
    if replace or any(field in data for field in rep.N_PARTS):
        _set_n(card, current)
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


def _set_n(card: CardText, wanted: dict[str, str]) -> None:
    """N with the components in ``wanted``; untouched components keep their text."""
    old = card.lines("N")
    parts = rep.split_raw(card_fields.decode_value(old[0][1]), ";") if old else []
    parts += [""] * (5 - len(parts))
    now = rep.n_parts([old[0][1]]) if old else {field: "" for field in rep.N_PARTS}
    changed = [f for f in rep.N_PARTS if now[f] != wanted[f].strip()]
    if not changed or (not old and not any(wanted.values())):
        return
    for field in changed:
        parts[rep.N_PARTS[field]] = escape_text(wanted[field].strip())
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
    elif field == "nickname":  # a list property: each nickname escaped on its own
        names = [escape_text(n.strip()) for n in value.split(",") if n.strip()]
        card.replace(prop, [card.line(f"{prop}:" + ",".join(names))] if names else [])
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
    """The entries of a list field, changed line for line.

    An entry still there as it was keeps its line byte for byte. An entry the
    client changed is written over the line it most resembles (the same value,
    label, types or address parts; one with nothing in common is a new line),
    keeping that line's group, its other parameters and the Apple
    lines of its group (``X-ABADR``, ``X-ABLabel``): editing a phone number
    keeps its label, editing a city keeps the street's ``item2.`` group.
    """
    prop = rep.LIST_FIELDS[field]
    wanted = [rep.normalise_entry(field, e) for e in entries]
    wanted = [e for e in wanted if field == "addresses" or e["value"]]
    found_labels = rep.labels([p for p in card.parsed if p is not None])
    old = [(i, p, rep.entry_of(field, p, found_labels.get(p.group.lower(), "") if p.group
                               else "")) for i, p in card.lines(prop)]
    if len(old) == len(wanted) and all(rep.same_entry(o[2], w) for o, w in zip(old, wanted,
                                                                                  strict=True)):
        return
    unused = list(old)
    matches: list[tuple[int, ContentLine, dict[str, Any]] | None] = []
    for entry in wanted:
        match = next((o for o in unused if rep.same_entry(o[2], entry)), None)
        if match is not None:
            unused.remove(match)
        matches.append(match)
    paired: dict[int, tuple[int, ContentLine, dict[str, Any]]] = {}
    for k in [k for k, m in enumerate(matches) if m is None]:
        if not unused:
            break
        best = max(unused, key=lambda o: _likeness(field, o[2], wanted[k]))
        if _likeness(field, best[2], wanted[k]) > 0:
            unused.remove(best)
            paired[k] = best
    if prop == "EMAIL":
        for k, entry in enumerate(wanted):
            reason = None if matches[k] is not None else normalize.email_problem(entry["value"])
            if reason:
                raise Problem(422, f"emails/{k}: {entry['value']!r} is not an email address: "
                                   f"{reason.rstrip('.')}", field="emails", index=k)
    drop_labels: set[int] = set()
    slots: dict[int, list[str]] = {}
    anchor = old[0][0] if old else card.end()
    next_item = _next_item_number(card)
    for k, entry in enumerate(wanted):
        match = matches[k]
        if match is not None or k in paired:
            anchor = (match or paired[k])[0]
        new_raw = slots.setdefault(anchor, [])
        if match is not None:
            new_raw.append(card.raw[match[0]])
            continue
        if k in paired:
            _, line, before = paired[k]
            label = before["label"] if entry["label"] is None else entry["label"]
            group = line.group
            if label != before["label"]:
                drop_labels |= _label_lines(card, group)
                if label and not group:
                    group, next_item = f"item{next_item}", next_item + 1
            new_raw.append(card.line(_rewrite(card, line, prop, field, entry, group)))
            if label != before["label"] and label:
                new_raw.append(card.line(f"{group}.X-ABLabel:" + escape_text(label)))
            continue
        content = _format_entry(card, prop, field, entry)
        if entry["label"]:
            group, next_item = f"item{next_item}", next_item + 1
            new_raw.append(card.line(f"{group}.{content}"))
            new_raw.append(card.line(f"{group}.X-ABLabel:" + escape_text(entry["label"])))
        else:
            new_raw.append(card.line(content))
    card.place(prop, slots, also_drop=drop_labels)


def _likeness(field: str, old: dict[str, Any], new: dict[str, Any]) -> int:
    """How alike a stored entry and a changed one are (0: nothing in common)."""
    if field == "addresses":
        score = sum(2 for part in rep.ADDRESS_PARTS if old[part] and old[part] == new[part])
    else:
        score = 4 if old["value"] == new["value"] else 0
    if new["label"] is not None and old["label"] and old["label"] == new["label"]:
        score += 2
    if old["type"] and old["type"] == new["type"]:
        score += 1
    return score


def _label_lines(card: CardText, group: str) -> set[int]:
    if not group:
        return set()
    return {i for i, p in enumerate(card.parsed)
            if p is not None and p.name == "X-ABLABEL" and p.group.lower() == group.lower()}


def _next_item_number(card: CardText) -> int:
    numbers = [int(m.group(1)) for p in card.parsed if p is not None and p.group
               for m in [re.fullmatch(r"item(\d{1,6})", p.group, re.I)] if m]
    return max(numbers, default=0) + 1


def _rewrite(card: CardText, line: ContentLine, prop: str, field: str, entry: dict[str, Any],
             group: str) -> str:
    """``line`` with the entry's value, types and preference; its group and other
    parameters stay (an encoding goes: the new value is written plain)."""
    old_types = [t.strip() for raw in line.params.get("TYPE", []) for t in raw.split(",")
                 if t.strip()]
    upper = any(t.isupper() for t in old_types)
    types = [re.sub(r"[^A-Za-z0-9-]", "", t) for t in entry["type"]]
    types = [t for t in types if t]
    if prop == "EMAIL" and any(t.lower() == "internet" for t in old_types):
        types = ["internet", *types]
    if entry["pref"] and not card.v4:
        types.append("pref")
    if upper:
        types = [t.upper() for t in types]
    params: dict[str, list[str]] = {}
    for key, values in line.params.items():
        if key in ("ENCODING", "CHARSET", "PREF") or (key == "TYPE" and not types):
            continue
        params[key] = types if key == "TYPE" else values
    if types and "TYPE" not in params:
        params["TYPE"] = types
    if entry["pref"] and card.v4:
        params["PREF"] = ["1"]
    value = _entry_value(prop, field, entry)
    scheme = {"TEL": "tel:", "EMAIL": "mailto:"}.get(prop, "")
    if scheme and line.value.strip().lower().startswith(scheme):
        value = scheme + value  # the line said tel:/mailto:; the rewritten one still does
    return card_fields.format_line(ContentLine(group, prop, params, value))


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
    return f"{head}:{_entry_value(prop, field, entry)}"


def _entry_value(prop: str, field: str, entry: dict[str, Any]) -> str:
    """An entry's value as written in its line (an address's parts, a URL, escaped text)."""
    if field == "addresses":
        return ";".join(escape_text(entry[p]) for p in rep.ADDRESS_PARTS)
    if prop == "URL":
        return " ".join(entry["value"].split())
    return escape_text(entry["value"])
