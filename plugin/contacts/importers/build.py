"""Build a vCard 3.0 card from the fields a CSV row or an LDIF entry holds.

Tabular formats (Google, Outlook, Thunderbird, LinkedIn, khard CSV; LDIF)
differ only in what their columns are called; each importer fills a
``Record`` and this module writes it as one card, so escaping, address
structure, dates and the content-derived UID are done in one place.
vCard 3.0 is written because every client (Apple and Google included) reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cardfile.plugin.contacts.export import card_text, escape_text
from cardfile.plugin.contacts.importers.model import stable_uid
from cardfile.plugin.vcard.card_fields import ContentLine, unique_categories

#: ADR components in vCard order.
ADR_PARTS = ("box", "extended", "street", "city", "region", "code", "country")


@dataclass
class Record:
    """One person as a tabular export describes them."""

    fn: str = ""
    family: str = ""
    given: str = ""
    additional: str = ""
    prefix: str = ""
    suffix: str = ""
    nickname: list[str] = field(default_factory=list)
    orgs: list[list[str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    emails: list[tuple[list[str], str]] = field(default_factory=list)
    phones: list[tuple[list[str], str]] = field(default_factory=list)
    urls: list[tuple[list[str], str]] = field(default_factory=list)
    #: (types, {component: value}) with components from ADR_PARTS or "label".
    addresses: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)
    bday: str = ""
    anniversary: str = ""
    gender: str = ""
    notes: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    uid: str = ""
    kind: str = ""
    #: Other properties, already named (``X-CUSTOM1``, ``IMPP``): (name, params, text).
    extra: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.fn or self.family or self.given or self.orgs or self.emails
                    or self.phones or self.nickname or self.addresses or self.urls)


def add_address(record: Record, types: list[str], parts: dict[str, str]) -> None:
    if any(v.strip() for v in parts.values()):
        record.addresses.append((types, parts))


def build(record: Record, source_key: str) -> str:
    """The card text; ``source_key`` names the format so UIDs differ between formats."""
    lines: list[ContentLine] = []

    def add(name: str, value: str, params: dict[str, list[str]] | None = None) -> None:
        lines.append(ContentLine("", name, params or {}, value))

    fn = record.fn.strip() or display_name(record)
    n = [record.family, record.given, record.additional, record.prefix, record.suffix]
    add("FN", escape_text(fn))
    add("N", ";".join(escape_text(p.strip()) for p in n))
    if record.kind:
        add("X-ADDRESSBOOKSERVER-KIND", record.kind)
    if record.nickname:
        add("NICKNAME", ",".join(escape_text(v) for v in record.nickname))
    for org in record.orgs:
        add("ORG", ";".join(escape_text(p.strip()) for p in org).rstrip(";"))
    for title in record.titles:
        add("TITLE", escape_text(title))
    for role in record.roles:
        add("ROLE", escape_text(role))
    for types, value in record.emails:
        add("EMAIL", escape_text(value.strip()), _types(["internet", *types]))
    for types, value in record.phones:
        add("TEL", escape_text(value.strip()), _types(types))
    for types, parts in record.addresses:
        value = ";".join(escape_text(parts.get(p, "").strip()) for p in ADR_PARTS)
        params = _types(types)
        if parts.get("label"):
            params["LABEL"] = [parts["label"].replace("\n", "\\n")]
        add("ADR", value, params)
    for types, value in record.urls:
        add("URL", value.strip(), _types(types))
    if record.bday:
        add("BDAY", record.bday)
    if record.anniversary:
        add("X-ANNIVERSARY", record.anniversary)
    if record.gender:
        add("X-GENDER", escape_text(record.gender))
    for note in record.notes:
        add("NOTE", escape_text(note))
    cats = unique_categories(record.categories)
    if cats:
        add("CATEGORIES", ",".join(escape_text(c) for c in cats))
    for name, params, value in record.extra:
        add(name, escape_text(value), params)
    uid = record.uid.strip() or stable_uid(source_key, *(f"{ln.name}:{ln.value}" for ln in lines))
    lines.insert(0, ContentLine("", "UID", {}, escape_text(uid)))
    return card_text("3.0", lines)


def _types(types: list[str]) -> dict[str, list[str]]:
    seen: list[str] = []
    for t in types:
        t = t.strip().lower()
        if t and t not in seen:
            seen.append(t)
    return {"TYPE": seen} if seen else {}


def display_name(record: Record) -> str:
    parts = [record.prefix, record.given, record.additional, record.family, record.suffix]
    name = " ".join(p.strip() for p in parts if p.strip())
    if name:
        return name
    for candidate in ([o[0] for o in record.orgs if o and o[0]] + record.nickname
                      + [v for _, v in record.emails] + [v for _, v in record.phones]):
        if candidate.strip():
            return candidate.strip()
    return ""


_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2,4})$")
_DOT_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{2,4})$")
_ISO_DATE = re.compile(r"^(\d{4}|-)-?(\d{1,2})-(\d{1,2})$")


def parse_date(value: str) -> str:
    """An export's date as vCard 3.0 ``YYYY-MM-DD`` (``--MM-DD`` without a year)."""
    value = value.strip()
    if not value or value in ("0/0/00", "00.00.00", "0.0.00"):
        return ""
    match = _ISO_DATE.match(value)
    if match:
        year, month, day = match.groups()
        return f"{year if year != '-' else '-'}-{int(month):02d}-{int(day):02d}"
    for pattern, order in ((_US_DATE, "mdy"), (_DOT_DATE, "dmy")):
        match = pattern.match(value)
        if match:
            a, b, y = (int(g) for g in match.groups())
            month, day = (a, b) if order == "mdy" else (b, a)
            if month > 12 and day <= 12:
                month, day = day, month
            if not (1 <= month <= 12 and 1 <= day <= 31):
                return value
            year = y + (1900 if y >= 30 else 2000) if y < 100 else y
            return f"{year:04d}-{month:02d}-{day:02d}"
    return value
