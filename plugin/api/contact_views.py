"""AllContacts and contact entries: list, create, read, replace, patch, delete.

Reads and writes go through ``model.AddressBook`` under the storage lock;
precondition checks (If-Match, If-None-Match) happen under the same write
lock as the write, so a stale ETag can never overwrite a newer card.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

from cardfile.plugin.api import edit, ids, jcard, merge, schemas
from cardfile.plugin.api import representation as rep
from cardfile.plugin.api.context import Context, decode_id
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import JCARD, VCARD, Request, Response, etag_matches
from cardfile.plugin.contacts import categories, export, model
from cardfile.plugin.refused import Refused
from cardfile.plugin.store import contact_queries
from cardfile.plugin.store.index import ItemRow
from cardfile.plugin.vcard import card_fields, image_check

DEFAULT_LIMIT, MAX_LIMIT = 50, 1000


# -- representations -------------------------------------------------------------
def meta(ctx: Context, book: str, row: ItemRow) -> rep.Meta:
    key = row.uid or row.href
    return rep.Meta(ids.encode(key), row.uid, row.etag, ctx.contact_url(book, key),
                    row.mtime_ns)


def represent(ctx: Context, book: str, row: ItemRow, text: str, status: int = 200,
              extra: list[tuple[str, str]] | None = None) -> Response:
    headers = [("ETag", row.etag), *(extra or [])]
    wanted = ctx.request.wants()
    if wanted == "vcard":
        return Response(status, text.encode(), VCARD, headers)
    if wanted == "jcard":
        return Response.json(jcard.to_jcard(text), status, JCARD, headers)
    data = rep.to_json(text, meta(ctx, book, row), parse_fields(ctx.request))
    return Response.json(data, status, headers=headers)


def parse_fields(request: Request) -> frozenset[str] | None:
    raw = request.arg("fields")
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",")]
    unknown = [n for n in names if n not in rep.FIELDS]
    if unknown or not names:
        raise Problem(400, f"fields may name only {', '.join(rep.FIELDS)}; "
                           f"{', '.join(map(repr, unknown)) or 'none given'} is not one")
    return frozenset(names)


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", raw.strip()) or not low <= int(raw) <= high:
        raise Problem(400, f"{name} must be a whole number from {low} to {high}, not {raw!r}")
    return int(raw)


# -- the collection --------------------------------------------------------------
def list_contacts(ctx: Context, book: str) -> Response:
    request = ctx.request
    limit = _int_arg(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort, descending = contact_queries.parse_sort(request.arg("sort", "name") or "")
    cursor = request.arg("cursor") or None
    offset = _int_arg(request, "offset", 0, 0, 9_999_999) if request.arg("offset") else None
    if cursor and offset is not None:
        raise Problem(400, "give either cursor (the next page) or offset (a position), "
                           "not both")
    q = _q(request)
    category = request.arg("category")
    fields = parse_fields(request)
    items = []
    with ctx.open(book) as address_book:
        collection = address_book.collection
        coll, category = scope(collection, category)
        found = collection._index.page(
            coll, ctx.max_resource_size, sort=sort, descending=descending,
            limit=limit, cursor=cursor, q=q, category=category, offset=offset)
        for row in found.rows:
            if fields is not None and fields <= rep.INDEX_FIELDS:
                items.append(rep.index_json(meta(ctx, book, row), row.fn, fields))
                continue
            try:
                text = address_book.read(row).text
            except RuntimeError:  # the file vanished since the index saw it
                continue
            items.append(rep.to_json(text, meta(ctx, book, row), fields))
    next_url = None
    if found.next_cursor:
        keep = [(k, v) for k, vs in request.query.items() if k != "cursor" for v in vs]
        keep.append(("cursor", found.next_cursor))
        next_url = f"{ctx.book_url(book)}/contacts?{urlencode(keep)}"
    body = {"total": found.total, "count": len(items), "items": items,
            "next_cursor": found.next_cursor, "next": next_url}
    if offset is not None:
        body["offset"] = offset
    return Response.json(body)


def scope(collection: model.Collection, category: str | None) -> tuple[int, str | None]:
    """The index collection and category a listing runs on (a shared book: its owner's)."""
    try:
        return collection.index_scope(category)
    except Refused as e:
        raise Problem(e.status, e.reason, headers=e.headers) from None


def _q(request: Request) -> str:
    q = request.arg("q", "") or ""
    if len(q) > 200:
        raise Problem(400, "q may be at most 200 characters")
    return q


def list_letters(ctx: Context, book: str) -> Response:
    """The A-Z index of the list by name: where each letter starts, and how many it has."""
    request = ctx.request
    sort, descending = contact_queries.parse_sort(request.arg("sort", "name") or "")
    if descending or sort == "modified":
        raise Problem(400, "the A-Z index is for the orders by name: sort=name or family")
    with ctx.open(book) as address_book:
        collection = address_book.collection
        coll, category = scope(collection, request.arg("category"))
        letters = collection._index.letters(
            coll, ctx.max_resource_size, sort=sort, q=_q(request), category=category)
    return Response.json({"sort": sort, "total": sum(x.count for x in letters), "items": [
        {"letter": x.letter, "offset": x.offset, "count": x.count} for x in letters]})


def create_contact(ctx: Context, book: str) -> Response:
    request = ctx.request
    parse_fields(request)
    kind = request.body_kind(("json", "jcard", "vcard"))
    if kind == "json":
        data = schemas.validate(request.json(), "ContactInput")
        uid = data.get("uid") or str(uuid.uuid4())
        text = edit.apply(edit.new_card(uid), data, replace=True)
    else:
        text = with_uid(body_card(request, kind), None)
        uid = uid_of(text)
    with ctx.open(book, "w") as address_book:
        if address_book.find_uid(uid) is not None:
            raise Problem(409, f"a contact with UID {uid!r} exists already; PUT to "
                               f"{ctx.contact_url(book, uid)} to change it")
        row = store(ctx, address_book, text, None, from_json=kind == "json")
        location = ctx.contact_url(book, row.uid or row.href)
        return represent(ctx, book, row, address_book.read(row).text, 201,
                         [("Location", location)])


# -- one contact -------------------------------------------------------------------
def _find(address_book: model.AddressBook, uid: str) -> ItemRow:
    row = address_book.find(uid)
    if row is None:
        raise Problem(404, f"there is no contact {uid!r} in this address book")
    return row


def get_contact(ctx: Context, book: str, id: str) -> Response:
    parse_fields(ctx.request)
    uid = decode_id(id)
    with ctx.open(book) as address_book:
        row = _find(address_book, uid)
        text = address_book.read(row).text
    if etag_matches(ctx.request.headers.get("if-none-match", "-"), row.etag):
        return Response.empty(304, [("ETag", row.etag)])
    return represent(ctx, book, row, text)


def put_contact(ctx: Context, book: str, id: str) -> Response:
    request = ctx.request
    parse_fields(request)
    uid = decode_id(id)
    kind = request.body_kind(("json", "jcard", "vcard"))
    data = schemas.validate(request.json(), "ContactInput") if kind == "json" else None
    body_text = body_card(request, kind) if data is None else ""
    with ctx.open(book, "w") as address_book:
        row = address_book.find(uid)
        check_preconditions(request, row)
        current = address_book.read(row).text if row is not None else None
        if data is not None:
            if data.get("uid") not in (None, row.uid if row else uid):
                raise Problem(409, f"uid {data['uid']!r} differs from this contact's UID; "
                                   "a contact's UID cannot change")
            text = edit.apply(current or edit.new_card(uid), data, replace=True)
        else:
            text = with_uid(body_text, row.uid if row else uid)
        if row is not None and text == current:
            return represent(ctx, book, row, text)
        stored = store(ctx, address_book, text, row, from_json=data is not None)
        status = 200 if row is not None else 201
        extra = [] if row is not None else [("Location", ctx.contact_url(book, uid))]
        return represent(ctx, book, stored, address_book.read(stored).text, status, extra)


def patch_contact(ctx: Context, book: str, id: str) -> Response:
    """A merge patch; with ``base`` (the values the client started from) a stale
    If-Match is merged three ways instead of refused (``merge.py``)."""
    request = ctx.request
    parse_fields(request)
    uid = decode_id(id)
    request.body_kind(("json",))
    data = schemas.validate(request.json(), "ContactPatch")
    base = data.pop("base", None)
    with ctx.open(book, "w") as address_book:
        row = _find(address_book, uid)
        current = address_book.read(row).text
        if_match = request.headers.get("if-match")
        stale = if_match is not None and not etag_matches(if_match, row.etag)
        if stale and base is not None:
            now = rep.to_json(current, meta(ctx, book, row))
            data, clashes = merge.three_way(now, base, data)
            if clashes:
                raise Problem(409, f"this contact was changed elsewhere since you read it, "
                                   f"and {', '.join(c['field'] for c in clashes)} changed on "
                                   "both sides; choose the values to keep and send them with "
                                   "this ETag", [("ETag", row.etag)], conflicts=clashes,
                              etag=row.etag, current=now)
        else:
            check_preconditions(request, row)
        if data.get("uid") not in (None, row.uid):
            raise Problem(409, f"uid {data['uid']!r} differs from this contact's UID; "
                               "a contact's UID cannot change")
        text = edit.apply(current, data, replace=False)
        if text != current:
            row = store(ctx, address_book, text, row, from_json=True)
            current = address_book.read(row).text
        return represent(ctx, book, row, current)


def delete_contact(ctx: Context, book: str, id: str) -> Response:
    uid = decode_id(id)
    with ctx.open(book, "w") as address_book:
        row = _find(address_book, uid)
        check_preconditions(ctx.request, row)
        address_book.delete(row.uid or row.href)
    return Response.empty(204)


def get_photo(ctx: Context, book: str, id: str) -> Response:
    """The photo's bytes, served only as an image its bytes show it to be.

    The card's own media type is never used: a PHOTO of ``data:text/html`` or
    an SVG would otherwise be a page on Cardfile's origin, with the user's
    credentials. Anything not JPEG, PNG, GIF or WebP is 404; a link
    (``https://...``) is redirected to, not fetched.
    """
    uid = decode_id(id)
    with ctx.open(book) as address_book:
        row = _find(address_book, uid)
        text = address_book.read(row).text
    line = next((p for p in card_fields.parse_lines(text) if p.name == "PHOTO"), None)
    if line is None:
        raise Problem(404, "this contact has no photo")
    photo = photo_value(line)
    if photo.data is None:
        if is_web_link(photo.link):
            return Response(302, b"", "", [("Location", photo.link)])
        raise Problem(404, "this contact's photo is not stored in the card")
    media_type = image_check.image_type(photo.data)
    if media_type is None:
        raise Problem(404, "this contact's photo is not a JPEG, PNG, GIF or WebP image, "
                           "so it is not served")
    return Response(200, photo.data, media_type, [
        ("ETag", row.etag),
        ("Content-Disposition",
         f"inline; filename=photo.{image_check.extension(media_type)}"),
        ("Content-Security-Policy", IMAGE_CSP)])


#: An image answer may not run anything even if a browser took it for a page.
IMAGE_CSP = "sandbox; default-src 'none'"


@dataclass(frozen=True)
class PhotoValue:
    """A PHOTO's bytes when the card holds them inline, else the link it holds."""

    data: bytes | None
    link: str = ""


def photo_value(line: card_fields.ContentLine) -> PhotoValue:
    """The bytes of an inline photo (whatever they are), or its link.

    Plain string operations only: a ``data:`` value of 50,000 characters
    without a comma must cost as little as any other (a backtracking regular
    expression took 25 s on it, holding the GIL).
    """
    value = "".join(line.value.split()).replace("\\,", ",")  # khard writes base64\,
    encodings = {e.upper() for e in line.params.get("ENCODING", [])}
    all_types = line.params.get("TYPE", [])
    types = [t for t in all_types if t.upper() not in ("B", "BASE64")]
    if value[:5].lower() == "data:":
        header, comma, payload = value[5:].partition(",")
        if not comma:
            return PhotoValue(None, line.value.strip())
        if "base64" in (part.strip().lower() for part in header.split(";")[1:]):
            return PhotoValue(decode_base64(payload))
        return PhotoValue(unquote_to_bytes(payload))
    if encodings & {"B", "BASE64"} or len(types) < len(all_types):
        return PhotoValue(decode_base64(value))
    if ":" not in value[:40] and image_check.image_type(decode_base64(value[:64]) or b""):
        return PhotoValue(decode_base64(value))  # Thunderbird: bare base64, no ENCODING
    return PhotoValue(None, line.value.strip())


_URL_SAFE = bytes.maketrans(b"-_", b"+/")
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")))


def decode_base64(payload: str) -> bytes | None:
    """Sloppy base64 as phones write it (stray padding, a dangling last character).

    Decodes what is decodable, as their own readers do; None if nothing is.
    """
    raw = payload.encode("ascii", "ignore").translate(_URL_SAFE).translate(None, _NOT_BASE64)
    if len(raw) % 4 == 1:
        raw = raw[:-1]
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None


def is_web_link(link: str) -> bool:
    """Whether ``link`` is a plain http(s) URL, safe to put in a Location header."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7f for c in link):
        return False
    parts = urlsplit(link)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


# -- writing helpers -------------------------------------------------------------------
def check_preconditions(request: Request, row: ItemRow | None) -> None:
    if_match = request.headers.get("if-match")
    if if_match is not None and (row is None or not etag_matches(if_match, row.etag)):
        raise Problem(412, "the contact changed since you last read it (its ETag is no "
                           "longer the one in If-Match); fetch it again, then retry"
                      if row is not None else "there is no contact to match If-Match")
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and row is not None and etag_matches(if_none_match, row.etag):
        raise Problem(412, "the contact exists already (If-None-Match)")


def body_card(request: Request, kind: str) -> str:
    if kind == "jcard":
        return jcard.from_jcard(request.json())
    text = request.text()
    if not text.lstrip().upper().startswith("BEGIN:VCARD"):
        raise Problem(400, "the body is not a vCard (it does not start with BEGIN:VCARD)")
    return text


def uid_of(text: str) -> str:
    try:
        lines = card_fields.parse_lines(text)
    except card_fields.CardSyntaxError as e:
        raise Problem(400, f"the card could not be read: {e}") from None
    return card_fields.uid_of(lines)


def with_uid(text: str, uid: str | None) -> str:
    """``text`` with UID ``uid`` (added when missing; a different one is refused)."""
    found = uid_of(text)
    if found and uid is not None and found != uid:
        raise Problem(409, f"the card's UID {found!r} is not this contact's ({uid!r}); "
                           "a contact's UID cannot change")
    if found:
        return text
    card = edit.CardText(text)
    card.replace("UID", [card.line("UID:" + export.escape_text(uid or str(uuid.uuid4())))])
    return card.text()


def store(ctx: Context, address_book: model.AddressBook, text: str, row: ItemRow | None,
          from_json: bool) -> ItemRow:
    """Write one card through the model; the index row as stored."""
    size = len(text.encode())
    if size > ctx.max_resource_size:
        raise Problem(413, f"this contact is {size} bytes; one contact may be at most "
                           f"{ctx.max_resource_size} bytes (max_resource_size)")
    try:
        if categories.is_group_card(card_fields.parse_lines(text)):
            raise Problem(422, "this is a group card; manage groups under /categories")
        stored = address_book.put(text, href=row.href if row else None,
                                  create_only=row is None)
    except card_fields.CardSyntaxError as e:
        raise Problem(400, f"the card could not be read: {e}") from None
    except Refused as e:
        status = 422 if from_json and e.status in (400, 415) else e.status
        raise Problem(status, e.reason, headers=e.headers) from None
    except ValueError as e:
        raise Problem(422, f"the card could not be stored: {e}") from None
    found = address_book.find_uid(stored.uid)
    assert found is not None
    return found

