"""Find contacts that are the same person, merge them without loss, undo merges.

Matching (used by ``cardfile dedupe`` and by every import):
- the same UID (or a UID an earlier merge absorbed, kept as
  ``X-CARDFILE-MERGED-UID``) is the same card;
- a shared email (``email-validator``, case-folded) or phone (E.164) is the
  same person when the names are compatible (``rapidfuzz`` token-set ratio of
  at least 90; a card without a real name is compatible with any). 60 to 90 is
  "ambiguous": listed for review, never merged by itself;
- an email or phone held by three or more incompatible names (a family
  landline, ``info@``) is never a key.

Merging keeps everything: multi-valued properties are unioned (TYPEs of equal
values joined), categories unioned, and for single-valued ones (N, FN, BDAY...)
the more complete value wins while the other stays on the card as
``X-CARDFILE-ALT-<NAME>``. The originals of every merge are kept under
``<data>/merges/<user>/<book>/<id>/`` so ``undo`` restores them byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardfile.plugin.contacts import state_files
from cardfile.plugin.contacts.export import card_text, convert_lines, version_of
from cardfile.plugin.vcard import card_edit
from cardfile.plugin.vcard.card_fields import (
    ContentLine,
    escape_text,
    parse_lines,
    split_escaped,
    unescape,
    unique_categories,
)
from cardfile.plugin.vcard.normalize import email_key, name_key, phone_key

SURE, AMBIGUOUS = 90.0, 60.0
MERGED_UID = "X-CARDFILE-MERGED-UID"
ALT_PREFIX = "X-CARDFILE-ALT-"
SINGLE = frozenset({"FN", "N", "BDAY", "ANNIVERSARY", "GENDER", "KIND", "SORT-STRING",
                    "CLASS", "X-ADDRESSBOOKSERVER-KIND", "X-GENDER", "X-ANNIVERSARY"})
_SKIP = frozenset({"VERSION", "UID", "PRODID", "REV", "BEGIN", "END"})
_LABELS = ("X-ABLABEL", "X-ABADR")
_MEDIA = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})


@dataclass
class Person:
    """What matching looks at in one card."""

    uid: str
    name: str
    #: Other spellings of the name (N next to FN): a match on any of them counts.
    other_names: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    aliases: set[str] = field(default_factory=set)
    href: str = ""


def person_of(text: str, region: str, href: str = "") -> Person:
    person = Person("", "", href=href)
    fn = n = ""
    for line in parse_lines(text):
        if line.name == "UID":
            person.uid = line.value.strip()
        elif line.name == "FN" and not fn:
            fn = unescape(line.value)
        elif line.name == "N" and not n:
            parts = split_escaped(line.value, ";") + ["", ""]
            n = f"{parts[1]} {parts[0]}"
        elif line.name == "EMAIL" and line.value.strip():
            person.emails.add(email_key(unescape(line.value)))
        elif line.name == "TEL" and sum(c.isdigit() for c in line.value) >= 3:
            person.phones.add(phone_key(unescape(line.value), region))
        elif line.name == MERGED_UID:
            person.aliases.add(line.value.strip())
    person.name = real_name(fn) or real_name(n)
    if real_name(n) and real_name(n) != person.name:
        person.other_names.add(real_name(n))
    return person


def person_score(a: Person, b: Person) -> float:
    """How alike two people's names are (best pair of their spellings)."""
    return max(name_score(x, y) for x in {a.name} | a.other_names
               for y in {b.name} | b.other_names)


def real_name(value: str) -> str:
    """The name as matching compares it; an email or number used as a name is no name."""
    if "@" in value or not any(c.isalpha() for c in value):
        return ""
    return name_key(value)


def name_score(a: str, b: str) -> float:
    if not a or not b:
        return 100.0
    from rapidfuzz import fuzz  # on the first comparison, not at the server's start

    return float(fuzz.token_set_ratio(a, b))


@dataclass
class Match:
    uid: str
    sure: bool
    reason: str


class Matcher:
    """Indexes of a book's people by UID, email and phone."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self._alias: dict[str, str] = {}
        self._keys: dict[str, set[str]] = defaultdict(set)

    def add(self, person: Person) -> None:
        self.remove(person.uid)
        self.people[person.uid] = person
        for alias in person.aliases | {person.uid}:
            self._alias[alias] = person.uid
        for key in _keys(person):
            self._keys[key].add(person.uid)

    def remove(self, uid: str) -> None:
        old = self.people.pop(uid, None)
        if old is None:
            return
        for key in _keys(old):
            self._keys[key].discard(uid)
        for alias in old.aliases | {uid}:
            if self._alias.get(alias) == uid:
                del self._alias[alias]

    def resolve(self, uid: str) -> str | None:
        return self._alias.get(uid)

    def usable(self, key: str, extra: Person | None = None) -> bool:
        """False for a key three or more different people share.

        The holders are taken in UID order: "different" is counted greedily,
        and in a set's order a book's duplicate listing changed from one start
        to the next (5,815 to 5,818 sure clusters of 100,000 cards)."""
        names = [self.people[u].name for u in sorted(self._keys.get(key, ()))
                 if u in self.people]
        if extra is not None:
            names.append(extra.name)
        distinct: list[str] = []
        for name in filter(None, names):
            if all(name_score(name, other) < SURE for other in distinct):
                distinct.append(name)
        return len(distinct) < 3

    def match(self, person: Person) -> Match | None:
        same = self.resolve(person.uid)
        if same is None:
            same = next((self.resolve(a) for a in person.aliases if self.resolve(a)), None)
        if same is not None:
            return Match(same, True, f"same UID {person.uid}")
        best: Match | None = None
        best_score = -1.0
        for key in sorted(_keys(person)):
            holders = [u for u in self._keys.get(key, ()) if u != person.uid]
            if not holders or not self.usable(key, person):
                continue
            for uid in sorted(holders):
                score = person_score(person, self.people[uid])
                if score >= AMBIGUOUS and score > best_score:
                    kind = "email" if key.startswith("e:") else "phone"
                    reason = f"shared {kind} {key[2:]}" + (
                        "" if score >= SURE else f", names differ ({score:.0f}% alike)")
                    best, best_score = Match(uid, score >= SURE, reason), score
        return best


def _keys(person: Person) -> set[str]:
    return {f"e:{e}" for e in person.emails if e} | {f"t:{p}" for p in person.phones if p}


Cluster = tuple[list[str], list[str]]
Pair = tuple[str, str, str]


def clusters(matcher: Matcher) -> tuple[list[Cluster], list[Pair]]:
    """(sure clusters as (uids, reasons), ambiguous pairs (uid, uid, reason)) of a book."""
    parent = {uid: uid for uid in matcher.people}

    def find(u: str) -> str:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    reasons: dict[str, list[str]] = defaultdict(list)
    ambiguous: list[tuple[str, str, str]] = []
    for uid in sorted(matcher.people):
        person = matcher.people[uid]
        for key in sorted(_keys(person)):
            if not matcher.usable(key):
                continue
            for other in sorted(matcher._keys.get(key, ())):
                if other <= uid:
                    continue
                score = person_score(person, matcher.people[other])
                kind = "email" if key.startswith("e:") else "phone"
                if score >= SURE:
                    a, b = find(uid), find(other)
                    if a != b:
                        parent[b] = a
                    reasons[uid].append(f"{kind} {key[2:]}")
                elif score >= AMBIGUOUS:
                    ambiguous.append((uid, other, f"shared {kind} {key[2:]}, names "
                                                  f"{score:.0f}% alike"))
    groups: dict[str, list[str]] = defaultdict(list)
    for uid in sorted(matcher.people):
        groups[find(uid)].append(uid)
    sure = [(members, sorted({r for m in members for r in reasons[m]}))
            for members in groups.values() if len(members) > 1]
    pairs = [(a, b, r) for a, b, r in ambiguous if find(a) != find(b)]
    return sure, pairs


# -- lossless merge -------------------------------------------------------------------
def _value_key(line: ContentLine, region: str) -> str:
    name = line.name[len(ALT_PREFIX):] if line.name.startswith(ALT_PREFIX) else line.name
    if name in ("N", "ADR", "ORG"):
        parts = [" ".join(p.replace(",", ", ").split()).casefold()
                 for p in split_escaped(line.value, ";")]
        return ";".join(parts).rstrip(";")
    value = unescape(line.value)
    if name == "EMAIL":
        return email_key(value)
    if name == "TEL":
        return phone_key(value, region)
    if name in ("PHOTO", "LOGO", "SOUND", "KEY"):
        return _media_key(line.value)
    return " ".join(value.casefold().rstrip(";").split())


def _media_key(value: str) -> str:
    """Inline data compares by its bytes: encoders differ in padding and line breaks."""
    data = "".join(value.split())
    if data.lower().startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _completeness(line: ContentLine) -> tuple[int, int]:
    value = unescape(line.value)
    if "@" in value and line.name == "FN":
        return (0, 0)
    return (sum(1 for p in split_escaped(line.value, ";") if p.strip()), len(value.strip()))


def merge_cards(base: str, other: str, region: str) -> tuple[str, bool]:
    """``other`` merged into ``base`` (whose UID survives); (text, whether base changed)."""
    base_lines = parse_lines(base)
    version = version_of(base_lines)
    lines = [ln for ln in base_lines if ln.name != "VERSION"]
    other_lines = parse_lines(other)
    incoming = convert_lines(other_lines, version_of(other_lines), version, False)
    changed = False
    seen = {(ln.name, _value_key(ln, region)): ln for ln in lines}
    used_groups = {ln.group.lower() for ln in lines if ln.group}
    base_uid = next((ln.value.strip() for ln in lines if ln.name == "UID"), "")
    for ln in incoming:
        if ln.name == "UID" and ln.value.strip() not in (base_uid, ""):
            if (MERGED_UID, ln.value.strip().casefold()) not in seen:
                new = ContentLine("", MERGED_UID, {}, ln.value.strip())
                lines.append(new)
                seen[(MERGED_UID, ln.value.strip().casefold())] = new
                changed = True
    by_group: dict[str, list[ContentLine]] = defaultdict(list)
    for ln in incoming:
        if ln.name not in _SKIP:
            by_group[ln.group.lower()].append(ln)
    for group, members in by_group.items():
        if group:
            main = [m for m in members if m.name not in _LABELS]
            if main and all((m.name, _value_key(m, region)) in seen for m in main):
                continue
            new_group = _free_group(used_groups)
            for m in members:
                lines.append(ContentLine(new_group, m.name, m.params, m.value))
                seen[(m.name, _value_key(m, region))] = lines[-1]
            changed = True
            continue
        for ln in members:
            changed |= _merge_line(lines, seen, ln, region)
    return card_text(version, lines), changed


def _merge_line(lines: list[ContentLine], seen: dict[tuple[str, str], ContentLine],
                ln: ContentLine, region: str) -> bool:
    key = (ln.name, _value_key(ln, region))
    if ln.name == "CATEGORIES":
        return add_categories(lines, split_escaped(ln.value, ","))
    existing = seen.get(key)
    if existing is not None:
        return ln.name not in _MEDIA and _union_types(existing, ln)
    if ln.name in SINGLE:
        current = next((x for x in lines if x.name == ln.name and not x.group), None)
        alt = ALT_PREFIX + ln.name
        if current is not None:
            if (alt, key[1]) in seen or not key[1]:
                return False
            loser = ln
            if _completeness(ln) > _completeness(current):
                loser = ContentLine("", ln.name, current.params, current.value)
                current.params, current.value = dict(ln.params), ln.value
                seen[(ln.name, key[1])] = current
            kept = ContentLine("", alt, loser.params, loser.value)
            lines.append(kept)
            seen[(alt, _value_key(loser, region))] = kept
            return True
    lines.append(ln)
    seen[key] = ln
    return True


def _union_types(existing: ContentLine, ln: ContentLine) -> bool:
    have = existing.params.get("TYPE", [])
    lower = {t.lower() for t in have}
    extra = [t for t in ln.params.get("TYPE", []) if t.lower() not in lower]
    if not extra:
        return False
    existing.params["TYPE"] = have + extra
    return True


def _free_group(used: set[str]) -> str:
    n = 1
    while f"item{n}" in used:
        n += 1
    used.add(f"item{n}")
    return f"item{n}"


def add_categories(lines: list[ContentLine], names: list[str]) -> bool:
    """Add category ``names`` (case-insensitive, trimmed) to the card's CATEGORIES."""
    line = next((ln for ln in lines if ln.name == "CATEGORIES"), None)
    current = unique_categories(split_escaped(line.value, ",")) if line else []
    wanted = unique_categories([*current, *names])
    if len(wanted) == len(current):
        return False
    value = ",".join(escape_text(c) for c in wanted)
    if line is None:
        lines.append(ContentLine("", "CATEGORIES", {}, value))
    else:
        line.value = value
    return True


def with_categories(text: str, names: list[str]) -> str:
    """``text`` with ``names`` added to its categories, every other line kept byte for byte."""
    return card_edit.add_categories(text, names)


# -- the undo store -------------------------------------------------------------------
class MergeStore:
    """Originals of every merge, so a merge can be undone exactly."""

    def __init__(self, data_dir: Path, user: str, book: str) -> None:
        self.root = data_dir / "merges" / user / book

    def record(self, survivor_uid: str, merged_etag: str, originals: list[dict[str, Any]],
               reason: str) -> str:
        merge_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        folder = self.root / merge_id
        folder.mkdir(parents=True, mode=0o700)
        for i, original in enumerate(originals):
            state_files.write(folder / f"{i}.vcf", original["text"].encode("utf-8"))
        meta = {"id": merge_id, "survivor": survivor_uid, "etag": merged_etag,
                "reason": reason, "time": time.time(),
                "originals": [{k: v for k, v in o.items() if k != "text"} | {"file": f"{i}.vcf"}
                              for i, o in enumerate(originals)]}
        state_files.write_json(folder / "meta.json", meta, 0o600, indent=1)
        return merge_id

    def entries(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        metas = []
        for folder in sorted(self.root.iterdir()):
            meta_file = folder / "meta.json"
            if meta_file.is_file() and not (folder / "undone").exists():
                metas.append(json.loads(meta_file.read_text()))
        return metas

    def load(self, merge_id: str) -> tuple[dict[str, Any], list[str]]:
        folder = self.root / merge_id
        if "/" in merge_id or not (folder / "meta.json").is_file():
            raise KeyError(merge_id)
        meta = json.loads((folder / "meta.json").read_text())
        texts = [(folder / o["file"]).read_bytes().decode("utf-8") for o in meta["originals"]]
        return meta, texts

    def mark_undone(self, merge_id: str) -> None:
        (self.root / merge_id / "undone").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
