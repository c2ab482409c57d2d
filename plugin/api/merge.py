"""Three-way merge of a PATCH made against an older version of a contact.

Two people edit one contact: tab A changes the job title, tab B the
organisation. B's PATCH names the ETag B read (``If-Match``) and, in
``base``, the value each field it changes had then. When the contact changed
meanwhile, each field of the patch is compared with that base and with the
contact now:

- now == base: nobody else touched the field, B's value is applied;
- now == B's value: both made the same change, nothing to do;
- else: a real clash, reported (409) with all three values for B to choose.

Categories merge as sets (additions and removals on both sides are kept), so
two people filing a contact under different categories never clash. A PATCH
without ``base`` keeps the strict behaviour: a stale ETag is 412.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api import representation as rep
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.vcard.card_fields import category_key


def comparable(field: str, value: Any) -> Any:
    """A field's value in the form two versions compare in (absent == empty)."""
    if field in rep.LIST_FIELDS:
        out = []
        for entry in value or []:
            normal = rep.normalise_entry(field, entry)
            if field != "addresses" and not normal["value"]:
                continue
            out.append(normal)
        return out
    if field == "categories":
        return sorted({category_key(c) for c in value or []})
    if field == "photo":
        return bool(value)
    text = "" if value is None else str(value)
    return text if field == "notes" else text.strip()


def _same(field: str, a: Any, b: Any) -> bool:
    ca, cb = comparable(field, a), comparable(field, b)
    if field in rep.LIST_FIELDS:
        # A side that sent no labels (label None) matches any label.
        return len(ca) == len(cb) and all(
            rep.same_entry(x, y) if y["label"] is None else rep.same_entry(y, x)
            for x, y in zip(ca, cb, strict=True))
    return bool(ca == cb)


def three_way(current: dict[str, Any], base: dict[str, Any], patch: dict[str, Any]
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the patch to apply to ``current``, the clashes) of a PATCH made on ``base``."""
    merged: dict[str, Any] = {}
    clashes: list[dict[str, Any]] = []
    for field, mine in patch.items():
        if field in ("id", "uid", "etag", "url", "updated"):
            continue
        if field not in base:
            raise Problem(422, f"base has no {field!r}: a PATCH against an older version "
                               "must give, in base, the value each field it changes had then")
        theirs, before = current.get(field), base[field]
        if field == "categories":
            merged[field] = _merge_sets(theirs or [], before or [], mine or [])
        elif _same(field, theirs, before):
            merged[field] = mine
        elif not _same(field, theirs, mine):
            clashes.append({"field": field, "base": before, "yours": mine, "theirs": theirs})
    return merged, clashes


def _merge_sets(theirs: list[str], base: list[str], mine: list[str]) -> list[str]:
    """Categories now, with what this side added and without what it took away."""
    added = [c for c in mine if category_key(c) not in {category_key(b) for b in base}]
    removed = {category_key(b) for b in base} - {category_key(c) for c in mine}
    out = [c for c in theirs if category_key(c) not in removed]
    for name in added:
        if category_key(name) not in {category_key(c) for c in out}:
            out.append(name)
    return out
