"""The service document, one book's document, export, import and the OpenAPI file.

Export and import use the project's own exporter and importers (the same
code as ``cardfile export``/``cardfile import``), so a file travels the same
way whichever door it comes through.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin import card_edit, card_fields, categories, export, importers, model
from cardfile.plugin.api import openapi, queries
from cardfile.plugin.api.context import Context
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import IMPORT_TYPES, JCARD, JSON, VCARD, Response

EXPORT_FORMATS = {"vcard": (VCARD, "vcf"), "vcard3": (VCARD, "vcf"),
                  "vcard4": (VCARD, "vcf"), "jcard": (JCARD, "json"),
                  "csv": ("text/csv", "csv")}


def _book_links(ctx: Context, book: str) -> dict[str, Any]:
    url = ctx.book_url(book)
    return {"name": book, "url": url, "contacts": url + "/contacts",
            "categories": url + "/categories", "export": url + "/export",
            "import": url + "/import"}


def service(ctx: Context) -> Response:
    """The Contacts resource: who is logged in and where the collections are."""
    books = [_book_links(ctx, name) for name in ctx.books()]
    return Response.json({"user": ctx.user, "books": books,
                          "openapi": ctx.prefix + "/openapi.json"})


def openapi_document(ctx: Context) -> Response:
    return Response.json(openapi.document(ctx.prefix), content_type=JSON)


def book_document(ctx: Context, book: str) -> Response:
    with ctx.open(book) as address_book:
        collection = address_book.collection
        found = queries.page(collection._index.connection(), collection._coll(),
                             ctx.max_resource_size, sort="name", descending=False, limit=1,
                             cursor=None)
        category_count = len(categories.Categories(collection).all())
    return Response.json({**_book_links(ctx, book), "contact_count": found.total,
                          "category_count": category_count})


def export_book(ctx: Context, book: str) -> Response:
    fmt = ctx.request.arg("format", "vcard")
    if fmt is None or fmt not in EXPORT_FORMATS:
        raise Problem(400, f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    category = ctx.request.arg("category")
    texts = []
    with ctx.open(book) as address_book:
        collection = address_book.collection
        if category is not None and categories.Categories(collection).get(category) is None:
            raise Problem(404, f"there is no category {category!r}")
        for row in queries.all_rows(collection._index.connection(), collection._coll(),
                                    ctx.max_resource_size, category):
            try:
                texts.append(address_book.read(row).text)
            except RuntimeError:  # vanished since the index saw it
                continue
    if fmt == "vcard":
        body = "".join(t if t.endswith("\n") else t + "\n" for t in texts)
    else:
        body = export.export_cards(texts, fmt)
    media_type, extension = EXPORT_FORMATS[fmt]
    name = book + (f"-{category}" if category else "")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return Response(200, body.encode(), media_type,
                    [("Content-Disposition", f'attachment; filename="{safe}.{extension}"')])


def import_book(ctx: Context, book: str) -> Response:
    """Store every card of an uploaded file: new UIDs are created, known ones updated."""
    fmt = ctx.request.arg("format", "auto")
    if fmt is None or fmt not in importers.FORMATS:
        raise Problem(400, f"format must be one of {', '.join(importers.FORMATS)}, "
                           f"not {fmt!r}")
    if ctx.request.content_type not in IMPORT_TYPES:
        raise Problem(415, f"send the file as one of {', '.join(IMPORT_TYPES)} (Content-Type "
                           f"was {ctx.request.content_type or 'missing'!r})",
                      accepted=list(IMPORT_TYPES))
    if not ctx.request.body.strip():
        raise Problem(400, "the request needs a body: the contacts file to import")
    try:
        parsed = importers.read(ctx.request.body, "upload", fmt)
    except importers.ImportFailed as e:
        raise Problem(422, str(e)) from None
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    problems = [{"origin": p.origin, "reason": p.reason, "skipped": p.skipped}
                for p in parsed.problems]
    with ctx.open(book, "w") as address_book:
        for card in parsed.cards:
            outcome = _import_card(address_book, card, ctx.max_resource_size)
            if outcome in counts:
                counts[outcome] += 1
            else:
                problems.append({"origin": card.origin, "reason": outcome, "skipped": True})
        cats = categories.Categories(address_book.collection)
        for name, uids in parsed.groups.items():
            try:
                if cats.get(name) is None:
                    cats.create(name)
                cats.add_members(name, uids)
            except categories.CategoryError as e:
                problems.append({"origin": f"group {name!r}", "reason": e.reason,
                                 "skipped": True})
    return Response.json({"format": parsed.format, **counts, "problems": problems})


def _import_card(address_book: model.AddressBook, card: importers.SourceCard,
                 max_size: int) -> str:
    text = card.text
    for name in card.categories:
        text = card_edit.add_category(text, name)
    if len(text.encode()) > max_size:
        return f"the card is larger than {max_size} bytes (max_resource_size)"
    try:
        uid = next((line.value.strip() for line in card_fields.parse_lines(text)
                    if line.name == "UID"), "")
        existing = address_book.find(uid) if uid else None
        if existing is not None and address_book.read(existing).text == text:
            return "unchanged"
        address_book.put(text, href=existing.href if existing else None)
    except model.BookError as e:
        return e.reason
    except (ValueError, RuntimeError) as e:
        return f"the card could not be stored: {e}"
    return "updated" if existing is not None else "created"
