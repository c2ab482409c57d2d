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
from cardfile.plugin.api.entry_kinds import EntryKind
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


Old = tuple[int, ContentLine, dict[str, Any]]


def _set_list(card: CardText, field: str, entries: list[dict[str, Any]]) -> None:
    """The entries of a list field, changed line for line.

    An entry still there as it was keeps its line byte for byte. An entry the
    client changed is written over the line it most resembles (the same value,
    label, types or address parts; one with nothing in common is a new line),
    keeping that line's group, its other parameters and the Apple
    lines of its group (``X-ABADR``, ``X-ABLabel``): editing a phone number
    keeps its label, editing a city keeps the street's ``item2.`` group.

    Order: the entries are written in the order given. When that is the
    order they had, each stays where it was; when the client reordered them,
    they are written one after the other where the first was, each line
    followed by its own Apple lines (moved, not rewritten), so its group and
    label go with it. A preference (PREF=1, TYPE=pref) is the entry's own and
    is not changed by moving it.
    """
    kind = rep.KINDS[field]
    wanted = [rep.normalise_entry(field, e) for e in entries]
    wanted = [e for e in wanted if kind.value == "address" or e["value"]]
    found_labels = rep.labels([p for p in card.parsed if p is not None])
    old: list[Old] = [(i, p, rep.entry_of(field, p, found_labels.get(p.group.lower(), "")
                                          if p.group else ""))
                      for i, p in card.lines(*kind.props)]
    if len(old) == len(wanted) and all(rep.same_entry(o[2], w) for o, w in zip(old, wanted,
                                                                                  strict=True)):
        return
    unused = list(old)
    matches: list[Old | None] = []
    for entry in wanted:
        match = next((o for o in unused if rep.same_entry(o[2], entry)), None)
        if match is not None:
            unused.remove(match)
        matches.append(match)
    for k, entry in enumerate(wanted):
        reason = None if matches[k] is not None else _entry_problem(kind, entry["value"]
                                                                    if "value" in entry else "")
        if reason:
            raise Problem(422, f"{field}/{k}: {entry['value']!r} {reason}", field=field, index=k)
    paired: dict[int, Old] = {}
    for k in [k for k, m in enumerate(matches) if m is None]:
        if not unused:
            break
        best = max(unused, key=lambda o: _likeness(kind, o[2], wanted[k]))
        if _likeness(kind, best[2], wanted[k]) > 0:
            unused.remove(best)
            paired[k] = best
    placed = [(matches[k] or paired[k])[0] for k in range(len(wanted))
              if matches[k] is not None or k in paired]
    reordered = placed != sorted(placed)
    writer = _EntryWriter(card, kind, field)
    writer.single_taken = any(o[1].name == kind.prop for o in [*matches, *paired.values()] if o)
    anchor = old[0][0] if old else card.end()
    last_group = ""
    for k, entry in enumerate(wanted):
        match = matches[k]
        if (match is not None or k in paired) and not reordered:
            anchor = (match or paired[k])[0]
        new_raw = writer.slots.setdefault(anchor, [])
        if match is not None:
            new_raw.append(card.raw[match[0]])
            if reordered:
                writer.move_companions(match[1].group, new_raw)
            last_group = match[1].group
        elif k in paired:
            writer.rewrite(paired[k], entry, new_raw, move=reordered)
            last_group = paired[k][1].group
        else:
            if last_group:  # a new entry goes after the label of the one before it
                writer.move_companions(last_group, new_raw)
            writer.add(entry, new_raw)
            last_group = ""
    card.place(kind.props, writer.slots, also_drop=writer.drop)


class _EntryWriter:
    """The lines of one list field's entries as they are being written (see ``_set_list``)."""

    def __init__(self, card: CardText, kind: EntryKind, field: str) -> None:
        self.card, self.kind, self.field = card, kind, field
        self.slots: dict[int, list[str]] = {}
        self.drop: set[int] = set()
        self.next_item = _next_item_number(card)
        #: A property a card may have once (vCard 4's ANNIVERSARY) already written.
        self.single_taken = False

    def move_companions(self, group: str, new_raw: list[str]) -> None:
        """Move the Apple lines of ``group`` (its X-ABLabel) after its entry's line."""
        for i in sorted(_apple_lines(self.card, group, self.kind.props) - self.drop):
            new_raw.append(self.card.raw[i])
            self.drop.add(i)

    def add(self, entry: dict[str, Any], new_raw: list[str]) -> None:
        label = entry["label"] or ""
        prop = self._prop_for(entry["type"], label)
        written = self._written_label(prop, entry["type"], label)
        group = ""
        if written:
            group, self.next_item = f"item{self.next_item}", self.next_item + 1
        params = {"TYPE": ["internet"]} if prop == "EMAIL" and not self.card.v4 else {}
        new_raw.append(self.card.line(self._line(prop, entry, group, params)))
        if written:
            new_raw.append(self.card.line(f"{group}.X-ABLabel:" + escape_text(written)))

    def rewrite(self, before: Old, entry: dict[str, Any], new_raw: list[str], move: bool
                ) -> None:
        """``before``'s line with the entry's value, types and label; its group and
        other parameters stay (an encoding goes: the new value is written plain)."""
        _, line, was = before
        label = was["label"] if entry["label"] is None else entry["label"]
        prop = line.name if self._fits(line.name, entry["type"], label) else self._prop_for(
            entry["type"], label)
        written = self._written_label(prop, entry["type"], label)
        group = line.group
        old_label = rep.labels([p for p in self.card.parsed if p is not None]).get(
            group.lower(), "") if group else ""
        relabel = rep.label_text(old_label) != rep.label_text(written)
        if relabel:
            self.drop |= _label_lines(self.card, group)
            if written and not group:
                group, self.next_item = f"item{self.next_item}", self.next_item + 1
        new_raw.append(self.card.line(self._line(prop, entry, group, line.params, line.value)))
        if move:
            self.move_companions(group, new_raw)
        if relabel and written:
            new_raw.append(self.card.line(f"{group}.X-ABLabel:" + escape_text(written)))

    def _fits(self, prop: str, types: list[str], label: str) -> bool:
        """Whether a line of ``prop`` can stay that property with these types."""
        kind = self.kind
        if prop in kind.legacy:
            return False  # an edited X-JABBER becomes IMPP, which every client reads
        if prop == kind.prop and kind.v4_types:
            return not label and bool(set(types) & kind.v4_types)
        return True

    def _prop_for(self, types: list[str], label: str) -> str:
        prop = self.kind.prop_for(types, label, self.card.v4)
        if prop == self.kind.prop and self.kind.v4_types:  # vCard 4 has one ANNIVERSARY
            if self.single_taken:
                return self.kind.apple
            self.single_taken = True
        return prop

    def _written_label(self, prop: str, types: list[str], label: str) -> str:
        """The X-ABLabel to write: the entry's own, else Apple's built-in one of its type
        (on the Apple property, where the label is what says the type)."""
        if label:
            return label
        return self.kind.apple_label(types) if prop == self.kind.apple else ""

    def _line(self, prop: str, entry: dict[str, Any], group: str,
              old_params: dict[str, list[str]], old_value: str = "") -> str:
        kind, v4 = self.kind, self.card.v4
        old_types = [t.strip() for raw in old_params.get("TYPE", []) for t in raw.split(",")
                     if t.strip()]
        upper = any(t.isupper() for t in old_types)
        types = [re.sub(r"[^A-Za-z0-9-]", "", t) for t in entry["type"]]
        said = {kind.implied_type(prop)} | (set(kind.apple_types) if prop == kind.apple
                                            else set())
        types = [t for t in types if t and t.lower() not in said]
        if prop == "EMAIL" and any(t.lower() == "internet" for t in old_types):
            types = ["internet", *types]
        if entry["pref"] and not v4:
            types.append("pref")
        if upper:
            types = [t.upper() for t in types]
        dropped = {"ENCODING", "CHARSET", "PREF"}
        if kind.services:
            dropped.add("X-SERVICE-TYPE")
        if kind.value in ("date", "uri-or-text"):
            dropped |= {"VALUE", "X-APPLE-OMIT-YEAR"}
        params: dict[str, list[str]] = {}
        for key, values in old_params.items():
            if key in dropped or (key == "TYPE" and not types):
                continue
            params[key] = types if key == "TYPE" else values
        if types and "TYPE" not in params:
            params["TYPE"] = types
        if entry["pref"] and v4:
            params["PREF"] = ["1"]
        value = _entry_value(kind, prop, entry)
        if kind.services:
            service = kind.services.get(value.split(":", 1)[0].lower())
            before = (old_params.get("X-SERVICE-TYPE") or [""])[0]
            if service:
                params["X-SERVICE-TYPE"] = [before if before.lower() == service.lower()
                                            else service]
        if kind.value == "uri-or-text" and prop == kind.prop and not _URI.match(value):
            params["VALUE"] = ["text"]
            value = escape_text(value)
        no_year = re.fullmatch(r"--([0-9]{2})-?([0-9]{2})", value) if kind.value == "date" else None
        if no_year and prop == kind.apple:  # how Apple writes a date without a year
            params["X-APPLE-OMIT-YEAR"] = ["1604"]
            value = f"1604-{no_year.group(1)}-{no_year.group(2)}"
        if kind.scheme and old_value.strip().lower().startswith(kind.scheme):
            value = kind.scheme + value  # the line said tel:/mailto:; the rewritten one too
        return card_fields.format_line(ContentLine(group, prop, params, value))


#: A value vCard 4's RELATED can take as its default URI (else it is VALUE=text).
_URI = re.compile(r"(urn|https?|mailto|tel|xmpp|sip|data):\S+\Z", re.I)


def _entry_problem(kind: EntryKind, value: str) -> str | None:
    """Why a new or changed entry's value cannot be written (None: it can)."""
    if kind.prop == "EMAIL":
        reason = normalize.email_problem(value)
        return f"is not an email address: {reason.rstrip('.')}" if reason else None
    if kind.value == "date" and not _BIRTHDAY.fullmatch(value):
        return "is not a date; write it as YYYY-MM-DD (or --MM-DD without a year)"
    return None


def _likeness(kind: EntryKind, old: dict[str, Any], new: dict[str, Any]) -> int:
    """How alike a stored entry and a changed one are (0: nothing in common)."""
    if kind.value == "address":
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


def _apple_lines(card: CardText, group: str, entry_props: tuple[str, ...]) -> set[int]:
    """The Apple companions (X-ABLabel, X-ABADR) of ``group``, not its entry lines."""
    if not group:
        return set()
    return {i for i, p in enumerate(card.parsed)
            if p is not None and p.name.startswith("X-AB") and p.name not in entry_props
            and p.group.lower() == group.lower()}


def _next_item_number(card: CardText) -> int:
    numbers = [int(m.group(1)) for p in card.parsed if p is not None and p.group
               for m in [re.fullmatch(r"item(\d{1,6})", p.group, re.I)] if m]
    return max(numbers, default=0) + 1


def _entry_value(kind: EntryKind, prop: str, entry: dict[str, Any]) -> str:
    """An entry's value as written in its line (an address's parts, a URI, escaped text)."""
    if kind.value == "address":
        return ";".join(escape_text(entry[p]) for p in rep.ADDRESS_PARTS)
    if kind.value == "uri" or (kind.value == "uri-or-text" and prop == kind.prop):
        return "".join(entry["value"].split()) if kind.services else " ".join(
            entry["value"].split())
    if kind.value == "date":
        return entry["value"]
    return escape_text(entry["value"])
