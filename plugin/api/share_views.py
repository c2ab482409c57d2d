"""Shares over the JSON API: offering, answering and ending them, and shared books.

A shared book is in the recipient's list of books (``/api/books/shared-...``)
and answers the contact addresses through the ordinary handlers, which read
and write through the share's view (contacts/shared_book.py): a category
share lists, finds, counts and serves only that category's members, and a
write goes to the owner's book through its one write path. Every other
address of a shared book (its categories, trash, history, merges, import,
export...) is refused here, before its handler runs, so an address added
later is closed to shared books until it is listed in ``ALLOWED``. A write
through a read-only share is refused with the reason.
"""

from __future__ import annotations

import os

from cardfile.plugin.api.context import Context
from cardfile.plugin.api.grant_schemas import validate
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts import shared_book
from cardfile.plugin.contacts.grants import shares
from cardfile.plugin.contacts.grants.core import READ_METHODS
from cardfile.plugin.dav.host_check import own_names

#: (route template, method): what a shared book answers.
ALLOWED = frozenset({
    ("/api/books/{book}", "GET"),
    ("/api/books/{book}/contacts", "GET"),
    ("/api/books/{book}/contacts", "POST"),
    ("/api/books/{book}/letters", "GET"),
    ("/api/books/{book}/contacts/{id}", "GET"),
    ("/api/books/{book}/contacts/{id}", "PUT"),
    ("/api/books/{book}/contacts/{id}", "PATCH"),
    ("/api/books/{book}/contacts/{id}", "DELETE"),
    ("/api/books/{book}/contacts/{id}/photo", "GET"),
})


def screen(ctx: Context, template: str, method: str, book: str) -> None:
    """Refuse (403/404) what a shared book does not answer; nothing for other books."""
    root = str(ctx.storage.collection_root_folder())
    if book.startswith(".") or "/" in book:
        return
    marker = shared_book.read_marker(os.path.join(root, ctx.user, book))
    if marker is None:
        return
    owner, ident = marker
    record = next((r for r in ctx.grants.store.read(owner)["grants"]
                   if r.get("kind") == "share" and r.get("id") == ident
                   and r.get("state") == "accepted" and r.get("with") == ctx.user), None)
    if record is None:
        raise Problem(404, f"you have no address book named {book!r}")
    method = "GET" if method == "HEAD" else method
    if (template, method) not in ALLOWED:
        raise Problem(403, f"{book!r} is {owner}'s book, shared with you: it answers only "
                           "its contacts (list, search, read"
                           f"{', write' if record.get('access') == 'rw' else ''}), not this")
    if method not in READ_METHODS and record.get("access") != "rw":
        raise Problem(403, shared_book.read_only_reason(owner, str(record.get("book")),
                                                        record.get("category")))


# -- offering, answering, ending ---------------------------------------------------
def list_shares(ctx: Context) -> Response:
    return Response.json({"items": shares.listing(ctx.grants, ctx.user)})


def offer_share(ctx: Context) -> Response:
    from cardfile.plugin.api.grant_views import _users

    body = validate(ctx.request.json(), "ShareOffer")
    found = shares.invite(ctx.grants, ctx.storage, ctx.user, body["user"], body["book"],
                          body.get("category"), body.get("access", "r"), _users(ctx),
                          own_names(ctx.storage.configuration))
    return Response.json(found, status=201)


def accept_share(ctx: Context, id: str) -> Response:  # noqa: A002 (the route's name)
    return Response.json(shares.answer(ctx.grants, ctx.storage, ctx.user, id, True))


def decline_share(ctx: Context, id: str) -> Response:  # noqa: A002
    return Response.json(shares.answer(ctx.grants, ctx.storage, ctx.user, id, False))


def end_share(ctx: Context, id: str) -> Response:  # noqa: A002
    return Response.json(shares.end(ctx.grants, ctx.storage, ctx.user, id))
