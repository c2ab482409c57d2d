"""Duplicates and merges: what ``cardfile dedupe`` does, for the web page and scripts.

The candidates are ``dedupe.clusters`` over the book's index (the same
matching as the CLI and every import): sure clusters (a shared email or phone
and compatible names) and pairs to review (names only partly alike). A merge
is ``merge_cluster`` (lossless; the originals are kept in the data folder's
``merges/`` store) and undoing it is ``undo_merge``, which puts the original
cards back byte for byte. Both write under the storage lock like every other
change, so CardDAV clients see them in their next sync.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from cardfile.plugin.api import ids
from cardfile.plugin.api import representation as rep
from cardfile.plugin.api.contact_views import meta
from cardfile.plugin.api.context import Context, decode_id
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.schema_check import SchemaCheck
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts import dedupe
from cardfile.plugin.contacts.importers import book as import_book
from cardfile.plugin.contacts.model import AddressBook

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_MERGE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,80}")
#: The body of POST .../merges (published in the OpenAPI document as it is).
MERGE_IDS: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["ids"],
    "properties": {"ids": {"type": "array", "minItems": 2, "maxItems": 50, "uniqueItems": True,
                           "items": {"type": "string", "minLength": 1, "maxLength": 300},
                           "description": "ids of the contacts to merge into one"}},
}
_MERGE_IDS = SchemaCheck(MERGE_IDS)


def _region(ctx: Context) -> str:
    return ctx.region


def _store(ctx: Context, book: str) -> dedupe.MergeStore:
    return ctx.merge_store(book)


def merges_url(ctx: Context, book: str) -> str:
    return ctx.book_url(book) + "/merges"


def _contact(ctx: Context, book: str, address_book: AddressBook, uid: str
             ) -> dict[str, Any] | None:
    row = address_book.find(uid)
    if row is None:
        return None
    try:
        text = address_book.read(row).text
    except RuntimeError:  # vanished since the index saw it
        return None
    return rep.to_json(text, meta(ctx, book, row))


def _limit(ctx: Context) -> int:
    raw = ctx.request.arg("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,7}", raw.strip()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    return int(raw)


def list_duplicates(ctx: Context, book: str) -> Response:
    """Sure clusters first, then pairs to review; each with its contacts in full."""
    limit = _limit(ctx)
    region = _region(ctx)
    items: list[dict[str, Any]] = []
    with ctx.open(book) as address_book:
        found = import_book.people_of(address_book)
    # Matching normalises every email and phone: seconds at 100,000 cards, no lock held.
    sure, ambiguous = dedupe.clusters(import_book.matcher_of(found, region))
    del found
    candidates: list[tuple[list[str], list[str], bool]] = [
        *((uids, reasons, True) for uids, reasons in sure),
        *(([a, b], [reason], False) for a, b, reason in ambiguous)]
    with ctx.open(book) as address_book:  # (a contact gone meanwhile is left out)
        for uids, reasons, is_sure in candidates[:limit]:
            contacts = [c for c in (_contact(ctx, book, address_book, u) for u in uids) if c]
            if len(contacts) < 2:
                continue
            items.append({"ids": [c["id"] for c in contacts], "sure": is_sure,
                          "reasons": reasons, "contacts": contacts})
    return Response.json({"total": len(candidates), "items": items,
                          "merges": merges_url(ctx, book)})


def _merge_json(ctx: Context, book: str, entry: dict[str, Any]) -> dict[str, Any]:
    moment = datetime.datetime.fromtimestamp(float(entry.get("time", 0)), tz=datetime.UTC)
    return {"id": entry["id"], "url": f"{merges_url(ctx, book)}/{entry['id']}",
            "survivor": ids.encode(entry["survivor"]), "reason": entry.get("reason", ""),
            "time": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "originals": [ids.encode(o["uid"]) for o in entry.get("originals", [])]}


def list_merges(ctx: Context, book: str) -> Response:
    """Merges that can still be undone, newest first."""
    with ctx.open(book):
        entries = _store(ctx, book).entries()
    items = [_merge_json(ctx, book, e) for e in reversed(entries)]
    return Response.json({"total": len(items), "items": items})


def create_merge(ctx: Context, book: str) -> Response:
    """Merge the contacts named in ``ids`` into the most complete one."""
    ctx.request.body_kind(("json",))
    data = ctx.request.json()
    error = _MERGE_IDS.first_error(data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        raise Problem(422, f"{where}: {error.message[:200]}")
    uids = list(dict.fromkeys(decode_id(ident) for ident in data["ids"]))
    store = _store(ctx, book)
    with ctx.open(book, "w") as address_book:
        rows = [address_book.find(uid) for uid in uids]
        missing = [ident for ident, row in zip(uids, rows, strict=True) if row is None]
        if missing:
            raise Problem(404, f"there is no contact {missing[0]!r} in this address book")
        keys = list(dict.fromkeys(row.uid or row.href for row in rows if row is not None))
        if len(keys) < 2:
            raise Problem(409, "these ids name the same contact; name at least two "
                               "different contacts to merge")
        names = ", ".join(row.fn or row.uid for row in rows if row is not None)
        merge_id = import_book.merge_cluster(address_book, store, keys, _region(ctx),
                                             f"merged on the web: {names}"[:300])
        entry, _ = store.load(merge_id)
        survivor = _contact(ctx, book, address_book, entry["survivor"])
    body = {**_merge_json(ctx, book, entry), "contact": survivor}
    return Response.json(body, 201, headers=[("Location", body["url"])])


def _load(store: dedupe.MergeStore, merge_id: str) -> dict[str, Any]:
    if not _MERGE_ID.fullmatch(merge_id) or (store.root / merge_id / "undone").exists():
        raise Problem(404, f"there is no merge {merge_id!r} to undo")
    try:
        return store.load(merge_id)[0]
    except (KeyError, OSError, ValueError):
        raise Problem(404, f"there is no merge {merge_id!r} to undo") from None


def get_merge(ctx: Context, book: str, id: str) -> Response:
    with ctx.open(book):
        entry = _load(_store(ctx, book), id)
    return Response.json(_merge_json(ctx, book, entry))


def undo_merge(ctx: Context, book: str, id: str) -> Response:
    """Undo: the merged contact goes and the originals come back as they were."""
    force = (ctx.request.arg("force", "false") or "false").lower()
    if force not in ("true", "false"):
        raise Problem(400, f"force must be true or false, not {force!r}")
    store = _store(ctx, book)
    with ctx.open(book, "w") as address_book:
        entry = _load(store, id)
        restored = import_book.undo_merge(address_book, store, id, force == "true")
    return Response.json({"id": entry["id"], "restored": [ids.encode(u) for u in restored]})
