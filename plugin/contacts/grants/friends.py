"""Friends: a two-way relationship that puts each side's *me* card in the other's book.

Each user may name one of their own contacts as their *me* card (``me`` in
their grants file: book, UID, and the property scopes they share with
friends; name and photo always). ``invite`` records a friendship in the
inviter's file, pending until the other user accepts it (or it expires, or
they decline: the inviter then sees only "not accepted", never which).

Once accepted, each side's me card is copied into the other's book, cut
down to the shared scopes (properties.filter_card), in the *Friends*
category, under a UID of its own and marked ``X-CARDFILE-FRIEND`` with the
owner's name. Every copy is written through ``model.AddressBook.put``, the
one write path, so the friend's phones get it at their next sync. An edit
of a me card reaches the copies from the storage's write hook
(``card_stored``), whichever door it came through (CardDAV, API, CLI).

Ending a friendship (either side) removes it; the ender chooses whether
their copy of the other's card stays as a plain card or goes; the other
side's copy of the ender's card becomes a plain card that is no longer
updated (the Friends category and the marker go).

The copy belongs to its owner's card: edits a friend makes to it are
replaced at the owner's next edit, except its categories, which the friend
keeps. Deleting the copy is the friend saying "no more copies": it is
recorded on the friendship (``no_copy``) and the owner's edits no longer
bring it back; the friend undoes that with ``want_copy`` ('cardfile friends
copy ID', ``POST /api/friends/{id}/copy``).

Invitations may name a user or a handle ``name@host`` (``resolve``: the
user name at one of the server's own host names; an unknown handle is
invited like any other and simply never accepted, so no account is
revealed). The lifecycle here (``new_invitation``, ``settle``, ``remove``,
``describe``, ``listing``) is also the one of shares (shares.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from cardfile.plugin.contacts import model, views
from cardfile.plugin.contacts.grants import properties
from cardfile.plugin.contacts.grants.core import Grants, iso, new_id, now, parse_time
from cardfile.plugin.contacts.grants.store import GrantStore
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_edit, card_fields
from cardfile.plugin.vcard.card_text import CardText

CATEGORY = "Friends"
MARKER = "X-CARDFILE-FRIEND"
INVITATION_DAYS = 14
DEFAULT_BOOK = model.DEFAULT_BOOK


# -- the me card -------------------------------------------------------------------
def me(grants: Grants, user: str) -> dict[str, Any] | None:
    found = grants.store.read(user).get("me")
    return dict(found) if found else None


def set_me(grants: Grants, storage: Any, user: str, uid: str, book: str = DEFAULT_BOOK
           ) -> dict[str, Any]:
    """Name the user's own contact; friends get it at once."""
    with storage.acquire_lock("w", user):
        address_book = _book(storage, user, book, create=False)
        contact = address_book.get(uid)
        if _marker(contact.text):
            raise Refused(409, "that contact is a friend's card; choose your own")
        with grants.store.editing(user) as data:
            old = data.get("me") or {}
            data["me"] = {"book": book, "uid": contact.uid,
                          "share": list(old.get("share") or [])}
            result = dict(data["me"])
        push(grants, storage, user)
    return result


def share(grants: Grants, storage: Any, user: str, scopes: list[str]) -> dict[str, Any]:
    """Choose what friends see of the me card (name and photo always)."""
    chosen = [s for s in properties.parse_scopes(scopes) if s not in properties.FRIEND_ALWAYS]
    with storage.acquire_lock("w", user):
        with grants.store.editing(user) as data:
            if not data.get("me"):
                raise Refused(409, "choose your own contact first ('cardfile me set ID')")
            data["me"]["share"] = chosen
            result = dict(data["me"])
        push(grants, storage, user)
    return result


def shared_scopes(me_record: dict[str, Any]) -> list[str]:
    return sorted({*properties.FRIEND_ALWAYS, *(me_record.get("share") or [])})


# -- invitations and friendships -----------------------------------------------------
# One lifecycle for every kind of invitation (a friendship, a share of a book:
# shares.py): invite, accept or decline, expire, end. Each kind adds only what
# acceptance and ending do to contacts.
FRIEND = "friend"


def _records(store: GrantStore, user: str, kind: str = FRIEND) -> list[dict[str, Any]]:
    return [g for g in store.read(user)["grants"] if g.get("kind") == kind]


def _between(store: GrantStore, a: str, b: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, other in ((a, b), (b, a)):
        for record in _records(store, owner):
            if record.get("with") == other:
                yield owner, record


def _live(record: dict[str, Any]) -> bool:
    if record.get("state") == "accepted":
        return True
    ends = parse_time(record.get("expires"))
    return record.get("state") == "invited" and (ends is None or now() < ends)


def resolve(grants: Grants, user: str, text: str, known_users: list[str] | None,
            own_hosts: Callable[[str], bool] | None = None) -> tuple[str, str | None]:
    """(user name, handle) an invitation is addressed to.

    A plain name must be a user of this server (404 otherwise, as before). A
    handle ``name@host`` names the local user ``name`` when ``host`` is one of
    this server's own names (``own_hosts``: loopback names and ``[server]
    allowed_hosts``); the user name, not the email on a me card, because a me
    card is its owner's to write (anyone could claim another's address). A
    handle that names nobody here resolves to "" and is invited all the same:
    the invitation can never be answered and ends as "not accepted", exactly
    as one a real user declines, so a handle cannot be used to learn which
    accounts exist.
    """
    text = text.strip()
    if "@" not in text:
        if text == user:
            raise Refused(422, "you cannot invite yourself")
        if known_users is not None and text not in known_users:
            raise Refused(404, f"there is no user {text!r} on this server")
        return text, None
    name, _, host = text.rpartition("@")
    if not name or not host or len(text) > 200 or any(c.isspace() or ord(c) < 32
                                                       for c in text):
        raise Refused(400, f"{text!r} is not a user name or a handle (name@host)")
    ours = own_hosts is not None and own_hosts(host.lower())
    if ours and name == user:
        raise Refused(422, "you cannot invite yourself")
    found = name if ours and (known_users is None or name in known_users) else ""
    return found, text


def new_invitation(grants: Grants, user: str, other: str, handle: str | None, kind: str,
                   extra: dict[str, Any], clash: Callable[[str, dict[str, Any]], str | None],
                   days: float = INVITATION_DAYS) -> dict[str, Any]:
    """Record an invitation from ``user`` (the one writer of every kind's invitations).

    ``clash(owner, record)`` names why a live record forbids another (409);
    an old invitation of the same kind, to the same person, for the same thing,
    that was not accepted is replaced.
    """
    target = handle or other
    with grants.store.locked():
        for owner in grants.store.users():
            for record in _records(grants.store, owner, kind):
                why = clash(owner, record) if _live(record) else None
                if why:
                    raise Refused(409, why)
        data = grants.store.read(user)
        same = {k: extra.get(k) for k in ("book", "category")}
        data["grants"] = [g for g in data["grants"] if not (
            g.get("kind") == kind and (g.get("handle") or g.get("with")) == target
            and all(g.get(k) == v for k, v in same.items()))]
        record = {"id": new_id(), "kind": kind, "name": target, "with": other,
                  "state": "invited", "created": iso(now()),
                  "expires": iso(now() + timedelta(days=days)), **extra}
        if handle:
            record["handle"] = handle
        data["grants"].append(record)
        grants.store.write(user, data)
    return record


def invite(grants: Grants, user: str, other: str, known_users: list[str] | None = None,
           days: float = INVITATION_DAYS, own_hosts: Callable[[str], bool] | None = None
           ) -> dict[str, Any]:
    """Invite ``other`` (a user of this server, or a handle); pending until they accept."""
    if other == user:
        raise Refused(422, "you cannot befriend yourself")
    name, handle = resolve(grants, user, other, known_users, own_hosts)
    target = handle or name

    def clash(owner: str, record: dict[str, Any]) -> str | None:
        if owner == user and (record.get("handle") or record.get("with")) == target or (
                name and {owner, record.get("with")} == {user, name}):
            what = "friends" if record["state"] == "accepted" else "invited already"
            return f"you and {target} are {what}"
        return None

    record = new_invitation(grants, user, name, handle, FRIEND, {}, clash, days)
    return describe(user, user, record)


def describe(viewer: str, owner: str, record: dict[str, Any]) -> dict[str, Any]:
    """An invitation as ``viewer`` may see it (a decline shows as "not accepted")."""
    outgoing = owner == viewer
    state = record.get("state")
    if state == "invited" and not _live(record):
        state = "expired"
    accepted = "friends" if record.get("kind", FRIEND) == FRIEND else "shared"
    if outgoing:
        status = {"invited": "pending", "accepted": accepted}.get(str(state), "not accepted")
    else:
        status = {"invited": "invited you", "accepted": accepted}.get(str(state), "gone")
    out = {"id": record["id"],
           "friend": (record.get("handle") or record["with"]) if outgoing else owner,
           "direction": "sent" if outgoing else "received", "status": status,
           "created": record.get("created"),
           "expires": record.get("expires") if state == "invited" else None,
           "since": record.get("accepted")}
    if record.get("kind") == FRIEND and outgoing and record.get("no_copy"):
        out["copy_deleted"] = True  # the friend deleted their copy of my card
    return out


def listing(grants: Grants, user: str, kind: str = FRIEND,
            show: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None
            ) -> list[dict[str, Any]]:
    """The user's invitations of ``kind``, sent and received."""
    show = show or describe
    out = [show(user, user, r) for r in _records(grants.store, user, kind)]
    for owner in grants.store.users():
        if owner == user:
            continue
        for record in _records(grants.store, owner, kind):
            if record.get("with") == user and _live(record):
                out.append(show(user, owner, record))
    return sorted(out, key=lambda d: (d["status"] != "invited you", d["friend"]))


def _find(store: GrantStore, user: str, ident: str, kind: str = FRIEND
          ) -> tuple[str, dict[str, Any]]:
    """(owner, record) of the invitation ``ident`` that ``user`` is part of; else 404."""
    for record in _records(store, user, kind):
        if record["id"] == ident:
            return user, record
    for owner in store.users():
        for record in _records(store, owner, kind):
            if record["id"] == ident and record.get("with") == user:
                return owner, record
    what = "friend or invitation" if kind == FRIEND else f"{kind} or invitation"
    raise Refused(404, f"you have no {what} {ident!r}; see 'cardfile "
                       f"{'friends' if kind == FRIEND else kind + 's'} list'")


def settle(grants: Grants, user: str, ident: str, accept: bool, kind: str = FRIEND
           ) -> tuple[str, dict[str, Any]]:
    """Accept or decline an invitation sent to ``user``: (its owner, the record)."""
    with grants.store.locked():
        owner, record = _find(grants.store, user, ident, kind)
        if owner == user or record.get("state") != "invited" or not _live(record):
            raise Refused(409, "this is not an invitation you can answer (it was sent "
                               "by you, answered already, or it expired)")
        data = grants.store.read(owner)
        for stored in data["grants"]:
            if stored.get("id") == ident:
                stored["state"] = "accepted" if accept else "declined"
                stored["answered"] = iso(now())
                if accept:
                    stored["accepted"] = stored["answered"]
                record = stored
        grants.store.write(owner, data)
    return owner, record


def remove(grants: Grants, user: str, ident: str, kind: str = FRIEND
           ) -> tuple[str, dict[str, Any]]:
    """End (either side) or withdraw an invitation: (its owner, the removed record)."""
    with grants.store.locked():
        owner, record = _find(grants.store, user, ident, kind)
        data = grants.store.read(owner)
        data["grants"] = [g for g in data["grants"] if g.get("id") != ident]
        grants.store.write(owner, data)
    return owner, record


def answer(grants: Grants, storage: Any, user: str, ident: str, accept: bool
           ) -> dict[str, Any]:
    """Accept or decline a friendship sent to ``user``."""
    with storage.acquire_lock("w", user):
        owner, record = settle(grants, user, ident, accept)
        if accept:
            push(grants, storage, owner)
            push(grants, storage, user)
    return describe(user, owner, record)


def end(grants: Grants, storage: Any, user: str, ident: str, keep: bool) -> dict[str, Any]:
    """End a friendship or withdraw an invitation; ``keep``: the friend's card stays, plain."""
    with storage.acquire_lock("w", user):
        owner, record = remove(grants, user, ident)
        other = record["with"] if owner == user else owner
        if record.get("state") == "accepted":
            with views.using(views.CATEGORIES_VIEW):
                _unlink(grants, storage, reader=user, owner=other, ident=ident, keep=keep)
                _unlink(grants, storage, reader=other, owner=user, ident=ident, keep=True)
    return {"id": ident, "friend": record.get("handle") or other if owner == user else other,
            "ended": True, "kept": keep}


# -- copies ----------------------------------------------------------------------
def copy_uid(ident: str, owner: str) -> str:
    return f"friend-{ident}-{owner}"


def friend_copy(text: str, owner: str, ident: str, scopes: list[str],
                existing: str | None) -> str:
    """The owner's me card as a friend sees it (see the module text)."""
    card = CardText(properties.filter_card(text, scopes))
    new = card.line(f"UID:{card_fields.escape_text(copy_uid(ident, owner))}")
    card.replace("UID", [new])
    card.replace(MARKER, [card.line(f"{MARKER}:{card_fields.escape_text(owner)}")])
    kept = card_edit.categories_of(existing) if existing else []
    return card_edit.set_categories(card.text(), card_fields.unique_categories(
        [CATEGORY, *kept]))


def push(grants: Grants, storage: Any, owner: str) -> int:
    """Bring every friend's copy of ``owner``'s me card up to date (under the write lock).

    Returns how many copies were written.
    """
    mine = me(grants, owner)
    if not mine:
        return 0
    try:
        text = _book(storage, owner, mine["book"], create=False).get(mine["uid"]).text
    except Refused:
        return 0  # the me card is gone: copies stay as they were
    written = 0
    with views.using(views.CATEGORIES_VIEW):
        for friend, ident in _accepted_friends(grants.store, owner):
            book = _book(storage, friend, _friends_book(grants, friend), create=True)
            existing = book.find_uid(copy_uid(ident, owner))
            old = book.read(existing).text if existing is not None else None
            new = friend_copy(text, owner, ident, shared_scopes(mine), old)
            if new != old:
                book.put(new)
                written += 1
    return written


def card_stored(collection: Any, text: str) -> None:
    """The write hook: a stored card that is someone's me card reaches their friends."""
    owner, _, book = str(collection.path).strip("/").partition("/")
    if not owner or not book or "/" in book:
        return
    grants = grants_for(collection.storage.data_folder)
    try:
        mine = me(grants, owner)
    except Refused:
        return
    if not mine or mine.get("book") != book:
        return
    try:
        uid = card_fields.uid_of(card_fields.parse_lines(text))
    except card_fields.CardSyntaxError:
        return
    if uid == mine.get("uid"):
        push(grants, collection.storage, owner)


def _accepted_friends(store: GrantStore, user: str) -> list[tuple[str, str]]:
    """(friend, friendship id) of every friend who gets copies of ``user``'s card."""
    out = [(r["with"], r["id"]) for r in _records(store, user) if r.get("state") == "accepted"
           and r["with"] not in (r.get("no_copy") or [])]
    for owner in store.users():
        if owner != user:
            out += [(owner, r["id"]) for r in _records(store, owner)
                    if r.get("with") == user and r.get("state") == "accepted"
                    and owner not in (r.get("no_copy") or [])]
    return out


def _parse_copy_uid(uid: str) -> tuple[str, str] | None:
    """(friendship id, owner) of a copy's UID (``friend-<id>-<owner>``), or None."""
    if not uid.startswith("friend-") or len(uid) < 17 or uid[15:16] != "-":
        return None
    return uid[7:15], uid[16:]


def copy_deleted(collection: Any, uid: str) -> None:
    """The delete hook: a friend who deletes their copy of my card wants no more copies.

    Recorded on the friendship (``no_copy``: the readers who deleted theirs),
    so the owner's next edit does not bring it back; the friend undoes it with
    ``want_copy`` ('cardfile friends copy ID'). Ending the friendship deletes
    copies too, but by then the record is gone, so nothing is noted.
    """
    parsed = _parse_copy_uid(uid)
    reader = str(collection.path).strip("/").partition("/")[0]
    if parsed is None or not reader:
        return
    ident, owner = parsed
    grants = grants_for(collection.storage.data_folder)
    with contextlib.suppress(Refused), grants.store.locked():
        for holder in (owner, reader):
            data = grants.store.read(holder)
            for record in data["grants"]:
                if (record.get("kind") == FRIEND and record.get("id") == ident
                        and record.get("state") == "accepted"
                        and {holder, record.get("with")} == {owner, reader}):
                    record["no_copy"] = sorted({*(record.get("no_copy") or []), reader})
                    grants.store.write(holder, data)
                    return


def want_copy(grants: Grants, storage: Any, user: str, ident: str) -> dict[str, Any]:
    """Undo a deleted copy: ``user`` gets the friend's card again, kept up to date."""
    with storage.acquire_lock("w", user):
        with grants.store.locked():
            owner, record = _find(grants.store, user, ident)
            if record.get("state") != "accepted":
                raise Refused(409, "you are not friends yet; accept the invitation first")
            data = grants.store.read(owner)
            for stored in data["grants"]:
                if stored.get("id") == ident:
                    stored["no_copy"] = [r for r in stored.get("no_copy") or [] if r != user]
                    record = stored
            grants.store.write(owner, data)
        push(grants, storage, record["with"] if owner == user else owner)
    return describe(user, owner, record)


def _unlink(grants: Grants, storage: Any, reader: str, owner: str, ident: str,
            keep: bool) -> None:
    """``reader``'s copy of ``owner``'s card: made plain (``keep``) or deleted."""
    with contextlib.suppress(Refused):
        book = _book(storage, reader, _friends_book(grants, reader), create=False)
        row = book.find_uid(copy_uid(ident, owner))
        if row is None:
            return
        if not keep:
            book.delete(row.href)
            return
        card = CardText(book.read(row).text)
        card.replace(MARKER, [])
        book.put(card_edit.remove_category(card.text(), CATEGORY))


def _marker(text: str) -> bool:
    return any(p is not None and p.name == MARKER for p in CardText(text).parsed)


def _friends_book(grants: Grants, user: str) -> str:
    mine = me(grants, user)
    return str(mine["book"]) if mine else DEFAULT_BOOK


def _book(storage: Any, user: str, book: str, create: bool) -> model.AddressBook:
    """A book of ``user`` while the caller holds the storage write lock."""
    path = model.book_path(user, book)
    collection = next(iter(storage.discover(path)), None)
    if collection is None and create:
        storage.create_collection(f"/{user}/")
        storage.create_collection(path, props={"tag": "VADDRESSBOOK",
                                               "D:displayname": book.capitalize()})
        collection = next(iter(storage.discover(path)), None)
    if not isinstance(collection, model.Collection) or collection.tag != "VADDRESSBOOK":
        raise Refused(404, f"there is no address book {path}")
    return model.AddressBook(collection, user, book)


_GRANTS: dict[str, Grants] = {}


def grants_for(data_folder: str) -> Grants:
    """The grants of a data folder, one model per folder in this process (its cache)."""
    found = _GRANTS.get(data_folder)
    if found is None:
        found = _GRANTS[data_folder] = Grants(GrantStore(data_folder))
    return found
