"""What an application token limited to some properties may read, and nothing else.

A token made with ``--properties name,email`` answers only the addresses in
``HANDLERS``; every other address is refused 403 before its handler runs
(api/__init__.py), so an address added later is closed to such tokens until
it is written here. Each handler reads cards through one cut
(``properties.filter_card``) and builds every answer from the cut text only:

- the JSON form, jCard and vCard of a contact (``represent``), with an ETag
  of the cut text (a change to a hidden property changes nothing it sees);
- the listing and its search: ``q`` is matched against the cut card only,
  so searching for a hidden email or phone finds nothing; ``total`` counts
  contacts (every contact is visible, only properties are hidden);
- the photo, 404 as for a contact without one unless ``photo`` is granted.

The listing reads every card of the book per request (the index holds hidden
values, so it cannot answer for the token): correct first; fine for a
personal book, slow for a huge one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import urlencode

from cardfile.plugin.api import contact_views
from cardfile.plugin.api.context import Context, decode_id
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import Response, etag_matches
from cardfile.plugin.contacts.grants import properties
from cardfile.plugin.store.rows import ItemRow, etag_of
from cardfile.plugin.vcard import card_fields, image_check

_SEARCHED = frozenset({"FN", "N", "NICKNAME", "ORG", "EMAIL"})


def digits_of(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _scopes(ctx: Context) -> list[str]:
    scopes = ctx.grant.properties if ctx.grant is not None else None
    assert scopes is not None
    return list(scopes)


def _cut(ctx: Context, row: ItemRow, text: str) -> tuple[ItemRow, str]:
    cut = properties.filter_card(text, _scopes(ctx))
    return row._replace(etag=etag_of(cut), size=len(cut.encode())), cut


def service(ctx: Context) -> Response:
    books = [b for b in ctx.books() if not ctx.grant.books or b in ctx.grant.books]
    return Response.json({"user": ctx.user, "openapi": ctx.prefix + "/openapi.json",
                          "books": [{"name": b, "url": ctx.book_url(b),
                                     "contacts": ctx.book_url(b) + "/contacts",
                                     "categories": ctx.book_url(b) + "/categories"}
                                    for b in books]})


def _matches(text: str, words: list[str]) -> bool:
    lines = card_fields.parse_lines(text)
    hay = " ".join(v for line in lines if line.name in _SEARCHED
                   for v in card_fields.text_values(line)).lower()
    phones = [digits_of(v) for line in lines if line.name == "TEL"
              for v in card_fields.text_values(line)]
    for word in words:
        digits = digits_of(word)
        if word.lower() in hay:
            continue
        if len(digits) >= 3 and any(digits in p for p in phones):
            continue
        return False
    return True


def list_contacts(ctx: Context, book: str) -> Response:
    request = ctx.request
    limit = contact_views._int_arg(request, "limit", contact_views.DEFAULT_LIMIT, 1,
                                   contact_views.MAX_LIMIT)
    if (request.arg("sort", "name") or "name") != "name":
        raise Problem(400, "this token's listing is sorted by name only")
    if request.arg("category") is not None and "categories" not in _scopes(ctx):
        raise Problem(400, "this token may not see categories")
    category = request.arg("category")
    words = (request.arg("q", "") or "").split()
    fields = contact_views.parse_fields(request)
    offset = _offset(request.arg("cursor"))
    found: list[tuple[str, ItemRow, str]] = []
    with ctx.open(book) as address_book:
        for row in address_book.rows().values():
            try:
                row, text = _cut(ctx, row, address_book.read(row).text)
            except RuntimeError:
                continue
            if words and not _matches(text, words):
                continue
            if category is not None and card_fields.category_key(category) not in {
                    card_fields.category_key(c) for c in _categories(text)}:
                continue
            found.append((row.fn.casefold(), row, text))
    found.sort(key=lambda t: (t[0], t[1].uid))
    page = found[offset: offset + limit]
    items = [contact_views.rep.to_json(text, contact_views.meta(ctx, book, row), fields)
             for _, row, text in page]
    following = offset + limit if offset + limit < len(found) else None
    cursor = None if following is None else base64.urlsafe_b64encode(
        f"o{following}".encode()).decode().rstrip("=")
    next_url = None
    if cursor:
        keep = [(k, v) for k, vs in request.query.items() if k != "cursor" for v in vs]
        next_url = f"{ctx.book_url(book)}/contacts?{urlencode([*keep, ('cursor', cursor)])}"
    return Response.json({"total": len(found), "count": len(items), "items": items,
                          "next_cursor": cursor, "next": next_url})


def get_contact(ctx: Context, book: str, id: str) -> Response:  # noqa: A002
    contact_views.parse_fields(ctx.request)
    uid = decode_id(id)
    with ctx.open(book) as address_book:
        row = contact_views._find(address_book, uid)
        row, text = _cut(ctx, row, address_book.read(row).text)
    if etag_matches(ctx.request.headers.get("if-none-match", "-"), row.etag):
        return Response.empty(304, [("ETag", row.etag)])
    return contact_views.represent(ctx, book, row, text)


def get_photo(ctx: Context, book: str, id: str) -> Response:  # noqa: A002
    uid = decode_id(id)
    with ctx.open(book) as address_book:
        row = contact_views._find(address_book, uid)
        row, text = _cut(ctx, row, address_book.read(row).text)
    line = next((p for p in card_fields.parse_lines(text) if p.name == "PHOTO"), None)
    if line is None:
        raise Problem(404, "this contact has no photo")
    photo = contact_views.photo_value(line)
    media_type = image_check.image_type(photo.data) if photo.data is not None else None
    if photo.data is None or media_type is None:
        raise Problem(404, "this contact's photo is not served to this token")
    return Response(200, photo.data, media_type, [
        ("ETag", row.etag), ("Content-Security-Policy", contact_views.IMAGE_CSP)])


def _categories(text: str) -> list[str]:
    return [v for line in card_fields.parse_lines(text) if line.name == "CATEGORIES"
            for v in card_fields.text_values(line)]


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("o") or not raw[1:].isdigit() or len(raw) > 12:
        raise Problem(400, "the cursor is not one this listing gave")
    return int(raw[1:])


#: (route template, method) -> handler: the only addresses a property-limited token reaches.
HANDLERS: dict[tuple[str, str], Callable[..., Response]] = {
    ("/api", "GET"): service,
    ("/api/books/{book}/contacts", "GET"): list_contacts,
    ("/api/books/{book}/contacts/{id}", "GET"): get_contact,
    ("/api/books/{book}/contacts/{id}/photo", "GET"): get_photo,
}


def handler(template: str, method: str) -> Callable[..., Response] | None:
    return HANDLERS.get((template, "GET" if method == "HEAD" else method))
