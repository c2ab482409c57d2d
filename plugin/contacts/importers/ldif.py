"""Read LDIF address books (Thunderbird, Netscape, LDAP exports).

Each record is parsed on its own (with the ``ldif`` package) so a broken
record is reported with its line and the others still import. Attribute
names follow Thunderbird's ``mozillaAbPersonAlpha`` schema and the standard
``inetOrgPerson`` ones; anything else is kept as an ``X-LDAP-`` property.
``groupOfNames`` records (Thunderbird mailing lists) become categories of
their members.
"""

from __future__ import annotations

import io
import re

from cardfile.plugin.contacts.importers.build import Record, add_address, build, parse_date
from cardfile.plugin.contacts.importers.model import Parsed, Problem, SourceCard

_HOME = {"mozillahomestreet": "street", "homestreet": "street",
         "mozillahomestreet2": "extended", "mozillahomelocalityname": "city",
         "homelocality": "city", "mozillahomestate": "region", "homeregion": "region",
         "mozillahomepostalcode": "code", "homepostalcode": "code",
         "mozillahomecountryname": "country", "homecountryname": "country"}
_WORK = {"street": "street", "streetaddress": "street", "postaladdress": "street",
         "mozillaworkstreet2": "extended", "l": "city", "locality": "city", "st": "region",
         "region": "region", "postalcode": "code", "zip": "code", "c": "country",
         "countryname": "country", "postofficebox": "box"}
_PHONES = {"telephonenumber": ["work"], "homephone": ["home"], "fax": ["fax"],
           "facsimiletelephonenumber": ["fax"], "pager": ["pager"], "pagerphone": ["pager"],
           "mobile": ["cell"], "cellphone": ["cell"], "carphone": ["cell"]}
_EXTRA = {"nsaimid": "X-AIM", "nscpaimscreenname": "X-AIM", "mozillacustom1": "X-CUSTOM1",
          "mozillacustom2": "X-CUSTOM2", "mozillacustom3": "X-CUSTOM3",
          "mozillacustom4": "X-CUSTOM4", "custom1": "X-CUSTOM1", "custom2": "X-CUSTOM2",
          "custom3": "X-CUSTOM3", "custom4": "X-CUSTOM4"}
_IGNORED = {"objectclass", "modifytimestamp", "mozillausehtmlmail", "xmozillausehtmlmail",
            "birthyear", "birthmonth", "birthday", "dn", "member", "uniquemember"}


def read_ldif(text: str, name: str) -> Parsed:
    import ldif as ldif_lib  # (with urllib: imported when an LDIF file is read, not at start)

    parsed = Parsed("ldif")
    uid_by_dn: dict[str, str] = {}
    lists: list[tuple[str, str, list[str]]] = []
    for line_no, chunk in _records(text):
        origin = f"{name}:{line_no}"
        try:
            entries = list(ldif_lib.LDIFParser(io.BytesIO(chunk.encode("utf-8")),
                                               encoding="utf8", strict=False).parse())
        except Exception as e:  # the parser raises bare ValueErrors and more
            parsed.problems.append(Problem(origin, f"cannot read this LDIF record ({e}); "
                                           "skipped"))
            continue
        for dn, entry in entries:
            attrs = {k.lower(): [str(v) for v in values] for k, values in entry.items()}
            classes = {c.lower() for c in attrs.get("objectclass", [])}
            if classes & {"groupofnames", "groupofuniquenames", "mozillaabgroup"}:
                members = attrs.get("member", []) + attrs.get("uniquemember", [])
                lists.append((origin, (attrs.get("cn") or [dn])[0], members))
                continue
            record = _record(attrs)
            if record.is_empty():
                parsed.problems.append(Problem(origin, "entry has no name, email or phone; "
                                               "skipped"))
                continue
            text_card = build(record, "ldif")
            uid = re.search(r"^UID:(.*)$", text_card, re.M)
            uid_by_dn[_norm_dn(dn)] = uid.group(1).strip() if uid else ""
            parsed.cards.append(SourceCard(text_card, origin))
    for origin, list_name, members in lists:
        uids = [uid_by_dn[_norm_dn(m)] for m in members if _norm_dn(m) in uid_by_dn]
        missing = len(members) - len(uids)
        if missing:
            parsed.problems.append(Problem(origin, f"mailing list {list_name!r}: {missing} "
                                           "member(s) not in this file", skipped=False))
        parsed.groups.setdefault(list_name, []).extend(uids)
    return parsed


def _records(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each blank-line separated record."""
    records: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, line in enumerate(re.split(r"\r?\n", text.lstrip("\ufeff")), 1):
        if not line.strip():
            if current:
                records.append((start, "\n".join(current) + "\n"))
                current = []
            continue
        if line.startswith("#") and not current:
            continue
        if not current:
            start = number
            if line.lower().startswith("version:"):
                continue
        current.append(line)
    if current:
        records.append((start, "\n".join(current) + "\n"))
    return records


def _norm_dn(dn: str) -> str:
    return ",".join(part.strip().casefold() for part in dn.split(","))


def _record(attrs: dict[str, list[str]]) -> Record:
    record = Record()
    first = {k: v[0].strip() for k, v in attrs.items() if v and v[0].strip()}
    record.fn = first.get("cn", first.get("displayname", ""))
    record.given = first.get("givenname", "")
    record.family = first.get("sn", first.get("surname", ""))
    for key in ("mozillanickname", "xmozillanickname"):
        record.nickname += [v for v in attrs.get(key, []) if v.strip()]
    for i, mail in enumerate(attrs.get("mail", [])):
        record.emails.append((["pref"] if i == 0 else [], mail))
    for key in ("mozillasecondemail", "xmozillasecondemail"):
        record.emails += [([], v) for v in attrs.get(key, []) if v.strip()]
    for key, types in _PHONES.items():
        record.phones += [(types, v) for v in attrs.get(key, []) if v.strip()]
    home = {part: first[k] for k, part in _HOME.items() if k in first}
    work = {part: first[k] for k, part in _WORK.items() if k in first}
    add_address(record, ["home"], home)
    add_address(record, ["work"], work)
    org, dept = first.get("o", first.get("company", "")), first.get("ou", "")
    if org or dept:
        record.orgs.append([org, dept])
    record.titles += attrs.get("title", [])
    for key in ("mozillaworkurl", "workurl", "labeleduri"):
        record.urls += [(["work"], v.split()[0]) for v in attrs.get(key, []) if v.strip()]
    for key in ("mozillahomeurl", "homeurl"):
        record.urls += [(["home"], v.split()[0]) for v in attrs.get(key, []) if v.strip()]
    if first.get("birthmonth") and first.get("birthday"):
        year = first.get("birthyear", "-")
        record.bday = parse_date(f"{year}-{first['birthmonth']}-{first['birthday']}")
    record.notes += [v for v in attrs.get("description", []) if v.strip()]
    known = set(_HOME) | set(_WORK) | set(_PHONES) | _IGNORED | {
        "cn", "displayname", "givenname", "sn", "surname", "mozillanickname",
        "xmozillanickname", "mail", "mozillasecondemail", "xmozillasecondemail", "o",
        "company", "ou", "title", "mozillaworkurl", "workurl", "labeleduri", "mozillahomeurl",
        "homeurl", "description"}
    for key, values in attrs.items():
        if key in _EXTRA:
            record.extra += [(_EXTRA[key], {}, v) for v in values if v.strip()]
        elif key not in known:
            name = "X-LDAP-" + re.sub(r"[^A-Za-z0-9]+", "-", key).upper()
            record.extra += [(name, {}, v) for v in values if v.strip()]
    return record
