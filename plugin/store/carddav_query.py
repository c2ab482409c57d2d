"""Translate CardDAV ``addressbook-query`` filters (RFC 6352 10.5) into SQL.

Radicale answers a query by parsing every card in the book with vobject and
testing it; at 10,000 cards that takes seconds. The index holds every
property value (``props``), so the same test becomes one SQL condition and
only the matching cards are read. The semantics copy Radicale's
``radicale.item.filter`` so answers do not change, only their cost:
``anyof``/``allof`` at filter and prop-filter level, ``is-not-defined``,
``text-match`` with ``equals``/``contains``/``starts-with``/``ends-with``,
``negate-condition`` and the ``i;octet`` (case-sensitive) collation; other
collations compare lower-cased text.

A filter this module cannot express (``param-filter``) raises
``Unsupported``; the storage then falls back to Radicale's own evaluation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"


class Unsupported(Exception):
    """The filter needs Radicale's per-card evaluation."""


#: Properties every card carries for its own bookkeeping, never what a person or a
#: client looks a contact up by: the index keeps no value of theirs (a quarter of
#: a typical card's rows, and of a rebuild's index entries), so a filter naming
#: one is answered by Radicale's own evaluation, as every other filter once was.
UNINDEXED_PROPERTIES = frozenset({"VERSION", "PRODID", "REV"})


def _tag(name: str) -> str:
    return f"{{{CARDDAV_NS}}}{name}"


def translate(filters: Iterable[ET.Element]) -> tuple[str, list[object]]:
    """SQL condition over ``items i`` (and its params) for all ``filters``."""
    parts: list[str] = []
    params: list[object] = []
    for filter_ in filters:
        if filter_.tag != _tag("filter"):
            raise Unsupported(filter_.tag)
        sql, p = _filter(filter_)
        parts.append(sql)
        params.extend(p)
    if not parts:
        return "1", []
    return " AND ".join(f"({p})" for p in parts), params


def _combine(test: str, parts: list[str]) -> str:
    if test not in ("anyof", "allof"):
        raise Unsupported(f"test={test}")
    if not parts:
        # Radicale: any([]) is False, all([]) is True.
        return "1" if test == "allof" else "0"
    joiner = " OR " if test == "anyof" else " AND "
    return "(" + joiner.join(parts) + ")"


def _filter(filter_: ET.Element) -> tuple[str, list[object]]:
    parts: list[str] = []
    params: list[object] = []
    for child in filter_:
        if child.tag != _tag("prop-filter"):
            raise Unsupported(child.tag)
        sql, p = _prop_filter(child)
        parts.append(sql)
        params.extend(p)
    return _combine(filter_.get("test", "anyof"), parts), params


# "i.id IN (subquery)" lets SQLite walk the (name, lvalue) index once; an
# EXISTS per card made it rescan every matching value for each card.
_EXISTS = "i.id IN (SELECT p.item FROM props p WHERE p.name = ?"


def _prop_filter(prop_filter: ET.Element) -> tuple[str, list[object]]:
    name = prop_filter.get("name", "").upper()
    if name in UNINDEXED_PROPERTIES:
        raise Unsupported(f"prop-filter {name}")
    children = list(prop_filter)
    if not children:
        return _EXISTS + ")", [name]
    if len(children) == 1 and children[0].tag == _tag("is-not-defined"):
        return "NOT " + _EXISTS + ")", [name]
    parts: list[str] = []
    params: list[object] = []
    negated: list[bool] = []
    for child in children:
        if child.tag != _tag("text-match"):
            raise Unsupported(child.tag)
        sql, p = _text_match(name, child)
        parts.append(sql)
        params.extend(p)
        negated.append(child.get("negate-condition") == "yes")
    test = prop_filter.get("test", "anyof")
    combined = _combine(test, parts)
    # A text-match that is not negated already requires the property; the
    # extra existence test then only costs a second pass over its values.
    implied = not any(negated) if test == "anyof" else not all(negated)
    if implied:
        return combined, params
    return f"({_EXISTS}) AND {combined})", [name, *params]


def _text_match(name: str, text_match: ET.Element) -> tuple[str, list[object]]:
    params: list[object]
    case_sensitive = text_match.get("collation") == "i;octet"
    text = "".join(text_match.itertext())
    column = "p.value" if case_sensitive else "p.lvalue"
    if not case_sensitive:
        text = text.lower()
    match_type = text_match.get("match-type", "contains")
    if match_type == "equals":
        condition, params = f"{column} = ?", [text]
    elif not text:
        condition, params = "1", []
    elif match_type == "contains":
        condition, params = f"instr({column}, ?) > 0", [text]
    elif match_type == "starts-with":
        condition, params = f"substr({column}, 1, ?) = ?", [len(text), text]
    elif match_type == "ends-with":
        condition, params = f"substr({column}, ?) = ?", [-len(text), text]
    else:
        raise Unsupported(f"match-type={match_type}")
    sql = f"{_EXISTS} AND {condition})"
    if text_match.get("negate-condition") == "yes":
        sql = "NOT " + sql
    return sql, [name, *params]
