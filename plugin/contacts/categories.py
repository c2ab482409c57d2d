"""The Categories collection of one address book.

``CATEGORIES`` on each card is the one truth of membership. What cards cannot
hold lives in a small store beside them (``.cardfile-categories.json`` in the
book's folder): categories with no members, metadata (colour, description),
the identity (UID and href) of the group card an Apple client made, and
members a client named that the server does not hold (kept, and applied when
such a contact arrives).

The same module turns categories into group cards for clients that want them
and turns group cards from any client back into ``CATEGORIES`` edits, so
every client sees the same groups.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import state_files
from cardfile.plugin.contacts.group_members import GroupMembers
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import ItemRow, etag_of
from cardfile.plugin.vcard import card_edit, card_fields
from cardfile.plugin.vcard.card_edit import category_key

if TYPE_CHECKING:
    from cardfile.plugin.contacts.storage import Collection

STORE_NAME = ".cardfile-categories.json"
#: Bounds of the group cards view (see ``Categories.group_cards_of``).
MAX_GROUP_CARDS = 500
MAX_GROUP_NAME = 200
_GROUP_NAMESPACE = uuid.UUID("6f1f1d2e-9a3c-4d6b-8f0e-7c2a5b4e3d21")
_GROUP_KIND_PROPS = ("X-ADDRESSBOOKSERVER-KIND", "KIND")
_MEMBER_PROPS = ("X-ADDRESSBOOKSERVER-MEMBER", "MEMBER")


@dataclass
class CategoryEntry:
    """What the store keeps about one category."""

    name: str
    uid: str = ""
    href: str = ""
    color: str = ""
    description: str = ""
    pending: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Category:
    """A category as the Categories collection shows it."""

    key: str
    name: str
    uid: str
    href: str
    count: int
    color: str
    description: str
    pending: tuple[str, ...]


def is_group_card(lines: Iterable[card_fields.ContentLine]) -> bool:
    return any(line.name in _GROUP_KIND_PROPS and line.value.strip().lower() == "group"
               for line in lines)


def member_uid(member: str) -> str:
    """``urn:uuid:X`` -> ``X``; other member URIs are kept as they are."""
    member = member.strip()
    return member[9:] if member.lower().startswith("urn:uuid:") else member


class CategoryStore:
    """The JSON file of category entries, written atomically."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, STORE_NAME)

    def load(self) -> dict[str, CategoryEntry]:
        try:
            with open(self.path, encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise Refused(500, f"{self.path} is damaged ({e}); fix or remove it") from e
        entries = {}
        for item in raw.get("categories", []):
            entry = CategoryEntry(**{k: v for k, v in item.items()
                                     if k in CategoryEntry.__dataclass_fields__})
            entries[category_key(entry.name)] = entry
        return entries

    def save(self, entries: dict[str, CategoryEntry]) -> None:
        data = {"version": 1, "categories": [asdict(e) for e in
                                             sorted(entries.values(), key=lambda e: e.name)]}
        state_files.write_json(self.path, data, 0o600, indent=1, ensure_ascii=False)


class Categories:
    """List, create, rename, delete categories and change their members.

    Callers hold Radicale's storage lock ("w" for changes).
    """

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.store = CategoryStore(collection.folder)
        self._entries: dict[str, CategoryEntry] | None = None

    # -- reading -----------------------------------------------------------
    @property
    def entries(self) -> dict[str, CategoryEntry]:
        if self._entries is None:
            self._entries = self.store.load()
        return self._entries

    def _save(self) -> None:
        self.store.save(self.entries)
        self.collection.note_own_write()

    def default_uid(self, key: str) -> str:
        return str(uuid.uuid5(_GROUP_NAMESPACE, f"{self.collection.path}\n{key}"))

    def all(self, counted: Iterable[tuple[str, str, int]] | None = None) -> list[Category]:
        """Every category, on a card or made on purpose; ``counted``: the index's
        ``category_counts``, if the caller has them already (``GroupMembers``)."""
        if counted is None:
            counted = self.collection._index.category_counts(self.collection._coll())
        counts = {key: (name, count) for key, name, count in counted}
        result = []
        for key in counts.keys() | self.entries.keys():
            entry = self.entries.get(key)
            name, count = counts.get(key, (entry.name if entry else key, 0))
            uid, href = self._identity(key)
            result.append(Category(
                key=key, name=entry.name if entry else name, uid=uid, href=href,
                count=count, color=entry.color if entry else "",
                description=entry.description if entry else "",
                pending=tuple(entry.pending) if entry else ()))
        return sorted(result, key=lambda c: (c.name.casefold(), c.key))

    def _identity(self, key: str) -> tuple[str, str]:
        """(UID, href) of the group card of the category ``key``."""
        entry = self.entries.get(key)
        uid = (entry.uid if entry and entry.uid else "") or self.default_uid(key)
        return uid, (entry.href if entry and entry.href else "") or f"{uid}.vcf"

    def hrefs(self) -> frozenset[str]:
        """The hrefs of every category's group card (those ``all`` gives), from the
        categories' keys alone: an Apple client's PUT of a new card asks whether its
        name is one, and ``all`` counted every category's members for it (30 ms at
        100,000 cards)."""
        keys = set(self.collection._index.category_keys(self.collection._coll()))
        return frozenset(self._identity(key)[1] for key in keys | self.entries.keys())

    def get(self, name: str) -> Category | None:
        key = category_key(name)
        return next((c for c in self.all() if c.key == key), None)

    def require(self, name: str) -> Category:
        category = self.get(name)
        if category is None:
            raise Refused(404, f"there is no category {name!r}")
        return category

    def members(self, name: str) -> list[ItemRow]:
        return self.collection._index.category_members(self.collection._coll(),
                                                       category_key(name))

    def by_group(self, uid: str = "", href: str = "") -> Category | None:
        return next((c for c in self.all() if (uid and c.uid == uid)
                     or (href and c.href == href)), None)

    # -- changing ------------------------------------------------------------
    def _entry(self, category: Category) -> CategoryEntry:
        """The stored entry of ``category``, created so its identity is kept."""
        entry = self.entries.get(category.key)
        if entry is None:
            entry = CategoryEntry(name=category.name, uid=category.uid, href=category.href)
            self.entries[category.key] = entry
        return entry

    def create(self, name: str, color: str = "", description: str = "") -> Category:
        name = _clean_name(name)
        key = category_key(name)
        if self.get(name) is not None:
            raise Refused(409, f"category {name!r} exists already")
        uid = self.default_uid(key)
        self.entries[key] = CategoryEntry(name=name, uid=uid, href=f"{uid}.vcf", color=color,
                                          description=description)
        self._save()
        return self.require(name)

    def update(self, name: str, color: str | None = None,
               description: str | None = None) -> Category:
        entry = self._entry(self.require(name))
        if color is not None:
            entry.color = color
        if description is not None:
            entry.description = description
        self._save()
        return self.require(name)

    def rename(self, old: str, new: str) -> Category:
        """Rename everywhere, in this one hold: the stored entry and every member's
        CATEGORIES (a client's group card; the API and the CLI rename in short
        holds, ``category_changes``)."""
        new, hrefs = self.rename_entry(old, new)
        for href in hrefs:
            self.rewrite_href(href, lambda text: card_edit.rename_category(text, old, new))
        return self.require(new)

    def rename_entry(self, old: str, new: str) -> tuple[str, list[str]]:
        """Rename the stored entry (merged into ``new``'s if that exists); return
        the new name as stored and the hrefs of the members still to rewrite."""
        new = _clean_name(new)
        category = self.require(old)
        new_key = category_key(new)
        entry = self._entry(category)
        del self.entries[category.key]
        target = self.entries.get(new_key)
        if target is not None and new_key != category.key:
            target.pending = sorted(set(target.pending) | set(entry.pending))
            target.name = new
        else:
            entry.name = new
            self.entries[new_key] = entry
        hrefs = [row.href for row in self.members(category.name)]
        self._save()
        return new, hrefs

    def delete(self, name: str) -> int:
        """Remove the category from every member (contacts stay), in this one
        hold; return how many."""
        hrefs = self.delete_entry(name)
        for href in hrefs:
            self.rewrite_href(href, lambda text: card_edit.remove_category(text, name))
        return len(hrefs)

    def delete_entry(self, name: str) -> list[str]:
        """Forget the stored entry; return the hrefs of the members to rewrite."""
        category = self.require(name)
        hrefs = [row.href for row in self.members(category.name)]
        self.entries.pop(category.key, None)
        self._save()
        return hrefs

    def rewrite_href(self, href: str, change: Callable[[str], str]) -> None:
        """``change`` the card at ``href`` if it is still there."""
        row = self.collection._index.row(self.collection._coll(), href)
        if row is not None:
            self._rewrite(row, change)

    def add_members(self, name: str, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """Add contacts (by UID or href); return (added, not found)."""
        category = self.require(name)
        added, missing = [], []
        for key in keys:
            row = self._find(key)
            if row is None:
                missing.append(key)
                continue
            self._rewrite(row, lambda text: card_edit.add_category(text, category.name))
            added.append(row.uid)
        self._entry(category)
        self._save()
        return added, missing

    def remove_members(self, name: str, keys: Iterable[str]) -> list[str]:
        category = self.require(name)
        removed = []
        for key in keys:
            row = self._find(key)
            if row is not None:
                self._rewrite(row, lambda text: card_edit.remove_category(text, category.name))
                removed.append(row.uid)
        entry = self._entry(category)
        entry.pending = [p for p in entry.pending if member_uid(p) not in set(keys)]
        self._save()
        return removed

    def _find(self, key: str) -> ItemRow | None:
        index, coll = self.collection._index, self.collection._coll()
        for candidate in (key, member_uid(key), f"urn:uuid:{key}"):
            hrefs = index.hrefs_with_uid(coll, candidate)
            if hrefs:
                row = index.row(coll, hrefs[0])
                if row is not None and row.kind != "group":
                    return row
        row = index.row(coll, key)
        return row if row is not None and row.kind != "group" else None

    def _rewrite(self, row: ItemRow, change: Callable[[str], str]) -> None:
        text = self.collection._item(row).serialize()
        new_text = change(text)
        if new_text != text:
            item = radicale.Item(collection_path=self.collection.path, text=new_text)
            self.collection.store_card(row.href, item)

    # -- group cards -----------------------------------------------------------
    def group_cards(self) -> dict[str, tuple[str, str]]:
        """href -> (UID, vCard text) of one synthesised group card per category, made
        afresh from every card's categories and the index's category counts (what
        ``Storage.group_cards`` keeps up to date change by change)."""
        by_card = self.collection._index.categories_by_card(self.collection._coll())
        return self.group_cards_of(GroupMembers.of(by_card.values()), self.all())

    def group_cards_of(self, members: GroupMembers, listed: list[Category] | None = None
                       ) -> dict[str, tuple[str, str]]:
        """href -> (UID, vCard text) of one synthesised group card per category.

        Bounded, because every group card is one more entry in every listing
        an Apple client asks for: one card with 5,000 categories would
        otherwise make 5,000 group cards and a 5 MB answer to each PROPFIND.
        A card counts towards at most ``group_members.MAX_GROUPS_PER_CARD`` group cards
        (its categories with the most members), a category name longer than
        ``MAX_GROUP_NAME`` characters makes none, and a book shows at most
        ``MAX_GROUP_CARDS`` (categories made on purpose first, then the
        largest). The categories themselves stay on the cards, for every
        other client, the web page and the API.

        A text ``members`` kept is used again while the category (name, UID,
        pending members) and its members are the same. ``listed``: ``all()``, if
        the caller read it already; else it is made from ``members``' counts.
        """
        uids = members.members()
        if listed is None:
            listed = self.all(members.category_counts())
        shown = sorted(
            (c for c in listed if len(c.name) <= MAX_GROUP_NAME
             and (c.key in uids or c.key in self.entries)),
            key=lambda c: (c.key not in self.entries, -len(uids.get(c.key, ())),
                           c.name.casefold(), c.key))[:MAX_GROUP_CARDS]
        texts = {}
        for category in shown:
            kept = members.texts.get(category.key)
            made = (category.name, category.uid, category.pending)
            if kept is None or kept[0] != made or members.crowded:
                uris = sorted({f"urn:uuid:{member_uid(uid)}"
                               for uid in uids.get(category.key, ())} | {
                    p if ":" in p else f"urn:uuid:{p}" for p in category.pending})
                kept = (made, _group_card_text(category, uris))
            texts[category.key] = kept
        # Texts made while a card is crowded are of cut member lists: none is kept
        # (a text is forgotten only when its own members change, not when a cut ends).
        members.texts = {} if members.crowded else texts
        return {category.href: (category.uid, texts[category.key][1]) for category in shown}

    def absorb_group_card(self, href: str, text: str) -> tuple[str, str]:
        """Turn a client's group card into a category; return (href, group card)."""
        lines = card_fields.parse_lines(text)
        uid = card_fields.uid_of(lines)
        name = next((card_fields.text_values(line)[0] for line in lines if line.name == "FN"),
                    "") or next((card_fields.text_values(line)[0] for line in lines
                                 if line.name == "N"), "") or "Unnamed group"
        name = _clean_name(name)
        wanted = [card_fields.unescape(line.value).strip() for line in lines
                  if line.name in _MEMBER_PROPS and line.value.strip()]
        existing = self.by_group(uid=uid, href=href)
        if existing is not None and existing.key != category_key(name):
            existing = self.rename(existing.name, name)
        category = existing or self.get(name)
        if category is None:
            self.entries[category_key(name)] = CategoryEntry(name=name)
            category = self.require(name)
        entry = self._entry(category)
        entry.name, entry.uid, entry.href = name, uid or category.uid, href
        current = {row.uid: row for row in self.members(name)}
        wanted_rows: dict[str, ItemRow] = {}
        pending = []
        for member in wanted:
            row = self._find(member_uid(member))
            if row is None:
                pending.append(member)
            else:
                wanted_rows[row.uid] = row
        for member_uid_, row in wanted_rows.items():
            if member_uid_ not in current:
                self._rewrite(row, lambda t: card_edit.add_category(t, name))
        for member_uid_, row in current.items():
            if member_uid_ not in wanted_rows:
                self._rewrite(row, lambda t: card_edit.remove_category(t, name))
        entry.pending = sorted(set(pending))
        self._save()
        return href, self.group_cards().get(href, ("", ""))[1]

    def delete_group(self, href: str) -> bool:
        category = self.by_group(href=href)
        if category is None:
            return False
        self.delete(category.name)
        return True

    def apply_pending(self, uid: str, text: str) -> str:
        """Add categories that named this contact before it existed here."""
        if not os.path.exists(self.store.path):
            return text
        changed = False
        for entry in self.entries.values():
            matches = [p for p in entry.pending if member_uid(p) == member_uid(uid)]
            if matches:
                text = card_edit.add_category(text, entry.name)
                entry.pending = [p for p in entry.pending if p not in matches]
                changed = True
        if changed:
            self._save()
        return text


def _clean_name(name: str) -> str:
    cleaned = card_fields.category_name(name)
    if not cleaned:
        raise Refused(400, "a category needs a name")
    if len(cleaned) > 200:
        raise Refused(400, "a category name may be at most 200 characters")
    return cleaned


def _group_card_text(category: Category, member_uris: list[str]) -> str:
    name = card_fields.escape_text(category.name)
    lines = ["BEGIN:VCARD", "VERSION:3.0", "PRODID:-//Cardfile//Categories//EN",
             f"UID:{category.uid}", f"FN:{name}", f"N:{name};;;;",
             "X-ADDRESSBOOKSERVER-KIND:group"]
    lines += [f"X-ADDRESSBOOKSERVER-MEMBER:{uri}" for uri in member_uris]
    lines.append("END:VCARD")
    return "".join(card_fields.fold(line) for line in lines)


def as_vcard4_group(text: str) -> str:
    """A synthesised vCard 3 group card as vCard 4 (RFC 6350 KIND:group and MEMBER)."""
    out = []
    for line in text.split("\r\n"):
        if line == "VERSION:3.0":
            line = "VERSION:4.0"
        elif line == "X-ADDRESSBOOKSERVER-KIND:group":
            line = "KIND:group"
        elif line.startswith("X-ADDRESSBOOKSERVER-MEMBER:"):
            line = "MEMBER:" + line[len("X-ADDRESSBOOKSERVER-MEMBER:"):]
        out.append(line)
    return "\r\n".join(out)


def group_card_etag(text: str) -> str:
    return etag_of(text)
