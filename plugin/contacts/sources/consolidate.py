"""``--into main``: a source's contacts also in the user's own book, with provenance.

Each source card is matched to a contact of the main book (``contacts``) by
the dedupe tiers (same UID, or a shared email or phone with a compatible
name: ``dedupe.Matcher``, as imports match), or becomes a new contact. Every
property it brings carries the parameter ``X-CARDFILE-SOURCE=<name>``: that
is the provenance, and it is what makes the rest exact:

- a later change at the source replaces only the lines with its name;
- a value the contact already has (the user's own, or another source's) is
  not added twice, and a single-valued property the contact has (FN, N,
  BDAY...) stays the user's;
- a card deleted at the source, or disconnecting the source, removes only
  the lines with its name, and the contact itself only if nothing else is
  left on it.

All writes go through ``AddressBook.put``/``delete``, like every other
change. The link (source UID → main UID) is kept in the source's state.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cardfile.plugin.contacts import dedupe, model
from cardfile.plugin.contacts.importers.book import matcher_of, people_of
from cardfile.plugin.contacts.sources.registry import Source
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_fields, normalize
from cardfile.plugin.vcard.card_fields import ContentLine

PARAM = "X-CARDFILE-SOURCE"
MAIN_BOOK = "contacts"
_STRUCTURAL = frozenset({"BEGIN", "END", "VERSION", "UID", "PRODID", "REV"})
_SINGLE = frozenset({"FN", "N", "BDAY", "ANNIVERSARY", "GENDER", "KIND", "PHOTO"})


def _is_from(line: ContentLine, name: str) -> bool:
    return [v.lower() for v in line.params.get(PARAM, [])] == [name]


def with_source(main_text: str, source_text: str, name: str) -> str:
    """``main_text`` with ``name``'s lines replaced by those of ``source_text``."""
    lines = card_fields.parse_lines(main_text)
    version = next((ln.value.strip() for ln in lines if ln.name == "VERSION"), "3.0")
    kept = [ln for ln in lines if not _is_from(ln, name) and ln.name not in ("BEGIN", "END")]
    names = {ln.name for ln in kept}
    values = {(ln.name, card_fields.unescape(ln.value).strip().casefold()) for ln in kept}
    added = []
    for line in card_fields.parse_lines(source_text):
        value = (line.name, card_fields.unescape(line.value).strip().casefold())
        if line.name in _STRUCTURAL or value in values or (
                line.name in _SINGLE and line.name in names):
            continue
        params = {k: v for k, v in line.params.items() if k.upper() != PARAM}
        added.append(ContentLine(line.group, line.name, {**params, PARAM: [name]}, line.value))
        values.add(value)
        names.add(line.name)
    return card_fields.card_text(version, kept + added)


def without_source(main_text: str, name: str) -> str | None:
    """``main_text`` without ``name``'s lines; None if nothing of anyone else is left."""
    lines = card_fields.parse_lines(main_text)
    kept = [ln for ln in lines if not _is_from(ln, name) and ln.name not in ("BEGIN", "END")]
    if len(kept) == len([ln for ln in lines if ln.name not in ("BEGIN", "END")]):
        return main_text
    if not [ln for ln in kept if ln.name not in _STRUCTURAL]:
        return None
    version = next((ln.value.strip() for ln in lines if ln.name == "VERSION"), "3.0")
    if not any(ln.name == "FN" for ln in kept):  # FN was the source's: keep a name
        fn = next((ln for ln in lines if ln.name == "FN"), None)
        if fn is not None:
            kept.append(ContentLine("", "FN", {}, fn.value))
    return card_fields.card_text(version, kept)


def _main_matcher(storage: Any, user: str, region: str) -> dedupe.Matcher:
    """The people of the user's main book (none before it exists), matched after the
    lock is released: a big book's matcher takes seconds to make."""
    try:
        with model.open_book(storage, user, MAIN_BOOK, "r") as main:
            found = people_of(main)
    except Refused as e:
        if e.status != 404:
            raise
        return dedupe.Matcher()
    return matcher_of(found, region)


def apply(storage: Any, source: Source, state: dict[str, Any]) -> dict[str, int]:
    """Bring the changes of the last refresh (``state['changed']``/``['gone']``) into main."""
    links: dict[str, str] = state.setdefault("main", {})
    changed = set(state.pop("changed", []))
    gone = set(state.pop("gone", []))
    counts = {"main_added": 0, "main_merged": 0, "main_withdrawn": 0}
    if not changed and not gone:
        return counts
    texts: dict[str, str] = {}
    with model.open_book(storage, source.user, source.book, "r") as book:
        for uid in changed:
            row = book.find(uid)
            if row is not None:
                texts[uid] = book.read(row).text
    region = normalize.default_region(getattr(storage, "configuration", None))
    matcher = _main_matcher(storage, source.user, region) if any(
        u not in links for u in texts) else None

    def main_book() -> contextlib.AbstractContextManager[model.AddressBook]:
        return model.open_book(storage, source.user, MAIN_BOOK, "w", create=True)

    def withdraw(main: model.AddressBook, uid: str) -> None:
        target = links.pop(uid, None)
        if target and _withdraw(main, target, source.name):
            counts["main_withdrawn"] += 1

    def bring(main: model.AddressBook, entry: tuple[str, str]) -> None:
        uid, text = entry
        row = main.find(links[uid]) if uid in links else None
        if row is None and matcher is not None:
            match = matcher.match(dedupe.person_of(text, region))
            if match is not None and match.sure:
                row = main.find(match.uid)
        try:
            if row is None:
                stored = main.put(with_source(_empty_like(text), text, source.name))
                counts["main_added"] += 1
            else:
                old = main.read(row).text
                new = with_source(old, text, source.name)
                stored = main.put(new) if new != old else main.get(row.uid)
                counts["main_merged"] += 1
        except Refused:
            return  # the card stays in the source's own book; main is unchanged
        links[uid] = stored.uid
        if matcher is not None:
            matcher.add(dedupe.person_of(stored.text, region))

    # Others are answered between short holds of the lock (model.HOLD_SECONDS).
    model.in_short_holds(main_book, sorted(gone), withdraw)
    model.in_short_holds(main_book, sorted(texts.items()), bring)
    return counts


def _empty_like(source_text: str) -> str:
    lines = card_fields.parse_lines(source_text)
    version = next((ln.value.strip() for ln in lines if ln.name == "VERSION"), "3.0")
    uid = card_fields.uid_of(lines)
    return card_fields.card_text(version, [ContentLine("", "UID", {}, uid)])


def _withdraw(main: model.AddressBook, uid: str, name: str) -> bool:
    row = main.find(uid)
    if row is None:
        return False
    text = main.read(row).text
    remaining = without_source(text, name)
    if remaining is None:
        main.delete(uid)
    elif remaining != text:
        main.put(remaining)
    return True


def disconnect(storage: Any, source: Source) -> int:
    """Take every value ``source`` brought out of the main book; return contacts touched."""
    from cardfile.plugin.contacts.sources import registry

    folder = registry.book_folder(storage, source)
    state = registry.read_state(folder)
    links: dict[str, str] = state.get("main", {})
    touched = 0

    def withdraw(main: model.AddressBook, uid: str) -> None:
        nonlocal touched
        touched += _withdraw(main, links[uid], source.name)

    try:
        model.in_short_holds(lambda: model.open_book(storage, source.user, MAIN_BOOK, "w"),
                             sorted(links), withdraw)
    except Refused as e:
        if e.status != 404:
            raise
    return touched
