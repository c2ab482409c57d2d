"""Sharing a book, or one category of it, with another user of the server.

A share is a grant in the owner's file, ``{"kind": "share", "with": USER,
"book": B, "category": C or null, "access": "r" | "rw", "state": ...}``, with
the friendship's lifecycle (friends.py: ``new_invitation``, ``settle``,
``remove``, ``describe``, ``listing``): invited, then accepted or declined or
expired; ended by either side.

On accept the recipient's home gets the shared book, a folder
``shared-<owner>-<book>[-<category>]`` that is a view of the owner's book
(contacts/shared_book.py); every request checks the share in the owner's
file, so ending it (or an admin revoking it) stops access at the next
request, and ``end`` also removes the folder.

Why not Radicale 3.9's map sharing: turning on ``[sharing]`` sends every
request of every user past the index fast path (dav/fastpath.py); its CSV
database is read once at start, so a share accepted or ended by the CLI would
not be seen by a running server; and it shares whole collections only, so a
category share would need a second mechanism. This one serves both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import categories, model, published, shared_book, state_files
from cardfile.plugin.contacts.grants import friends
from cardfile.plugin.contacts.grants.core import Grants
from cardfile.plugin.refused import Refused

SHARE = "share"
ACCESS = ("r", "rw")
PREFIX = "shared-"


def describe(viewer: str, owner: str, record: dict[str, Any]) -> dict[str, Any]:
    """A share as ``viewer`` sees it: the invitation's fields plus what is shared."""
    out = friends.describe(viewer, owner, record)
    out.update({"owner": owner, "book": record.get("book"),
                "category": record.get("category"), "access": record.get("access", "r"),
                "path": record.get("path") if record.get("state") == "accepted" else None})
    return out


def invite(grants: Grants, storage: Any, user: str, other: str, book: str,
           category: str | None = None, access: str = "r",
           known_users: list[str] | None = None, own_hosts: Any = None,
           days: float = friends.INVITATION_DAYS) -> dict[str, Any]:
    """Offer ``book`` (or one ``category`` of it) to ``other``; pending until accepted."""
    if access not in ACCESS:
        raise Refused(400, f"access must be r (read-only) or rw (read-write), not {access!r}")
    if other == user:
        raise Refused(422, "you cannot share a book with yourself")
    name, handle = friends.resolve(grants, user, other, known_users, own_hosts)
    with model.open_book(storage, user, book) as address_book:
        collection = address_book.collection
        if collection._published is not None:
            raise Refused(422, f"{book!r} shows another book; share that book instead")
        if category is not None:
            category = " ".join(category.split())
            found = categories.Categories(collection).get(category) if category else None
            if found is None:
                raise Refused(404, f"there is no category {category!r} in {book!r}")
            category = found.name
    target = handle or name

    def clash(owner: str, record: dict[str, Any]) -> str | None:
        if owner == user and (record.get("handle") or record.get("with")) == target \
                and record.get("book") == book and record.get("category") == category:
            what = "shared" if record["state"] == "accepted" else "offered"
            return f"{book!r}{f' ({category})' if category else ''} is {what} to " \
                   f"{target} already; end that share first to change it"
        return None

    record = friends.new_invitation(grants, user, name, handle, SHARE, {
        "book": book, "category": category, "access": access}, clash, days)
    return describe(user, user, record)


def listing(grants: Grants, user: str) -> list[dict[str, Any]]:
    """The user's shares and share invitations, sent and received."""
    return friends.listing(grants, user, SHARE, describe)


def answer(grants: Grants, storage: Any, user: str, ident: str, accept: bool
           ) -> dict[str, Any]:
    """Accept (the book appears in ``user``'s home) or decline a share."""
    with storage.acquire_lock("w", user):
        owner, record = friends.settle(grants, user, ident, accept, SHARE)
        if accept:
            folder = _place(storage, user, owner, record)
            with grants.store.editing(owner) as data:
                for stored in data["grants"]:
                    if stored.get("id") == ident:
                        stored["path"] = f"/{user}/{folder}/"
                        record = stored
    return describe(user, owner, record)


def end(grants: Grants, storage: Any, user: str, ident: str) -> dict[str, Any]:
    """End a share (either side) or withdraw an offer; the recipient's view goes."""
    with storage.acquire_lock("w", user):
        owner, record = friends.remove(grants, user, ident, SHARE)
        recipient = str(record.get("with") or "")
        if recipient:
            remove_folders(storage, recipient, owner, ident)
    return {"id": ident, "owner": owner, "with": record.get("handle") or recipient,
            "ended": True}


def revoke(grants: Grants, storage: Any, owner: str, ident: str) -> dict[str, Any]:
    """An admin's revoke: the same as the owner ending it."""
    return end(grants, storage, owner, ident)


def folder_name(owner: str, record: dict[str, Any]) -> str:
    name = f"{PREFIX}{owner}-{record['book']}"
    if record.get("category"):
        name += "-" + published.slug(str(record["category"]))
    return name


def _place(storage: Any, user: str, owner: str, record: dict[str, Any]) -> str:
    """Create the recipient's view of the share (under the write lock); its folder name."""
    base = folder_name(owner, record)
    name = base
    storage.create_collection(f"/{user}/")
    home = os.path.join(_root(storage), user)
    taken = 1
    while os.path.lexists(os.path.join(home, name)):
        if shared_book.read_marker(os.path.join(home, name)) == (owner, record["id"]):
            return name
        taken += 1
        name = f"{base}-{taken}"
    if not radicale.is_safe_name(name):
        raise Refused(400, f"{name!r} cannot be an address book name")
    what = record.get("category") or record["book"]
    storage.create_collection(f"/{user}/{name}/", props={
        "tag": "VADDRESSBOOK", "D:displayname": f"{what} ({owner})"})
    shared_book.write_marker(os.path.join(home, name), owner, record["id"])
    return name


def remove_folders(storage: Any, user: str, owner: str, ident: str) -> list[str]:
    """Delete ``user``'s views of the share ``ident`` (the owner's cards are untouched)."""
    home = os.path.join(_root(storage), user)
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(home) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False) and shared_book.read_marker(
                    entry.path) == (owner, ident):
                shutil.rmtree(entry.path)
                state_files.removed_folder(entry.path)
                storage.card_index.forget_collection(f"{user}/{entry.name}")
                removed.append(f"/{user}/{entry.name}/")
    return removed


def _root(storage: Any) -> str:
    return str(storage.collection_root_folder())
