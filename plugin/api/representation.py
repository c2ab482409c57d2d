"""A vCard as the readable JSON contact, and back, without losing a line.

The JSON form models what people edit (name, emails, phones, addresses,
organization, title, birthday, notes, urls, categories); the card keeps
everything else (photos, Apple ``item1.`` labels, X- properties, N's prefix
and suffix). Reading derives the JSON from the card's lines; writing
(``edit.py``) changes only the lines of fields whose JSON value changed, so a
GET followed by a PUT of the same JSON leaves the card byte for byte as it was.

Entries of lists compare in their derived form (value, lower-case types
without ``pref``/``internet``, pref flag): that is what makes an unchanged
entry recognisable, and so kept verbatim, on the way back.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from cardfile.plugin.api.entry_kinds import KINDS
from cardfile.plugin.vcard import card_edit, card_fields
from cardfile.plugin.vcard.card_fields import ContentLine

#: JSON list field -> its entry kind (the properties it is read from and written as).
LIST_FIELDS = KINDS
#: JSON text field -> vCard property (one line each).
TEXT_FIELDS = {"title": "TITLE", "birthday": "BDAY", "notes": "NOTE", "nickname": "NICKNAME",
               "phonetic_given": "X-PHONETIC-FIRST-NAME",
               "phonetic_family": "X-PHONETIC-LAST-NAME"}
#: JSON name field -> its component of N (family;given;additional;prefix;suffix).
N_PARTS = {"family": 0, "given": 1, "middle": 2, "prefix": 3, "suffix": 4}
ADDRESS_PARTS = ("po_box", "extended", "street", "city", "region", "postal_code", "country")
#: Types that say nothing a person chose (vCard 3's EMAIL;TYPE=INTERNET).
_HIDDEN_TYPES = frozenset({"pref", "internet"})
#: Every field a contact's JSON may carry (the ``fields`` query selects from these).
FIELDS = ("id", "uid", "etag", "url", "name", "given", "family", "middle", "prefix", "suffix",
          "nickname", "phonetic_given", "phonetic_family", "emails", "phones",
          "addresses", "organization", "title", "birthday", "notes", "urls", "ims", "related",
          "dates", "categories", "photo", "updated")
#: Fields answered from the index alone (no card file read).
INDEX_FIELDS = frozenset({"id", "uid", "etag", "url", "name", "updated"})


@dataclass(frozen=True)
class Meta:
    """What the JSON form needs besides the card text."""

    id: str
    uid: str
    etag: str
    url: str
    mtime_ns: int


def updated(mtime_ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(mtime_ns / 1e9, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def split_raw(value: str, separator: str) -> list[str]:
    """Split on unescaped ``separator``, keeping escapes (to re-join untouched)."""
    return card_fields.split_escaped(value, separator, keep_escapes=True)


def types_of(line: ContentLine) -> list[str]:
    found: list[str] = []
    for raw in line.params.get("TYPE", []):
        for t in raw.split(","):
            t = t.strip().strip('"').lower()
            if t and t not in _HIDDEN_TYPES and t not in found:
                found.append(t)
    return found


def is_pref(line: ContentLine) -> bool:
    types = {t.strip().lower() for raw in line.params.get("TYPE", []) for t in raw.split(",")}
    return "pref" in types or (line.params.get("PREF") or [""])[0].strip() == "1"


def text_of(line: ContentLine) -> str:
    return card_fields.unescape(card_fields.decode_value(line))


def components(line: ContentLine) -> list[str]:
    return [card_fields.unescape(p) for p in split_raw(card_fields.decode_value(line), ";")]


#: Apple's built-in labels are written ``_$!<Mobile>!$_``; people see ``Mobile``.
_APPLE_LABEL = re.compile(r"_\$!<(.*)>!\$_")


def label_text(raw: str) -> str:
    """What a person reads of an ``X-ABLABEL`` value."""
    found = _APPLE_LABEL.fullmatch(raw.strip())
    return found.group(1) if found else raw.strip()


def labels(lines: list[ContentLine]) -> dict[str, str]:
    """Group (lower case) -> its label as written: ``item1.X-ABLabel:_$!<Spouse>!$_``."""
    out: dict[str, str] = {}
    for line in lines:
        if line.group and line.name == "X-ABLABEL":
            out.setdefault(line.group.lower(), text_of(line).strip())
    return out


def entry_of(field: str, line: ContentLine, label: str = "") -> dict[str, Any]:
    """One list entry as JSON; ``label`` its X-ABLABEL as written.

    Apple's built-in label of a kind that has types (``_$!<Spouse>!$_`` of a related
    name) is read as that type, so ``RELATED;TYPE=spouse`` and Apple's spouse are
    one entry form; a property that says its type (``ANNIVERSARY``) has that type.
    """
    kind = KINDS[field]
    entry: dict[str, Any] = {}
    if kind.value == "address":
        parts = components(line) + [""] * len(ADDRESS_PARTS)
        entry.update(zip(ADDRESS_PARTS, parts, strict=False))
    else:
        value = text_of(line).strip()
        if kind.scheme and value.lower().startswith(kind.scheme):
            value = value[len(kind.scheme):]
        scheme = kind.legacy.get(line.name)
        if scheme and not value.lower().startswith(scheme + ":"):
            value = f"{scheme}:{value}"
        if kind.value == "date":
            value = _apple_no_year(line, value)
        entry["value"] = value
    types = types_of(line)
    implied = kind.implied_type(line.name)
    if implied and implied not in types:
        types.insert(0, implied)
    builtin = _APPLE_LABEL.fullmatch(label)
    if builtin and builtin.group(1).lower() in kind.apple_types:
        types = [builtin.group(1).lower(), *(t for t in types if t != builtin.group(1).lower())]
        label = ""
    entry["type"] = types
    entry["pref"] = is_pref(line)
    entry["label"] = label_text(label)
    return entry


def _apple_no_year(line: ContentLine, value: str) -> str:
    """Apple writes a date without a year as 1604-03-15 with X-APPLE-OMIT-YEAR=1604."""
    omit = (line.params.get("X-APPLE-OMIT-YEAR") or [""])[0].strip()
    if omit and value.startswith(omit + "-"):
        return "--" + value[len(omit) + 1:]
    return value


def entries(field: str, lines: list[ContentLine]) -> list[dict[str, Any]]:
    """Every entry of a list field, with its label, in card order."""
    found = labels(lines)
    props = KINDS[field].props
    return [entry_of(field, line, found.get(line.group.lower(), "") if line.group else "")
            for line in lines if line.name in props]


def normalise_entry(field: str, entry: dict[str, Any]) -> dict[str, Any]:
    """An entry from a client, in the derived form (defaults filled, types folded)."""
    out: dict[str, Any] = {}
    if KINDS[field].value == "address":
        for part in ADDRESS_PARTS:
            out[part] = str(entry.get(part) or "")
    else:
        out["value"] = str(entry.get("value", "")).strip()
    types: list[str] = []
    for t in entry.get("type") or []:
        t = str(t).strip().lower()
        if t and t not in _HIDDEN_TYPES and t not in types:
            types.append(t)
    out["type"] = types
    out["pref"] = bool(entry.get("pref", False))
    # A client that does not know labels sends none: the entry keeps its label.
    label = entry.get("label")
    out["label"] = None if label is None else " ".join(str(label).split())
    return out


def same_entry(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a stored entry is the one a client sent (a label of None matches any)."""
    if new.get("label") is None:
        return {k: v for k, v in old.items() if k != "label"} == {
            k: v for k, v in new.items() if k != "label"}
    return old == new


def first(lines: list[ContentLine], name: str) -> ContentLine | None:
    return next((line for line in lines if line.name == name), None)


def name_parts(lines: list[ContentLine]) -> tuple[str, str]:
    """(given, family) from N."""
    parts = n_parts(lines)
    return parts["given"], parts["family"]


def n_parts(lines: list[ContentLine]) -> dict[str, str]:
    """Every component of N by its JSON name (family, given, middle, prefix, suffix)."""
    n = first(lines, "N")
    parts = (components(n) if n is not None else []) + [""] * 5
    return {field: parts[i].strip() for field, i in N_PARTS.items()}


def scalar(lines: list[ContentLine], field: str) -> str | None:
    """The JSON value of a one-line field, or None when the card has none."""
    if field == "notes":
        notes = [text_of(line) for line in lines if line.name == "NOTE"]
        return "\n".join(notes) if notes else None
    if field == "organization":
        org = first(lines, "ORG")
        return components(org)[0] if org is not None else None
    if field == "name":
        fn = first(lines, "FN")
        return text_of(fn).strip() if fn is not None else None
    line = first(lines, TEXT_FIELDS[field])
    if line is None:
        return None
    if field == "nickname":  # a list: Ada,Addie
        return ", ".join(card_fields.text_values(line))
    value = text_of(line)
    return value.strip() if field in ("birthday", "phonetic_given", "phonetic_family") else value


def to_json(text: str, meta: Meta, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The readable JSON contact (only ``fields`` when given; ``id`` always)."""
    lines = card_fields.parse_lines(text)
    data: dict[str, Any] = {
        "id": meta.id, "uid": meta.uid, "etag": meta.etag, "url": meta.url,
        "name": scalar(lines, "name") or "", **n_parts(lines),
    }
    for field in LIST_FIELDS:
        data[field] = entries(field, lines)
    for field in ("organization", *TEXT_FIELDS):
        data[field] = scalar(lines, field)
    data["categories"] = card_edit.categories_of(text)
    data["photo"] = meta.url + "/photo" if first(lines, "PHOTO") is not None else None
    data["updated"] = updated(meta.mtime_ns)
    if fields is not None:
        data = {k: v for k, v in data.items() if k in fields or k == "id"}
    return data


def index_json(meta: Meta, name: str, fields: frozenset[str]) -> dict[str, Any]:
    """A contact's JSON from its index row, when only index fields are asked for."""
    data = {"id": meta.id, "uid": meta.uid, "etag": meta.etag, "url": meta.url,
            "name": name, "updated": updated(meta.mtime_ns)}
    return {k: v for k, v in data.items() if k in fields or k == "id"}
