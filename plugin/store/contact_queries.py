"""The contacts queries of the index: paging, sorting, search, members, matching people.

One search language for the JSON API's ``q`` and ``cardfile search``, so both
give the same answers; every method is on ``CardIndex`` (this class is its
mixin), so no module above the store writes SQL.

Paging is keyset ("seek") paging over a total order: the sort key, then the
file name (unique in a book). A cursor holds the last row's key, so a page
costs the same at position 50 as at 99,950, and a contact added or removed
while a client pages never makes it skip or repeat another one. Cursors are
base64url JSON, opaque to clients.

Search matches every word of ``q`` against names (FN, N, NICKNAME, ORG) and
emails, ignoring case and accents both ways (``collation.fold``, the ``fvalue``
column); a word or a whole query that looks like a phone number is compared by
digits with the ``norm`` column (digits-only TEL), so ``+49 (30) 1234-56`` finds
``030 123456`` written in any format. A query that is an email address or a
phone number puts the contacts that have exactly it first. Sorting by name
follows the Unicode Collation Algorithm (``collation.sort_key``, stored BLOBs).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from cardfile.plugin.refused import Refused
from cardfile.plugin.store import collation
from cardfile.plugin.store.rows import ItemRow
from cardfile.plugin.vcard.card_fields import category_key, normalise_email

#: sort name -> SQL expressions of the key (ascending), before the href tie-breaker.
#: The name keys are UCA sort keys (BLOBs): by name as shown, or family then given name.
SORTS: dict[str, tuple[str, ...]] = {
    "name": ("i.sk_name",),
    "family": ("i.sk_family",),
    "modified": ("i.mtime_ns",),
}
#: The A-Z index: "#" (digits, signs, no name), the letters, "…" (other scripts).
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ROW = "i.href, i.uid, i.etag, i.size, i.mtime_ns, i.fn, i.kind, i.seq"
_NAME_PROPS = ("FN", "N", "NICKNAME", "ORG", "EMAIL", "X-PHONETIC-FIRST-NAME",
               "X-PHONETIC-LAST-NAME")
_PHONE_LIKE = re.compile(r"[+\d\s().\-/]+")


@dataclass(frozen=True)
class Page:
    rows: list[ItemRow]
    total: int
    next_cursor: str | None
    offset: int | None = None


@dataclass(frozen=True)
class Letter:
    """One entry of the A-Z index: where its contacts start in the list, and how many."""

    letter: str
    offset: int
    count: int


def parse_sort(value: str) -> tuple[str, bool]:
    """``name``, ``-modified``: (key, descending)."""
    descending = value.startswith("-")
    key = value[1:] if descending else value
    if key not in SORTS:
        raise Refused(400, f"sort must be one of {', '.join(SORTS)} (with - for descending), "
                           f"not {value!r}")
    return key, descending


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _phone_needle(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    trimmed = digits.lstrip("0")
    return trimmed if len(trimmed) >= 3 else digits


def _word_condition(word: str) -> tuple[str, list[Any]]:
    """A plain word: in a name, nickname, organisation or email; digits in a phone.

    The phone test only for a word that looks like a phone number: the digits
    of an email address (``ann.1984@...``) must not find phone numbers.
    """
    sql, params = _folded_match(_NAME_PROPS, word)
    if _looks_like_phone(word):
        sql = f"({sql} OR {_PHONE_IN})"
        params.append(_like(_phone_needle(word)))
    return sql, params


def _folded_match(props: tuple[str, ...], text: str) -> tuple[str, list[Any]]:
    """Cards with one of ``props`` whose folded value contains ``text`` folded.

    A value's folded form is its lvalue, unless the index kept another in
    fvalue (``index._prop_row``): so the plain values are found through the
    (name, lvalue) index, the others through the small (name, fvalue) one
    (``fvalue != ''`` names that partial index's condition). Both scan the
    matching values once and pick their cards ("i.id IN"), instead of looking
    at every card's values in turn (6x slower at 100,000 contacts).
    """
    marks = ",".join("?" * len(props))
    needle = _like(collation.fold(text))
    sql = (f"i.id IN (SELECT p.item FROM props p WHERE p.name IN ({marks}) "
           f"AND p.lvalue LIKE ? ESCAPE '\\' "
           f"UNION ALL SELECT p.item FROM props p WHERE p.name IN ({marks}) "
           f"AND p.fvalue != '' AND p.fvalue LIKE ? ESCAPE '\\')")
    return sql, [*props, needle, *props, needle]


def _looks_like_phone(text: str) -> bool:
    return bool(_PHONE_LIKE.fullmatch(text)) and sum(c.isdigit() for c in text) >= 3


def _field_condition(props: tuple[str, ...], value: str) -> tuple[str, list[Any]]:
    """``field:value``: the value in that field only (phones by digits too)."""
    sql, params = _folded_match(props, value)
    if "TEL" in props and sum(c.isdigit() for c in value) >= 3:
        sql = f"({sql} OR {_PHONE_IN})"
        params.append(_like(_phone_needle(value)))
    return sql, params


#: Cards with a TEL whose digits (``norm``) contain the parameter. (``IS NOT NULL``
#: names the partial index's condition: SQLite then reads that index alone.)
_PHONE_IN = ("i.id IN (SELECT p.item FROM props p WHERE p.name = 'TEL' "
             "AND p.norm IS NOT NULL AND p.norm LIKE ? ESCAPE '\\')")

#: ``field:`` prefixes of a search term -> the properties searched.
FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("FN", "N", "NICKNAME"), "fn": ("FN",), "email": ("EMAIL",),
    "phone": ("TEL",), "tel": ("TEL",), "org": ("ORG",), "category": ("CATEGORIES",),
    "categories": ("CATEGORIES",), "nickname": ("NICKNAME",), "note": ("NOTE",),
    "uid": ("UID",), "address": ("ADR",), "adr": ("ADR",), "title": ("TITLE",)}
_MAX_TERMS = 16


def search_terms(q: str) -> list[str]:
    """The terms of a search box's text (words; ``field:value`` stays one term)."""
    return q.split()[:_MAX_TERMS]


def search_condition(terms: list[str]) -> tuple[str, list[Any]]:
    """SQL over ``items i`` that holds when every term matches.

    A plain word looks in names, nicknames, organisation and emails (and in
    phone digits when it looks like a phone number); ``field:value`` looks in
    that field. A whole search that looks like one phone number
    (``+49 30 1234``) also finds it by digits across the spaces.
    """
    terms = [t for t in terms if t.strip()][:_MAX_TERMS]
    if not terms:
        return "1", []
    conditions, params = [], []
    for term in terms:
        name, sep, value = term.partition(":")
        props = FIELDS.get(name.lower()) if sep and value else None
        sql, p = _field_condition(props, value) if props else _word_condition(term)
        conditions.append(sql)
        params += p
    words_sql = " AND ".join(conditions)
    whole = " ".join(terms)
    if len(terms) > 1 and _looks_like_phone(whole):
        return f"({_PHONE_IN} OR ({words_sql}))", [_like(_phone_needle(whole)), *params]
    return words_sql, params


def _filters(coll: int, max_size: int, terms: list[str], category: str | None
             ) -> tuple[str, list[Any]]:
    # With a search or a category the matching values pick the cards, so the
    # collection is checked per card ("+i.coll") rather than used to walk all.
    narrowed = bool(terms) or category is not None
    where = ("+" if narrowed else "") + "i.coll = ? AND i.kind != 'group' AND i.size <= ?"
    params: list[Any] = [coll, max_size]
    if terms:
        sql, p = search_condition(terms)
        where += f" AND {sql}"
        params += p
    if category is not None:
        where += (" AND i.id IN (SELECT c.item FROM props c WHERE c.name = 'CATEGORIES' "
                  "AND c.norm = ?)")
        params.append(category_key(category))
    return where, params


def exact_rank(q: str) -> tuple[str, list[Any]]:
    """SQL that is 0 for a contact having exactly the email address or phone number
    ``q`` is, else 1 (no SQL for any other query): such contacts come first.

    A phone number is exact when the typed digits (without a leading 0) are the
    end of the stored number and at most a country code longer, so "030
    5550123" ranks "+49 30 5550123" first, and "5550123" alone ranks nothing.
    """
    text = q.strip()
    if "@" in text and not any(c.isspace() for c in text):
        return ("(CASE WHEN i.id IN (SELECT p.item FROM props p WHERE p.name = 'EMAIL' "
                "AND p.norm = ?) THEN 0 ELSE 1 END)", [normalise_email(text)])
    if _looks_like_phone(text):
        needle = _phone_needle(text)
        if len(needle) >= 6:
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return ("(CASE WHEN i.id IN (SELECT p.item FROM props p WHERE p.name = 'TEL' "
                    "AND p.norm IS NOT NULL AND p.norm LIKE ? ESCAPE '\\' "
                    "AND length(p.norm) <= ?) THEN 0 ELSE 1 END)",
                    ["%" + escaped, len(needle) + 4])
    return "", []


def encode_cursor(sort: str, key: list[Any]) -> str:
    values = [{"b": v.hex()} if isinstance(v, bytes) else v for v in key]
    raw = json.dumps([sort, *values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, width: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode("utf-8"))
        if isinstance(data, list):
            data = [_blob(v) for v in data]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    if (not isinstance(data, list) or len(data) != width + 1 or data[0] != sort
            or not all(_cursor_value(v) for v in data[1:])):
        raise Refused(400, "the cursor is not one this server gave for this sort order; "
                         "start again without a cursor")
    return data[1:]


def _blob(value: Any) -> Any:
    """A sort key's bytes from a cursor's ``{"b": hex}`` (ValueError if not hex)."""
    if isinstance(value, dict) and set(value) == {"b"} and isinstance(value["b"], str):
        return bytes.fromhex(value["b"])
    return value


def _cursor_value(value: Any) -> bool:
    """A value SQLite can compare: a 64-bit integer, a key's bytes, or text with no
    lone surrogate."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2 ** 63) <= value < 2 ** 63
    if isinstance(value, bytes):
        return len(value) <= 4096
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    return False


@dataclass(frozen=True)
class _Order:
    """The key a list is ordered by: an optional rank (always ascending), then the sort."""

    rank: str
    rank_params: list[Any]
    keys: list[str]
    descending: bool

    @property
    def width(self) -> int:
        return len(self.keys) + (1 if self.rank else 0)

    def select(self) -> tuple[str, list[Any]]:
        columns = ([self.rank] if self.rank else []) + self.keys
        return ", ".join(columns), list(self.rank_params)

    def order_by(self) -> tuple[str, list[Any]]:
        direction = " DESC" if self.descending else ""
        keys = ", ".join(k + direction for k in self.keys)
        if self.rank:
            return f"{self.rank}, {keys}", list(self.rank_params)
        return keys, []

    def after(self, values: list[Any], inclusive: bool) -> tuple[str, list[Any]]:
        """Rows after the row whose key is ``values`` (or at it, ``inclusive``)."""
        op = ("<" if self.descending else ">") + ("=" if inclusive else "")
        rest = values[1:] if self.rank else values
        marks = ", ".join("?" * len(self.keys))
        sql = f"({', '.join(self.keys)}) {op} ({marks})"
        if not self.rank:
            return sql, list(rest)
        return (f"({self.rank} > ? OR ({self.rank} = ? AND {sql}))",
                [*self.rank_params, values[0], *self.rank_params, values[0], *rest])


class ContactQueries:
    """The contacts queries of ``CardIndex`` (a mixin: ``_db`` is the index's connection)."""

    def _db(self) -> sqlite3.Connection:
        raise NotImplementedError

    @staticmethod
    def _order(sort: str, descending: bool, q: str) -> _Order:
        rank, rank_params = exact_rank(q)
        return _Order(rank, rank_params, [*SORTS[sort], "i.href"], descending)

    def page(self, coll: int, max_size: int, *, sort: str, descending: bool, limit: int,
             cursor: str | None, q: str = "", category: str | None = None,
             offset: int | None = None) -> Page:
        """One page of contacts in a stable order, the total, and the next cursor.

        ``offset``: the page starts at that position of the whole list (a
        scrollbar dragged, a letter of the A-Z index); the key of the row there
        is looked up in index order, then the page is read as from a cursor.
        """
        db = self._db()
        where, params = _filters(coll, max_size, search_terms(q), category)
        order = self._order(sort, descending, q)
        sort_name = ("-" if descending else "") + sort
        select_keys, select_params = order.select()
        order_sql, order_params = order.order_by()
        seek, seek_params = "", list[Any]()
        if cursor:
            values = decode_cursor(cursor, sort_name, order.width)
            sql, seek_params = order.after(values, inclusive=False)
            seek = f" AND {sql}"
        elif offset:
            start = db.execute(
                f"SELECT {select_keys} FROM items i WHERE {where} ORDER BY {order_sql} "
                "LIMIT 1 OFFSET ?", [*select_params, *params, *order_params, offset]).fetchone()
            if start is None:
                total = int(db.execute(f"SELECT COUNT(*) FROM items i WHERE {where}",
                                       params).fetchone()[0])
                return Page([], total, None, offset)
            sql, seek_params = order.after(list(start), inclusive=True)
            seek = f" AND {sql}"
        # The first page of a search counts its matches in the same pass (a window
        # count), so the matching values are read once, not twice. Unfiltered, a
        # plain COUNT is cheaper: the page itself then reads 51 rows in index order.
        counted = not cursor and not offset and (bool(q.strip()) or category is not None)
        sql = (f"SELECT {_ROW}, {select_keys}{', COUNT(*) OVER ()' if counted else ''} "
               f"FROM items i WHERE {where}{seek} ORDER BY {order_sql} LIMIT ?")
        result = db.execute(sql, [*select_params, *params, *seek_params, *order_params,
                                  limit + 1]).fetchall()
        if counted:
            total = int(result[0][-1]) if result else 0
            result = [r[:-1] for r in result]
        else:
            total = int(db.execute(f"SELECT COUNT(*) FROM items i WHERE {where}",
                                   params).fetchone()[0])
        rows = [ItemRow(*r[:8]) for r in result[:limit]]
        next_cursor = None
        if len(result) > limit:
            last = result[limit - 1]
            next_cursor = encode_cursor(sort_name, list(last[8:]))
        return Page(rows, total, next_cursor, offset)

    def letters(self, coll: int, max_size: int, *, sort: str, q: str = "",
                category: str | None = None) -> list[Letter]:
        """The A-Z index of a list by name: each letter's first position and count.

        A letter's contacts are those whose key lies between the letter's first
        primary weight and the next letter's: Émile under E, Łukasz under L.
        Names before A (digits, signs, none) are "#", other scripts after Z "…".
        Each range is counted over index entries, so the whole costs one pass.
        """
        if sort not in ("name", "family"):
            raise Refused(400, "the A-Z index is for the orders by name: sort=name or family")
        db = self._db()
        where, params = _filters(coll, max_size, search_terms(q), category)
        column = SORTS[sort][0]
        bounds = [b""] + [collation.primary_key(c) for c in LETTERS] + [None]
        labels = ["#", *LETTERS, "…"]
        out: list[Letter] = []
        position = 0
        for label, low, high in zip(labels, bounds, bounds[1:], strict=False):
            condition = f"{column} >= ?" + (f" AND {column} < ?" if high is not None else "")
            extra = [low] + ([high] if high is not None else [])
            count = int(db.execute(f"SELECT COUNT(*) FROM items i WHERE {where} AND {condition}",
                                   [*params, *extra]).fetchone()[0])
            out.append(Letter(label, position, count))
            position += count
        return out

    def search(self, coll: int, max_size: int, terms: list[str]) -> list[ItemRow]:
        """Every contact matching all ``terms`` (the API's ``q`` language), in the API's
        order for it: exact email or phone matches first, then by name (UCA)."""
        terms = [t for t in terms if t.strip()]
        where, params = _filters(coll, max_size, terms, None)
        order = self._order("name", False, " ".join(terms))
        order_sql, order_params = order.order_by()
        sql = f"SELECT {_ROW} FROM items i WHERE {where} ORDER BY {order_sql}"
        return [ItemRow(*r) for r in self._db().execute(sql, [*params, *order_params])]

    def members(self, coll: int, max_size: int, category: str) -> list[ItemRow]:
        """Every contact in ``category``, by name."""
        where, params = _filters(coll, max_size, [], category)
        sql = f"SELECT {_ROW} FROM items i WHERE {where} ORDER BY i.sk_name, i.href"
        return [ItemRow(*r) for r in self._db().execute(sql, params)]

    def all_rows(self, coll: int, max_size: int, category: str | None) -> list[ItemRow]:
        """Every contact (of ``category``), in file-name order, for an export."""
        where, params = _filters(coll, max_size, [], category)
        return [ItemRow(*r) for r in self._db().execute(
            f"SELECT {_ROW} FROM items i WHERE {where} ORDER BY i.href", params)]

    def contact_count(self, coll: int, at_most: int | None = None) -> int:
        """Contacts in a book (group cards are not contacts), counted up to ``at_most``.

        Counting reads an index entry per card (7 ms at 100,000): a caller that
        only needs to know whether there are at least so many says so.
        """
        row = self._db().execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE coll=? AND kind != 'group' "
            "LIMIT ?)", (coll, -1 if at_most is None else max(at_most, 0))).fetchone()
        return int(row[0])

    def people(self, coll: int, alias_prop: str) -> tuple[
            list[tuple[int, str, str, str, str]], list[tuple[int, str, str]]]:
        """What duplicate matching compares: (id, href, uid, fn, kind) of every card,
        and (id, name, value) of their EMAIL, TEL, N and ``alias_prop`` values."""
        db = self._db()
        cards = db.execute("SELECT id, href, uid, fn, kind FROM items WHERE coll=?",
                           (coll,)).fetchall()
        values = db.execute(
            "SELECT p.item, p.name, p.value FROM props p JOIN items i ON p.item = i.id "
            "WHERE i.coll=? AND p.name IN ('EMAIL', 'TEL', 'N', ?)",
            (coll, alias_prop)).fetchall()
        return cards, values
