"""Write imported cards into an address book, merging each into the person it matches.

All writes go through ``model.open_book`` (Radicale's storage lock, atomic
files, index and sync tokens kept right). Cards are written in batches, one
lock per batch of at most ``model.HOLD_SECONDS``, so a running server answers
requests between batches of a big import. The book's people are read from
the index (emails, phones, names and UIDs), not from every file, so matching
a 100,000-card book is quick.

The same functions apply ``cardfile dedupe --apply`` (in short holds too,
leaving a cluster someone changed after it was matched: ``merge_unchanged``)
and undo merges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import actor, dedupe
from cardfile.plugin.contacts.card_check import parse_single_card
from cardfile.plugin.contacts.importers.groups import member_uid
from cardfile.plugin.contacts.importers.model import Parsed, Problem, SourceCard
from cardfile.plugin.contacts.model import AddressBook, in_short_holds, open_book
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard.card_fields import CardSyntaxError


@dataclass
class Report:
    read: int = 0
    added: int = 0
    merged: int = 0
    unchanged: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "added": self.added, "merged": self.merged,
                "unchanged": self.unchanged, "skipped": self.skipped,
                "skipped_reasons": [str(p) for p in self.problems if p.skipped],
                "repairs": [str(p) for p in self.problems if not p.skipped],
                "merge_ids": self.merges, "formats": self.formats}


#: What matching reads of a book (``people_of``): (id, href, uid, fn, kind) of every
#: card, and (id, name, value) of their EMAIL, TEL, N and alias values.
People = tuple[list[tuple[int, str, str, str, str]], list[tuple[int, str, str]]]


def people_of(book: AddressBook) -> People:
    """Everyone in ``book``, from the index (no card file is read): take the lock for this
    only, and make the matcher (``matcher_of``) once it is released."""
    return book.collection._index.people(book.collection._coll(), dedupe.MERGED_UID)


def matcher_of(found: People, region: str) -> dedupe.Matcher:
    """A matcher of the people ``people_of`` read.

    Every email and phone is normalised here (email-validator, phonenumbers):
    13 s for a 100,000-card book, which held the storage lock, and every other
    user with it, while an import, a source's sync or a duplicate listing began.
    """
    matcher = dedupe.Matcher()
    cards, values = found
    people: dict[int, dedupe.Person] = {}
    for item_id, href, uid, fn, kind in cards:
        if kind not in ("group",):
            people[item_id] = dedupe.Person(uid, dedupe.real_name(fn), href=href)
    for item_id, name, value in values:
        person = people.get(item_id)
        if person is None or not value.strip():
            continue
        if name == "EMAIL":
            person.emails.add(dedupe.email_key(value))
        elif name == "TEL" and sum(c.isdigit() for c in value) >= 3:
            person.phones.add(dedupe.phone_key(value, region))
        elif name == "N":
            n_name = dedupe.real_name(value)
            if n_name and not person.name:
                person.name = n_name
            elif n_name and n_name != person.name:
                person.other_names.add(n_name)
        else:
            person.aliases.add(value.strip())
    for person in people.values():
        matcher.add(person)
    return matcher


def changes_token(book: AddressBook) -> str:
    """The book's sync token now: ``merge_unchanged`` asks what changed since."""
    return book.collection.sync("")[0]


def merge_unchanged(hold: Callable[[], AbstractContextManager[AddressBook]],
                    store: dedupe.MergeStore, sure: list[dedupe.Cluster],
                    people: dict[str, dedupe.Person], token: str, region: str
                    ) -> tuple[list[str], list[list[str]], list[tuple[list[str], str]]]:
    """Merge each sure cluster, matched from the book as it was at ``token``,
    unless one of its cards changed since; (merge ids, clusters left, clusters
    refused with the reason: a merged card over the size limit, say).

    ``cardfile dedupe --apply`` matched and merged in one hold of the write
    lock, so that nothing changed in between: about 7 s at 100,000 cards, in
    which every user waited. Now the matching is done off the lock (a
    listing's way) and the merges in short holds; before each, the book's
    sync changes since the last look tell whether anyone else changed one of
    the cluster's cards (the merges' own changes are told apart: clusters
    share no card). Such a cluster is left for the next run, as is every
    cluster once the token is no longer answered (the index rebuilt).
    """
    merged: list[str] = []
    left: list[list[str]] = []
    refused: list[tuple[list[str], str]] = []
    ours: set[str] = set()
    others: set[str] = set()
    since: list[str | None] = [token]

    def merge(book: AddressBook, cluster: dedupe.Cluster) -> None:
        uids, reasons = cluster
        hrefs = {people[uid].href for uid in uids}
        if since[0] is not None:
            try:
                since[0], changed = book.collection.sync(since[0])
            except ValueError:  # the token is no longer answered: nothing can be told
                since[0] = None
            else:
                others.update(href for href in changed if href not in ours)
        if since[0] is None or not hrefs.isdisjoint(others):
            left.append(uids)
            return
        ours.update(hrefs)
        try:
            merged.append(merge_cluster(book, store, uids, region,
                                        "dedupe: " + "; ".join(reasons)))
        except Refused as e:  # nothing of this cluster written; the others go on
            refused.append((uids, e.reason))

    in_short_holds(hold, sure, merge)
    return merged, left, refused


class Target:
    """The book being written, or (dry run) an in-memory overlay over it."""

    def __init__(self, storage: Any, user: str, book: str, dry_run: bool) -> None:
        self.storage, self.user, self.book_name, self.dry_run = storage, user, book, dry_run
        self.book: AddressBook | None = None
        self.overlay: dict[str, str] = {}

    @contextmanager
    def session(self, reading: bool = False) -> Iterator[None]:
        """The book under the storage lock (``self.book``; None: not there yet); only
        read with ``reading`` (or a dry run): others may read meanwhile."""
        if self.dry_run and self.storage is None:  # nothing there yet: an empty book
            self.book = None
            yield
        elif self.dry_run or reading:
            try:
                with open_book(self.storage, self.user, self.book_name, "r") as b:
                    self.book = b
                    yield
            except Refused as e:
                if e.status != 404:
                    raise
                self.book = None
                yield
        else:
            with open_book(self.storage, self.user, self.book_name, "w", create=True) as b:
                self.book = b
                yield
        self.book = None

    def text(self, uid: str) -> str:
        if uid in self.overlay:
            return self.overlay[uid]
        assert self.book is not None
        return self.book.get(uid).text

    def put(self, uid: str, text: str, new: bool = False) -> str:
        """Store ``text``; returns its etag ("" in a dry run). ``new``: only as a new
        contact (Refused 412 if one with its UID is in the book by now)."""
        if self.dry_run:
            parse_single_card(text)
            self.overlay[uid] = text
            return ""
        assert self.book is not None
        return self.book.put(text, create_only=new).etag


@actor.part_of("import")
def import_cards(storage: Any, user: str, book: str, parsed: list[Parsed],
                 store: dedupe.MergeStore, region: str, categories: list[str] | None = None,
                 dry_run: bool = False, progress: Callable[[int], None] | None = None
                 ) -> Report:
    report = Report()
    cards: list[SourceCard] = []
    member_of: dict[str, list[str]] = {}
    for p in parsed:
        report.problems.extend(p.problems)
        report.skipped += sum(1 for x in p.problems if x.skipped)
        cards.extend(p.cards)
        for name, uids in p.groups.items():
            for uid in uids:
                member_of.setdefault(member_uid(uid), []).append(name)
    report.read = len(cards) + report.skipped
    target = Target(storage, user, book, dry_run)
    found: People | None = None
    with target.session(reading=True):
        if target.book is not None:
            found = people_of(target.book)
    matcher = matcher_of(found, region) if found is not None else dedupe.Matcher()
    pending_groups = dict(member_of)

    def import_one(_: None, card: SourceCard) -> None:
        _import_one(target, matcher, store, card, categories or [], member_of,
                    pending_groups, region, report)
        if progress:
            progress(1)

    in_short_holds(target.session, cards, import_one)  # others are answered between
    if pending_groups:
        with target.session():
            _categories_for_existing(target, matcher, pending_groups, report)
    return report


def _import_one(target: Target, matcher: dedupe.Matcher, store: dedupe.MergeStore,
                card: SourceCard, categories: list[str], member_of: dict[str, list[str]],
                pending: dict[str, list[str]], region: str, report: Report) -> None:
    try:
        person = dedupe.person_of(card.text, region)
        # A vCard 4 UID is often "urn:uuid:..." itself; MEMBER names it the same way.
        key = member_uid(person.uid)
        text = dedupe.with_categories(card.text, categories + member_of.get(key, []))
        pending.pop(key, None)
        match = matcher.match(person)
        if match is None or not match.sure:
            try:
                target.put(person.uid, text, new=True)
            except Refused as e:
                if e.status != 412:
                    raise
                # A client stored a card with this UID since the book was read (the
                # import holds the lock in short turns): merged into it, not replaced.
                match = dedupe.Match(person.uid, True, "the same UID (added during the import)")
            else:
                matcher.add(dedupe.person_of(text, region))
                report.added += 1
                return
        existing = target.text(match.uid)
        row = target.book.find_uid(match.uid) if target.book is not None else None
        merged, changed = dedupe.merge_cards(existing, text, region)
        if not changed:
            report.unchanged += 1
            return
        etag = target.put(match.uid, merged)
        matcher.add(dedupe.person_of(merged, region))
        report.merged += 1
        if not target.dry_run:
            report.merges.append(store.record(match.uid, etag, [
                {"text": existing, "uid": match.uid, "stored": True,
                 "href": row.href if row else ""},
                {"text": text, "uid": person.uid, "stored": False, "origin": card.origin}],
                f"import of {card.origin}: {match.reason}"))
    except (Refused, CardSyntaxError, ValueError) as e:
        reason = getattr(e, "reason", str(e))
        report.problems.append(Problem(card.origin, f"not stored: {reason}"))
        report.skipped += 1


def _categories_for_existing(target: Target, matcher: dedupe.Matcher,
                             pending: dict[str, list[str]], report: Report) -> None:
    """Groups in the file whose members are already in the book (not in the file)."""
    for uid, names in pending.items():
        resolved = matcher.resolve(uid)
        if resolved is None or target.book is None and not target.dry_run:
            report.problems.append(Problem("groups", f"member {uid} of {', '.join(names)} is "
                                           "neither in the file nor in the book", False))
            continue
        try:
            text = target.text(resolved)
        except Refused:
            continue
        updated = dedupe.with_categories(text, names)
        if updated != text:
            target.put(resolved, updated)


# -- dedupe --apply and undo ---------------------------------------------------------
@actor.part_of("merge")
def merge_cluster(book: AddressBook, store: dedupe.MergeStore, uids: list[str], region: str,
                  reason: str) -> str:
    """Merge the cards ``uids`` into the most complete one; returns the merge id."""
    contacts = [book.get(uid) for uid in uids]
    contacts.sort(key=lambda c: (-len(c.text.splitlines()), c.uid))
    survivor, others = contacts[0], contacts[1:]
    text = survivor.text
    for other in others:
        text, _ = dedupe.merge_cards(text, other.text, region)
    stored = book.put(text)
    for other in others:
        book.delete(other.uid)
    return store.record(survivor.uid, stored.etag, [
        {"text": c.text, "uid": c.uid, "href": c.href, "stored": True} for c in contacts],
        reason)


@actor.part_of("undo of a merge")
def undo_merge(book: AddressBook, store: dedupe.MergeStore, merge_id: str,
               force: bool = False) -> list[str]:
    """Put the originals of a merge back exactly as they were; returns their UIDs."""
    meta, texts = store.load(merge_id)
    current = book.find_uid(meta["survivor"])
    if current is not None and current.etag != meta["etag"] and not force:
        raise Refused(409, f"contact {meta['survivor']} changed after merge {merge_id}; "
                             "undoing would lose those changes (use --force to undo anyway)")
    originals = [(original, text) for original, text
                 in zip(meta["originals"], texts, strict=True)
                 if original.get("stored")]  # (a card merged from an import never was alone)
    for original, text in originals:
        parse_single_card(text)
        back = (book.find_uid(original["uid"]) if original["uid"] != meta["survivor"]
                else None)
        if back is not None and not force:
            raise Refused(409, f"contact {original['uid']} was stored again after merge "
                                 f"{merge_id} (as {back.href}); undoing would replace it "
                                 "(use --force to undo anyway)")
    if current is not None:
        book.delete(current.uid)
    restored = []
    coll = book.collection._coll()
    for original, text in originals:
        existing = book.find_uid(original["uid"])
        if existing is not None:
            book.delete(existing.uid)
        href = original.get("href") or f"{original['uid']}.vcf"
        if book.collection._index.row(coll, href) is not None:
            href = book.free_href(original["uid"])  # another contact has that name now
        item = radicale.Item(collection_path=book.collection.path.strip("/"), text=text)
        book.collection.upload(href, item)
        restored.append(original["uid"])
    store.mark_undone(merge_id)
    return restored
