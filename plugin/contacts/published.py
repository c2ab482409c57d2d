"""Per-category address books: one category of a book, as a book of its own.

A phone that should carry only "Family" subscribes to a published book. It
holds no files: it is a view of the source book's members of that category,
read and written through the source, so the card exists once. A card added
to it gets the category; a card deleted from it loses the category (the
contact stays). Opt-in (``cardfile categories publish``), because a client
that syncs every address book would otherwise show each member twice.

The folder of a published book holds only Radicale's ``.Radicale.props`` and
a marker naming the source book and the category.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import categories, sent_card, state_files
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import ItemRow
from cardfile.plugin.vcard import card_edit
from cardfile.plugin.vcard.card_fields import category_key

if TYPE_CHECKING:
    from cardfile.plugin.contacts.storage import Collection

MARKER = ".cardfile-published.json"


def read_marker(folder: str) -> tuple[str, str] | None:
    """(source book path, category name) if ``folder`` is a published book."""
    return read_pair(folder, MARKER, "source", "category")


def read_pair(folder: str, name: str, first: str, second: str) -> tuple[str, str] | None:
    """Two fields of a small JSON marker file in a book's folder; None if absent or broken.

    A book that is a view of another (published here, shared in ``shared_book``)
    says so with such a file.
    """
    path = os.path.join(folder, name)
    if not os.access(path, os.F_OK):  # the usual book: no exception raised and caught
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return str(data[first]), str(data[second])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def own_source(book_path: str, source: str) -> str | None:
    """The marker's source as a collection path, if it is another book of the same user.

    A marker is a plain file: one crafted (or restored, or copied between
    users' folders) to name another user's book would otherwise serve that
    user's cards to whoever owns the published book. Anything but a sibling
    book of the same owner is refused (None).
    """
    try:
        source_parts = radicale.strip_path(radicale.sanitize_path(source)).split("/")
    except ValueError:
        return None
    own_parts = book_path.strip("/").split("/")
    if (len(source_parts) != 2 or len(own_parts) != 2 or source_parts[0] != own_parts[0]
            or source_parts == own_parts
            or not all(radicale.is_safe_name(p) for p in source_parts)):
        return None
    return radicale.unstrip_path("/".join(source_parts), True)


def write_marker(folder: str, source: str, category: str) -> None:
    state_files.write_json(os.path.join(folder, MARKER),
                           {"source": source, "category": category}, 0o600, ensure_ascii=False)


def slug(name: str) -> str:
    """A folder name for a category: lower-case letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    return text[:60] or "category"


class PublishedBook:
    """The members of one category of ``source``, served as ``collection``."""

    def __init__(self, collection: Collection, source_path: str, category: str) -> None:
        self.collection = collection
        self.source = type(collection)(collection.storage, source_path)
        self.category = category
        self.key = category_key(category)

    def exists(self) -> bool:
        return (os.path.isdir(self.source.folder)
                and self.source.tag == "VADDRESSBOOK")

    def sync_coll(self) -> int:
        return self.source._coll()

    def scope(self, category: str | None) -> tuple[int, str | None]:
        """(index collection, category) an index query of this book runs on.

        Another category than this book's is refused: the index answers one
        category at a time, and this book is one category already.
        """
        if category is not None and category_key(category) != self.key:
            raise Refused(400, f"this address book shows only the category "
                               f"{self.category!r}; search within it with q")
        return (self.sync_coll(), self.category) if self.exists() else (
            self.collection._coll(), None)

    def rows(self) -> dict[str, ItemRow]:
        if not self.exists():
            return {}
        source = self.source
        limit = source.storage.max_resource_size
        return {row.href: row for row in
                source._index.category_members(source._coll(), self.key)
                if row.size <= limit}

    def item(self, row: ItemRow, text: str | None = None) -> radicale.LazyItem:
        from cardfile.plugin.contacts.storage import indexed_item

        return indexed_item(self.collection, row, text, folder=self.source.folder)

    def has_uid(self, uid: str) -> bool:
        return self.exists() and self.source.has_uid(uid)

    def upload(self, href: str, item: radicale.Item) -> tuple[Any, Any]:
        """Store through the source book, with this category added."""
        if not self.exists():
            raise ValueError(f"the book {self.source.path!r} this one shows is gone")
        old = self.rows().get(href)
        sent = sent_card.current(item.uid)
        sent_text = sent.text if sent is not None else item.serialize()
        text = card_edit.add_category(sent_text, self.category)
        if sent is not None and text != sent_text:
            sent.text = text  # the source book stores the client's card, with the category
            sent_card.note_change(f"the category {self.category!r} of this book was added")
        self.source.upload(href, radicale.Item(collection_path=self.source.path,
                                                    text=text))
        row = self.rows().get(href)
        if row is None:
            raise ValueError(f"{href!r} was stored but is not in category {self.category!r}")
        return self.item(row, text), (self.item(old) if old else None)

    def delete(self, href: str) -> None:
        """Deleting here takes the contact out of the category; it stays in the book."""
        row = self.rows().get(href)
        if row is None:
            raise radicale.ComponentNotFoundError(href)
        categories.Categories(self.source).remove_members(self.category, [row.uid])


def publish(storage: Any, user: str, book: str, category: str,
            name: str | None = None) -> str:
    """Create the published book of ``category`` of ``/user/book/``; return its path.

    The caller holds the storage write lock and has checked the category.
    """
    folder_name = name or f"{book}-{slug(category)}"
    if not radicale.is_safe_name(folder_name):
        raise Refused(400, f"{folder_name!r} cannot be an address book name "
                                            "(no slashes, no leading dot)")
    path = f"/{user}/{folder_name}/"
    existing = next(iter(storage.discover(path)), None)
    if existing is not None:
        marker = read_marker(existing.folder)
        if marker and category_key(marker[1]) == category_key(category):
            return path
        raise Refused(409, f"{path} exists already")
    storage.create_collection(path, props={"tag": "VADDRESSBOOK", "D:displayname": category})
    collection = next(iter(storage.discover(path)))
    write_marker(collection.folder, f"/{user}/{book}/", category)
    return path


def published_books(storage: Any, user: str, book: str, category: str) -> list[Any]:
    """The published books that show ``category`` of ``/user/book/``."""
    found = []
    for child in storage.discover(f"/{user}/", depth="1"):
        folder = getattr(child, "_filesystem_path", None)
        if folder is None or getattr(child, "path", "").count("/") != 1:
            continue
        marker = read_marker(folder)
        if (marker and marker[0].strip("/") == f"{user}/{book}"
                and category_key(marker[1]) == category_key(category)):
            found.append(child)
    return found


def unpublish(storage: Any, user: str, book: str, category: str) -> list[str]:
    """Delete the published books of ``category`` (the contacts stay); return their paths."""
    removed = []
    for collection in published_books(storage, user, book, category):
        collection.delete(None)
        removed.append(f"/{collection.path}/")
    return removed
