"""The service document, one book's document, export, import and the OpenAPI file.

Export and import use the project's own exporter and importers (the same
code as ``cardfile export``/``cardfile import``), so a file travels the same
way whichever door it comes through.
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin.api import openapi
from cardfile.plugin.api.context import Context
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import IMPORT_TYPES, JCARD, JSON, VCARD, Response
from cardfile.plugin.contacts import categories, export, importers, views
from cardfile.plugin.contacts.importers.book import Report, import_cards

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
        coll, category = collection.index_scope(None)
        found = collection._index.page(coll, ctx.max_resource_size, sort="name",
                                       descending=False, limit=1, cursor=None,
                                       category=category)
        category_count = len(categories.Categories(collection).all())
    return Response.json({**_book_links(ctx, book), "contact_count": found.total,
                          "category_count": category_count})


def export_book(ctx: Context, book: str) -> Response:
    fmt = ctx.request.arg("format", "vcard")
    if fmt is None or fmt not in EXPORT_FORMATS:
        raise Problem(400, f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    category = ctx.request.arg("category")
    with ctx.open(book) as address_book:
        collection = address_book.collection
        if category is not None and categories.Categories(collection).get(category) is None:
            raise Problem(404, f"there is no category {category!r}")
        rows = list(collection._index.all_rows(collection._coll(), ctx.max_resource_size,
                                               category))
    texts = address_book.texts_after_lock(rows)
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
    """Import a file exactly as ``cardfile import`` does: same detection, matching and report.

    Cards that match someone in the book (same UID, or a shared email or phone
    with a compatible name) are merged into that person, and the cards are
    written in batches, each under its own lock, so other users are answered
    while a big file is imported.
    """
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
    parsed = importers.read(ctx.request.body, "upload", fmt)
    with ctx.open(book, "w"):
        pass  # the rights check and a 404 for a book that is not there, before any write
    with views.using(views.CATEGORIES_VIEW):
        report = import_cards(ctx.storage, ctx.user, book, [parsed],
                              ctx.merge_store(book), ctx.region)
    return Response.json(import_report(report, parsed.format))


def import_report(report: Report, fmt: str) -> dict[str, Any]:
    """The CLI's report (``cardfile import --json``) with each problem as an object."""
    return {"format": fmt, "read": report.read, "added": report.added,
            "merged": report.merged, "unchanged": report.unchanged,
            "skipped": report.skipped, "merge_ids": report.merges,
            "problems": [{"origin": p.origin, "reason": p.reason, "skipped": p.skipped}
                         for p in report.problems]}
