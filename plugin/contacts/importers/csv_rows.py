"""Fill a ``Record`` from one CSV row whose columns ``csv_columns`` has classified.

Columns of one slot are gathered first (street, city and code of one
address; type and value of one phone) and then turned into one vCard value.
Google writes several values into one cell separated by `` ::: `` and marks
the primary one with ``*``; its system labels (``* myContacts``,
``* starred``) are not categories.
"""

from __future__ import annotations

import re
from collections import defaultdict

from cardfile.plugin.contacts.importers.build import ADR_PARTS, Record, add_address, parse_date
from cardfile.plugin.contacts.importers.csv_columns import Column

MULTI = " ::: "
SYSTEM_LABELS = frozenset({"mycontacts", "my contacts", "starred", "other contacts"})
_TYPE_WORDS = {"mobile": "cell", "cell": "cell", "cellular": "cell", "home": "home",
               "work": "work", "business": "work", "office": "work", "fax": "fax",
               "pager": "pager", "main": "main", "voice": "voice", "car": "car",
               "video": "video", "text": "text", "pref": "pref", "internet": "internet",
               "personal": "home", "private": "home", "isdn": "isdn", "blog": "x-blog",
               "homepage": "x-homepage", "profile": "x-profile", "other": "x-other"}


def label_types(label: str) -> list[str]:
    """vCard TYPEs for a label like ``* Work Fax`` or ``home,pref``."""
    label = label.strip()
    types = ["pref"] if label.startswith("*") else []
    for word in re.split(r"[\s,/;]+", label.lstrip("* ").casefold()):
        if not word:
            continue
        mapped = _TYPE_WORDS.get(word)
        if mapped:
            types.append(mapped)
        elif re.fullmatch(r"[a-z][a-z0-9-]*", word):
            types.append(word if word.startswith("x-") else f"x-{word}")
    return types


def fill_record(record: Record, cells: list[tuple[str, Column | None, str]]) -> None:
    slots: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    slot_types: dict[tuple[str, str], tuple[str, ...]] = {}
    bday_parts: dict[str, str] = {}
    for header, column, raw in cells:
        value = raw.strip()
        if not value:
            continue
        if column is None:
            record.extra.append((_x_name(header), {}, value))
            continue
        field = column.field
        if field in ("fn", "given", "additional", "family", "prefix", "suffix"):
            current = getattr(record, field)
            setattr(record, field, f"{current} {value}".strip() if current else value)
        elif field == "nickname":
            record.nickname.extend(v.strip() for v in value.split(MULTI) if v.strip())
        elif field == "kind":
            if value.lower() not in ("individual", ""):
                record.kind = value.lower()
        elif field == "bday" and column.part != "value":
            bday_parts[column.part] = value
        elif field == "bday":
            record.bday = parse_date(value)
        elif field == "anniversary":
            record.anniversary = parse_date(value)
        elif field == "gender":
            if value.casefold() not in ("unspecified", "0"):
                record.gender = value
        elif field == "note":
            record.notes.append(value)
        elif field == "categories":
            record.categories.extend(_categories(value))
        elif field == "uid":
            record.uid = value
        elif field == "x":
            name = column.part if column.part.startswith("X-") else _x_name(header)
            record.extra.append((name, {}, value))
        elif field == "skip":
            continue
        else:
            key, part = (field, column.slot), column.part
            if field in ("org", "department", "job"):
                key, part = ("org", column.slot), field
            slots[key][part] = f"{slots[key][part]}\n{value}" if part in slots[key] else value
            slot_types[key] = column.types
    if bday_parts.get("month") and bday_parts.get("day"):
        year = bday_parts.get("year", "")
        record.bday = parse_date(f"{year or '-'}-{bday_parts['month']}-{bday_parts['day']}")
    for (field, slot), parts in slots.items():
        _slot(record, field, parts, list(slot_types[(field, slot)]))


def _slot(record: Record, field: str, parts: dict[str, str], types: list[str]) -> None:
    label = parts.get("type", "")
    types = types + label_types(label.split(MULTI)[0]) if label else types
    value = parts.get("value", "")
    if field in ("email", "tel", "url"):
        target = {"email": record.emails, "tel": record.phones, "url": record.urls}[field]
        for i, item in enumerate(v.strip() for v in value.split(MULTI)):
            if item:
                target.append((types if i == 0 else [t for t in types if t != "pref"], item))
    elif field == "adr":
        components = {p: parts.get(p, "") for p in ADR_PARTS}
        street = [parts.get(k, "") for k in ("street", "street2", "street3")]
        components["street"] = "\n".join(s for s in street if s)
        if parts.get("label"):
            components["label"] = parts["label"]
            if not any(components[p] for p in ADR_PARTS):
                components["street"] = parts["label"]
        add_address(record, types, components)
    elif field == "org":
        if parts.get("org") or parts.get("department"):
            record.orgs.append([parts.get("org", ""), parts.get("department", "")])
        if parts.get("job"):
            record.titles.append(parts["job"])
    elif field == "event":
        kind = label.casefold().strip("* ")
        if kind == "anniversary" and not record.anniversary:
            record.anniversary = parse_date(value)
        elif value:
            params = {"X-LABEL": [label]} if label else {}
            record.extra.append(("X-EVENT", params, parse_date(value)))
    elif field == "relation" and value:
        record.extra.append(("X-ABRELATEDNAMES", {"X-LABEL": [label]} if label else {}, value))
    elif field == "impp" and value:
        service = parts.get("service", "")
        params = {"X-SERVICE-TYPE": [service]} if service else {}
        record.extra.append(("IMPP", params | ({"X-LABEL": [label]} if label else {}), value))
    elif field == "custom" and value:
        record.extra.append(("X-CUSTOM", {"X-LABEL": [label]} if label else {}, value))
    elif field == "categories" and value:
        record.categories.extend(_categories(value))
    elif field == "external" and value:
        record.extra.append(("X-EXTERNAL-ID", {"X-LABEL": [label]} if label else {}, value))


def _categories(value: str) -> list[str]:
    names: list[str] = []
    for part in re.split(r" ::: |;", value):
        name = part.strip()
        if name.startswith("*"):
            name = name.lstrip("* ").strip()
            if name.casefold() in SYSTEM_LABELS:
                continue
        if name:
            names.append(name)
    return names


def _x_name(header: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", header).strip("-").upper()
    return f"X-{name}" if name else "X-CSV-COLUMN"
