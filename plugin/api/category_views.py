"""The Categories collection: list, read, create, rename, delete, members.

Membership lives in each member's ``CATEGORIES`` (``Categories`` edits the
cards), so every change here is an ordinary card change that CardDAV clients
pick up in their next sync, as group cards for Apple clients too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cardfile.plugin.api import ids, schemas
from cardfile.plugin.api.context import Context, decode_id
from cardfile.plugin.api.problems import Problem
from cardfile.plugin.api.web import Response
from cardfile.plugin.contacts import categories, category_changes
from cardfile.plugin.vcard.card_fields import category_key


def category_json(ctx: Context, book: str, category: categories.Category) -> dict[str, Any]:
    url = ctx.category_url(book, category.name)
    return {"id": ids.encode(category.name), "name": category.name, "count": category.count,
            "color": category.color, "description": category.description,
            "uid": category.uid, "url": url, "members": url + "/members"}


def _require(cats: categories.Categories, name: str) -> categories.Category:
    category = cats.get(name)
    if category is None:
        raise Problem(404, f"there is no category {name!r}; create it with PUT")
    return category


def list_categories(ctx: Context, book: str) -> Response:
    with ctx.open(book) as address_book:
        found = categories.Categories(address_book.collection).all()
    items = [category_json(ctx, book, c) for c in found]
    return Response.json({"total": len(items), "items": items})


def get_category(ctx: Context, book: str, id: str) -> Response:
    name = decode_id(id, "category")
    with ctx.open(book) as address_book:
        category = _require(categories.Categories(address_book.collection), name)
    return Response.json(category_json(ctx, book, category))


def create_category(ctx: Context, book: str) -> Response:
    ctx.request.body_kind(("json",))
    data = schemas.validate(ctx.request.json(), "NewCategory")
    with ctx.open(book, "w") as address_book:
        cats = categories.Categories(address_book.collection)
        category = cats.create(data["name"], data.get("color", ""),
                               data.get("description", ""))
    body = category_json(ctx, book, category)
    return Response.json(body, 201, headers=[("Location", body["url"])])


def put_category(ctx: Context, book: str, id: str) -> Response:
    """Create (201), or rename and/or change metadata (200)."""
    name = decode_id(id, "category")
    ctx.request.body_kind(("json",))
    data = schemas.validate(ctx.request.json(), "CategoryInput")
    new_name = data.get("name")
    metadata = "color" in data or "description" in data

    def change_metadata(cats: categories.Categories, name: str) -> None:
        if metadata:
            cats.update(name, data.get("color"), data.get("description"))

    with ctx.open(book, "w") as address_book:
        cats = categories.Categories(address_book.collection)
        category = cats.get(name)
        if category is None:
            if new_name is not None and category_key(new_name) != category_key(name):
                raise Problem(404, f"there is no category {name!r} to rename; to create "
                                   f"{new_name!r}, PUT it at its own id")
            created = cats.create(new_name or name, data.get("color", ""),
                                  data.get("description", ""))
            body = category_json(ctx, book, created)
            return Response.json(body, 201, headers=[("Location", body["url"])])
        rename_to = (new_name if new_name is not None
                     and " ".join(new_name.split()) != category.name else None)
        if rename_to is not None:
            _refuse_taken(cats, category, rename_to)
        elif metadata:
            category = cats.update(category.name, data.get("color"), data.get("description"))
    if rename_to is not None:  # members rewritten in short holds: others answered meanwhile
        renamed = category
        category = category_changes.rename(
            lambda: _categories_of(ctx, book), category.name, rename_to,
            within_first=change_metadata,
            check_first=lambda cats: _refuse_taken(cats, renamed, rename_to))
    return Response.json(category_json(ctx, book, category))


def _refuse_taken(cats: categories.Categories, category: categories.Category,
                  new_name: str) -> None:
    """409 when another category has the name ``new_name`` already."""
    target = cats.get(new_name)
    if target is not None and target.key != category.key:
        raise Problem(409, f"a category named {target.name!r} exists already; "
                           "delete or rename it first")


@contextlib.contextmanager
def _categories_of(ctx: Context, book: str) -> Iterator[categories.Categories]:
    """The book's categories within one hold of its write lock."""
    with ctx.open(book, "w") as address_book:
        yield categories.Categories(address_book.collection)


def delete_category(ctx: Context, book: str, id: str) -> Response:
    name = decode_id(id, "category")
    with ctx.open(book, "w") as address_book:
        category = _require(categories.Categories(address_book.collection), name)
    category_changes.delete(lambda: _categories_of(ctx, book), category.name)
    return Response.empty(204)


def list_members(ctx: Context, book: str, id: str) -> Response:
    name = decode_id(id, "category")
    with ctx.open(book) as address_book:
        category = _require(categories.Categories(address_book.collection), name)
        collection = address_book.collection
        rows = collection._index.members(collection._coll(), ctx.max_resource_size,
                                         category.name)
    items = [{"id": ids.encode(r.uid or r.href), "name": r.fn,
              "url": ctx.contact_url(book, r.uid or r.href)} for r in rows]
    return Response.json({"category": category.name, "total": len(items), "items": items,
                          "pending": list(category.pending)})


def _member_keys(ctx: Context, from_query: bool) -> list[str]:
    request = ctx.request
    if from_query and not request.body:
        raw = request.args("id")  # none named: nothing to remove
    else:
        request.body_kind(("json",))
        raw = schemas.validate(request.json(), "MemberIds")["ids"]
    keys = []
    for ident in raw:
        value = ids.decode(ident)
        keys.append(value if value is not None else ident)
    return keys


def add_members(ctx: Context, book: str, id: str) -> Response:
    name = decode_id(id, "category")
    keys = _member_keys(ctx, from_query=False)
    with ctx.open(book, "w") as address_book:
        cats = categories.Categories(address_book.collection)
        category = _require(cats, name)
        added, missing = cats.add_members(category.name, keys)
    return Response.json({"added": [ids.encode(u) for u in added], "not_found": missing})


def remove_members(ctx: Context, book: str, id: str) -> Response:
    name = decode_id(id, "category")
    keys = _member_keys(ctx, from_query=True)
    with ctx.open(book, "w") as address_book:
        cats = categories.Categories(address_book.collection)
        category = _require(cats, name)
        removed = cats.remove_members(category.name, keys)
    return Response.json({"removed": [ids.encode(u) for u in removed]})


