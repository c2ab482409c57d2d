"""The trash, a contact's history, restoring to a time and mass-change alerts.

What ``cardfile trash``, ``history`` and ``restore-to`` do, for the web page
and scripts; the work is ``contacts/undo.py``. They belong to the book's
owner with the right to change it: a login that may only read the book gets
403, a published category (a view of another book) 404, and another user
never reaches them (the API names only the caller's own books).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cardfile.plugin.api import ids
from cardfile.plugin.api import representation as rep
from cardfile.plugin.api.contact_views import represent
from cardfile.plugin.api.context import Context, decode_id
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.schema_check import SchemaCheck
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts import undo, when
from cardfile.plugin.contacts.history import describe_time, event_summary, fn_of, iso_utc
from cardfile.plugin.contacts.model import AddressBook
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.history import Alert

#: The body of POST .../restore-to (published in the OpenAPI document as it is).
RESTORE_TO: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["time"],
    "properties": {
        "time": {"type": "string", "minLength": 1, "maxLength": 60,
                 "description": "ISO 8601 (2024-05-14T14:00:00Z), or as people say it: "
                                "'Tuesday 14:00', '2 hours ago' (server's local time)"},
        "category": {"type": ["string", "null"], "maxLength": 200,
                     "description": "restore only the contacts in this category (then "
                                    "or now)"},
        "dry_run": {"type": "boolean", "default": False,
                    "description": "only say what would change"}},
}
_RESTORE_TO = SchemaCheck(RESTORE_TO)


@contextlib.contextmanager
def owned(ctx: Context, book: str, mode: str = "r") -> Iterator[AddressBook]:
    """The caller's own book, if the caller may change it (history is the owner's)."""
    permissions = ctx.rights.authorization(ctx.user, set(), f"/{ctx.user}/{book}/").lower()
    if "r" in permissions and "w" not in permissions:
        raise Problem(403, f"the trash and history of {book!r} are shown only to logins "
                           "that may change it; this one may only read it")
    with ctx.open(book, mode) as address_book:
        try:
            undo.book_history(address_book)
        except Refused as e:
            raise Problem(404, e.reason) from None
        yield address_book


def _who(event: Any) -> dict[str, Any]:
    return event_summary(event) if event is not None else {}


def trash_url(ctx: Context, book: str) -> str:
    return ctx.book_url(book) + "/trash"


def _trash_json(ctx: Context, book: str, item: undo.TrashItem) -> dict[str, Any]:
    ident = ids.encode(item.uid)
    out = {"id": ident, "uid": item.uid, "name": item.fn, "href": item.href,
           "url": f"{trash_url(ctx, book)}/{ident}",
           "restore": f"{trash_url(ctx, book)}/{ident}/restore",
           "deleted": _who(item.deleted)}
    return out


def _preview(ctx: Context, book: str, uid: str, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    meta = rep.Meta(ids.encode(uid), uid, "", ctx.contact_url(book, uid), 0)
    data = rep.to_json(text, meta)
    data.pop("etag", None)
    data.pop("updated", None)
    data["photo"] = None  # the photo's address would be the live contact's, which is gone
    return data


def list_trash(ctx: Context, book: str) -> Response:
    with owned(ctx, book) as address_book:
        items = undo.trash(address_book)
        days = undo.book_history(address_book).settings.days
    return Response.json({"total": len(items), "kept_days": days,
                          "items": [_trash_json(ctx, book, i) for i in items]})


def get_trash_item(ctx: Context, book: str, id: str) -> Response:
    uid = decode_id(id)
    with owned(ctx, book) as address_book:
        item = undo.trash_item(address_book, uid)
    wanted = ctx.request.wants()
    if wanted == "vcard" and item.text is not None:
        return Response(200, item.text.encode(), "text/vcard")
    return Response.json({**_trash_json(ctx, book, item),
                          "contact": _preview(ctx, book, uid, item.text),
                          "vcard": item.text})


def restore_trash_item(ctx: Context, book: str, id: str) -> Response:
    uid = decode_id(id)
    with owned(ctx, book, "w") as address_book:
        undo.restore_from_trash(address_book, uid)
        row = address_book.find(uid)
        assert row is not None
        text = address_book.read(row).text
    return represent(ctx, book, row, text, 201,
                     [("Location", ctx.contact_url(book, row.uid or row.href))])


def purge_trash_item(ctx: Context, book: str, id: str) -> Response:
    uid = decode_id(id)
    with owned(ctx, book, "w") as address_book:
        undo.purge(address_book, uid)
    return Response.empty(204)


def empty_trash(ctx: Context, book: str) -> Response:
    with owned(ctx, book, "w") as address_book:
        count = undo.purge_all(address_book)
    return Response.json({"purged": count})


# -- history of one contact -------------------------------------------------------
def _version_json(ctx: Context, book: str, uid: str, version: undo.Version
                  ) -> dict[str, Any]:
    base = f"{ctx.contact_url(book, uid)}/history"
    return {"version": version.id, "current": version.id == 0,
            "name": fn_of(version.text),
            "made": _who(version.made_by) or None,
            "replaced": _who(version.replaced_by) or None,
            "changes": version.changes,
            "restore": None if version.id == 0 else f"{base}/{version.id}/restore"}


def contact_history(ctx: Context, book: str, id: str) -> Response:
    uid = decode_id(id)
    with owned(ctx, book) as address_book:
        found = undo.versions(address_book, uid)
        exists = address_book.find(uid) is not None
        since = undo.book_history(address_book).since_ns()
    return Response.json({"id": ids.encode(uid), "uid": uid, "exists": exists,
                          "since": iso_utc(since), "total": len(found),
                          "items": [_version_json(ctx, book, uid, v) for v in found]})


def restore_version(ctx: Context, book: str, id: str, version: str) -> Response:
    uid = decode_id(id)
    if not version.isdigit() or len(version) > 18:
        raise Problem(404, f"{version!r} is not a version number (see the contact's history)")
    with owned(ctx, book, "w") as address_book:
        existed = address_book.find(uid) is not None
        undo.restore_version(address_book, uid, int(version))
        row = address_book.find(uid)
        assert row is not None
        text = address_book.read(row).text
    return represent(ctx, book, row, text, 200 if existed else 201)


# -- restore the book to a time ---------------------------------------------------------
def _steps(steps: list[undo.Step]) -> list[dict[str, str]]:
    return [{"id": ids.encode(s.uid), "name": s.fn} for s in steps[:1000]]


def restore_to(ctx: Context, book: str) -> Response:
    ctx.request.body_kind(("json",))
    data = ctx.request.json()
    error = _RESTORE_TO.first_error(data)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the body"
        raise Problem(422, f"{where}: {error.message[:200]}")
    moment = when.parse(data["time"])  # a BadTime is a Refused: 422 at the API's edge
    dry_run = bool(data.get("dry_run", False))
    category = data.get("category") or None
    with owned(ctx, book, "r" if dry_run else "w") as address_book:
        plan = undo.plan_restore_to(address_book, when.to_ns(moment), category)
        if not dry_run:
            undo.apply(address_book, plan)
    return Response.json({
        "time": iso_utc(plan.time_ns), "local_time": describe_time(plan.time_ns),
        "category": category, "dry_run": dry_run,
        "added": len(plan.add), "changed": len(plan.change), "deleted": len(plan.delete),
        "to_add": _steps(plan.add), "to_change": _steps(plan.change),
        "to_delete": _steps(plan.delete), "failed": plan.failed[:100]})


# -- mass-change alerts -------------------------------------------------------------------
def _alert_json(ctx: Context, book: str, alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "url": f"{ctx.book_url(book)}/alerts/{alert.id}",
            "time": iso_utc(alert.time_ns), "until": iso_utc(alert.until_ns),
            "restore_to": iso_utc(alert.since_ns),
            "restore_to_local": describe_time(alert.since_ns, precise=True),
            "user": alert.user, "client": alert.client, "deleted": alert.deleted,
            "emptied": alert.emptied, "book_size": alert.book_size}


def list_alerts(ctx: Context, book: str) -> Response:
    with owned(ctx, book) as address_book:
        alerts = undo.book_history(address_book).store.alerts()
    return Response.json({"total": len(alerts),
                          "items": [_alert_json(ctx, book, a) for a in alerts]})


def dismiss_alert(ctx: Context, book: str, id: str) -> Response:
    if not id.isdigit() or len(id) > 18:
        raise Problem(404, f"there is no alert {id!r}")
    with owned(ctx, book, "w") as address_book:
        if not undo.book_history(address_book).store.dismiss_alert(int(id)):
            raise Problem(404, f"there is no alert {id!r} (dismissed already?)")
    return Response.empty(204)
