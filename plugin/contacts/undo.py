"""The way back: the trash, a contact's versions, and restoring a book to a time.

Every restore is an ordinary change through ``AddressBook.put``/``delete``,
the same write path as a CardDAV PUT: it is recorded in the history itself
(so a restore can be undone too), and every client picks it up at its next
sync, a card restored from the trash as a new card at its old href.

The state of a contact at time T is read from the history: for a contact
changed after T, the text before its first change after T (none if that
change added it). A contact not changed since T is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardfile.plugin.contacts import actor, card_diff, export
from cardfile.plugin.contacts.history import BookHistory, describe_time
from cardfile.plugin.contacts.model import AddressBook, Contact
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.history import Event
from cardfile.plugin.vcard.card_fields import category_key


def book_history(book: AddressBook) -> BookHistory:
    """The book's history, or a refusal that says why there is none."""
    if book.collection.storage.book_history(book.collection) is None:
        raise Refused(404, "history is turned off on this server ([storage] "
                             "history_days = 0)")
    history = book.collection.history
    if history is None:
        raise Refused(404, f"{book.name!r} shows a category of another book; its trash and "
                             "history are in that book")
    return history


# -- trash ------------------------------------------------------------------------
@dataclass(frozen=True)
class TrashItem:
    uid: str
    href: str
    fn: str
    deleted: Event
    text: str | None


def trash(book: AddressBook) -> list[TrashItem]:
    """Contacts deleted within the retention window and not back since, newest first."""
    history = book_history(book)
    items = []
    for event in history.store.deletions(history.since_ns()):
        if book.find_uid(event.uid) is not None:
            continue  # back already (added again by a client, or another program)
        items.append(TrashItem(event.uid, event.href, event.fn, event, None))
    return items


def trash_item(book: AddressBook, uid: str) -> TrashItem:
    history = book_history(book)
    event = history.store.latest(uid)
    if (event is None or event.action != "deleted" or event.time_ns < history.since_ns()
            or book.find_uid(uid) is not None):
        raise Refused(404, f"{uid!r} is not in the trash (see the trash list; deleted "
                             f"contacts stay {history.settings.days:g} days)")
    return TrashItem(uid, event.href, event.fn, event, history.text(event.before))


def restore_from_trash(book: AddressBook, uid: str) -> Contact:
    """Put a deleted contact back with its UID and href, as a new change."""
    item = trash_item(book, uid)
    if item.text is None:
        raise Refused(410, f"the card {uid!r} was deleted when its file could not be read; "
                             "there is no text to restore")
    if book.collection._index.row(book.collection._coll(), item.href) is not None:
        other = book.collection._index.row(book.collection._coll(), item.href)
        raise Refused(409, f"its address {item.href} is now used by another contact "
                             f"({other.uid if other else '?'}); nothing was restored")
    with actor.doing("restore from trash"):
        return book.put(item.text, href=item.href, create_only=True)


def purge(book: AddressBook, uid: str) -> None:
    """Forget a deleted contact for good: its versions go with it."""
    trash_item(book, uid)
    book_history(book).store.forget_contact(uid)


def purge_all(book: AddressBook) -> int:
    items = trash(book)
    store = book_history(book).store
    for item in items:
        store.forget_contact(item.uid)
    return len(items)


# -- versions -------------------------------------------------------------------------
@dataclass
class Version:
    """One version of a contact; ``id`` 0 is the current card."""

    id: int
    text: str | None
    made_by: Event | None  # the change that made it (None: from before the history)
    replaced_by: Event | None  # the change that replaced or deleted it (None: current)
    changes: list[dict[str, object]] = field(default_factory=list)


def versions(book: AddressBook, uid: str) -> list[Version]:
    """Every version of a contact in the window, newest first, each with what changed."""
    history = book_history(book)
    events = history.store.events_of(uid)
    row = book.find_uid(uid)
    if not events and row is None:
        raise Refused(404, f"no contact {uid!r} in {book.path}, and none in its history")
    current = book.read(row).text if row is not None else None
    befores = [history.text(e.before) for e in events]
    out: list[Version] = []
    if current is not None:
        made = events[-1] if events and events[-1].action != "deleted" else None
        out.append(Version(0, current, made, None))
    for i in range(len(events) - 1, -1, -1):
        if befores[i] is None:
            continue
        made_by = events[i - 1] if i > 0 else None
        out.append(Version(events[i].id, befores[i], made_by, events[i]))
    # What each version changed, against the one before it.
    for version in out:
        if version.made_by is None:
            continue
        index = events.index(version.made_by)
        previous = befores[index] if version.made_by.action != "added" else None
        version.changes = card_diff.diff(previous, version.text)
    return out


def restore_version(book: AddressBook, uid: str, version_id: int) -> Contact:
    """Make an earlier version the current one (a new change; the current one is kept)."""
    found = next((v for v in versions(book, uid) if v.id == version_id and v.id), None)
    if found is None or found.text is None:
        raise Refused(404, f"contact {uid!r} has no version {version_id} (see its history)")
    row = book.find_uid(uid)
    href = row.href if row is not None else None
    if href is None and found.replaced_by is not None:
        taken = book.collection._index.row(book.collection._coll(), found.replaced_by.href)
        href = found.replaced_by.href if taken is None else None
    with actor.doing(f"restore of version {version_id}"):
        return book.put(found.text, href=href)


# -- restore to a time ------------------------------------------------------------------
@dataclass
class Step:
    uid: str
    fn: str
    href: str
    text: str | None  # the card to write; None: delete


@dataclass
class Plan:
    time_ns: int
    category: str | None
    add: list[Step] = field(default_factory=list)
    change: list[Step] = field(default_factory=list)
    delete: list[Step] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.delete)


def _categories(text: str | None) -> set[str]:
    return {category_key(c) for c in export.summary(text)["categories"]} if text else set()


def plan_restore_to(book: AddressBook, time_ns: int, category: str | None = None) -> Plan:
    """What restoring the book (or one category of it) to ``time_ns`` would change."""
    history = book_history(book)
    since = history.since_ns()
    if time_ns < since:
        raise Refused(422, f"the history of {book.path} reaches back to "
                             f"{describe_time(since)} only; choose a later time")
    plan = Plan(time_ns, category)
    wanted = category_key(category) if category else None
    for event in history.store.first_changes_after(time_ns):
        then = history.text(event.before) if event.action != "added" else None
        if event.action != "added" and then is None:
            plan.failed.append(f"{event.uid}: its text at that time was not recorded")
            continue
        row = book.find_uid(event.uid)
        now = book.read(row).text if row is not None else None
        if wanted is not None and wanted not in _categories(then) | _categories(now):
            continue
        fn = event.fn or (row.fn if row else "") or event.uid
        if then is None and now is not None:
            plan.delete.append(Step(event.uid, row.fn if row else fn,
                                    row.href if row else event.href, None))
        elif then is not None and now is None:
            plan.add.append(Step(event.uid, fn, event.href, then))
        elif then is not None and now is not None and then != now:
            plan.change.append(Step(event.uid, fn, row.href if row else event.href, then))
    return plan


def apply(book: AddressBook, plan: Plan) -> Plan:
    """Carry a plan out: deletions first (freeing hrefs), then changes, then additions."""
    with actor.doing(f"restore-to {describe_time(plan.time_ns)}"):
        for step in plan.delete:
            try:
                book.delete(step.uid)
            except Refused as e:
                plan.failed.append(f"{step.uid}: {e.reason}")
        for step in plan.change:
            assert step.text is not None
            try:
                book.put(step.text)
            except Refused as e:
                plan.failed.append(f"{step.uid}: {e.reason}")
        for step in plan.add:
            assert step.text is not None
            taken = book.collection._index.row(book.collection._coll(), step.href)
            try:
                book.put(step.text, href=None if taken is not None else step.href)
            except Refused as e:
                plan.failed.append(f"{step.uid}: {e.reason}")
    return plan
