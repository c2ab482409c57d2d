"""One refresh of a source: pull what changed, then write it to the source's book.

Pulling and writing are separate steps. Everything is fetched first (no lock
held while the network is slow); only a complete, readable pull is then
applied, in batches under the storage write lock, through ``AddressBook``
(the one write path: the same checks as a CardDAV PUT, the index and sync
tokens kept right). A failure before that point changes nothing; a card
that cannot be stored is reported and skipped, the rest arrives. The user's
own books are never touched here (``consolidate.py`` does that, for
``into = main``, through the same write path).

The state remembers, per source card, its ETag at the source and the UID it
has here, plus the sync token: the next refresh asks only for changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import model
from cardfile.plugin.contacts.sources import carddav, files, registry, secrets
from cardfile.plugin.contacts.sources.fetch import (
    NETWORK,
    SIGN_IN,
    Client,
    Limits,
    SourceFailure,
    display_url,
)
from cardfile.plugin.contacts.sources.registry import Source
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import etag_of
from cardfile.plugin.vcard import card_fields

log = logging.getLogger("cardfile")
MAX_BACKOFF = 6 * 3600
_running: dict[str, threading.Lock] = {}
_running_lock = threading.Lock()


@dataclass
class Pull:
    """A complete answer from the source: what to write and what to remove."""

    upserts: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (etag, text)
    deleted: set[str] = field(default_factory=set)
    unchanged: int = 0
    token: str | None = None
    incremental: bool = False
    problems: list[str] = field(default_factory=list)
    validators: dict[str, str] | None = None
    full_keys: set[str] | None = None  # a full listing: every key the source has


def limits_of(storage: Any) -> Limits:
    configuration = getattr(storage, "configuration", None)

    def option(name: str, default: float) -> float:
        try:
            value = configuration.get("storage", name) if configuration else None
        except KeyError:
            value = None
        try:
            return float(value) if value not in (None, "") else default
        except (TypeError, ValueError):
            return default

    base = Limits()
    return Limits(max_bytes=int(option("source_max_bytes", base.max_bytes)),
                  max_redirects=base.max_redirects,
                  timeout=option("source_timeout", base.timeout),
                  deadline=base.deadline,
                  max_cards=int(option("source_max_cards", base.max_cards)))


def data_dir_of(storage: Any) -> str:
    return os.path.dirname(storage.collection_root_folder())


def refresh(storage: Any, user: str, name: str) -> dict[str, Any]:
    """Refresh one source now; return its last result (also kept in its state)."""
    source, folder = registry.find(storage, user, name)
    key = f"{user}/{name}"
    with _running_lock:
        lock = _running.setdefault(key, threading.Lock())
    with lock:  # one refresh of a source at a time in this process
        return _refresh(storage, source, folder)


def _refresh(storage: Any, source: Source, folder: str) -> dict[str, Any]:
    state = registry.read_state(folder)
    started = time.monotonic()
    client = Client(limits_of(storage))
    result: dict[str, Any] = {"at": time.time(), "status": "ok"}
    try:
        client.username, client.password = secrets.load(data_dir_of(storage), folder)
        pull = _pull(client, source, state)
        counts = _apply(storage, source, state, pull)
        if source.into == "main":
            from cardfile.plugin.contacts.sources import consolidate

            counts.update(consolidate.apply(storage, source, state))
        state.pop("changed", None)
        state.pop("gone", None)
        if pull.token is not None or source.kind == "carddav":
            state["token"] = pull.token
        if pull.validators is not None:
            state["validators"] = pull.validators
        result.update(counts, incremental=pull.incremental, problems=pull.problems[:50],
                      problem_count=len(pull.problems))
        state["failures"] = 0
        state["next_at"] = time.time() + source.interval
        state.pop("needs_sign_in", None)
        message = (f"{counts['added']} added, {counts['updated']} updated, "
                   f"{counts['removed']} removed, {counts['unchanged']} unchanged")
        if pull.problems:
            message += f"; {len(pull.problems)} card(s) skipped"
        result["message"] = message
        state["last_success"] = result["at"]
    except Refused as e:
        kind = getattr(e, "kind", SIGN_IN if e.status == 401 else "failed")
        failures = int(state.get("failures", 0)) + 1
        state["failures"] = failures
        result.update(status="needs sign-in again" if kind == SIGN_IN else
                      ("unreachable" if kind == NETWORK else "failed"),
                      message=e.reason)
        if kind == SIGN_IN:
            state["needs_sign_in"] = True
        backoff = min(source.interval * (2 ** min(failures, 16)), MAX_BACKOFF)
        state["next_at"] = time.time() + max(backoff, source.interval)
        log.warning("Source %s of %s: %s: %s", source.name, source.user, result["status"],
                    e.reason)
    result["seconds"] = round(time.monotonic() - started, 3)
    result["requests"] = client.requests
    state["last"] = result
    with storage.acquire_lock("w", source.user):
        if registry.is_source_folder(folder):  # not removed meanwhile
            registry.write_state(folder, state)
    if result["status"] == "ok":
        log.info("Source %s of %s: %s (%.1f s, %d request(s))", source.name, source.user,
                 result["message"], result["seconds"], client.requests)
    return result


# -- pulling ----------------------------------------------------------------------
def _pull(client: Client, source: Source, state: dict[str, Any]) -> Pull:
    items: dict[str, list[Any]] = state.setdefault("items", {})
    if source.kind == "carddav":
        return _pull_carddav(client, source, state, items)
    if source.kind == "file":
        snapshot = files.pull_url(client, source.url, state.get("validators") or {})
        if snapshot is None:  # 304: the file did not change
            return Pull(unchanged=len(items), incremental=True)
    else:
        snapshot = files.pull_folder(source.url, client.limits.max_cards)
    pull = Pull(problems=snapshot.problems, validators=snapshot.validators or None,
                full_keys=set(snapshot.cards))
    for key, (etag, text) in snapshot.cards.items():
        if items.get(key, [None])[0] == etag:
            pull.unchanged += 1
        else:
            pull.upserts[key] = (etag, text)
    pull.deleted = set(items) - set(snapshot.cards)
    return pull


def _pull_carddav(client: Client, source: Source, state: dict[str, Any],
                  items: dict[str, list[Any]]) -> Pull:
    book_url = source.book_url or source.url
    pull = Pull()
    listing = None
    offers_sync = state.get("offers_sync")
    if offers_sync is None:
        book = carddav.describe(client, book_url)
        if book is None:
            raise SourceFailure("bad answer", f"{display_url(book_url)} is no longer an "
                                              "address book")
        offers_sync = state["offers_sync"] = book.sync
    token = state.get("token")
    if offers_sync and token:
        try:
            listing = carddav.sync_collection(client, book_url, token)
            pull.incremental = True
        except carddav.TokenRefused:
            pull.problems.append("the source no longer accepts the sync token: everything "
                                 "was listed again")
    if listing is None:
        listing = (carddav.sync_collection(client, book_url, "") if offers_sync
                   else carddav.list_etags(client, book_url))
    pull.token = listing.token
    wanted = [key for key, etag in listing.etags.items()
              if not etag or items.get(key, [None])[0] != etag]
    pull.unchanged = len(listing.etags) - len(wanted)
    cards, missing = carddav.multiget(client, book_url, [listing.urls[k] for k in wanted])
    for key in wanted:
        if key in cards:
            etag, text = cards[key]
            pull.upserts[key] = (etag or listing.etags[key], text)
    pull.problems += [f"{href}: listed, but the source did not send it" for href in missing]
    if listing.full:
        pull.full_keys = set(listing.etags)
        pull.deleted = set(items) - set(listing.etags)
    else:
        pull.deleted = listing.deleted & set(items)
    if missing and pull.token:
        # Those cards must be asked for again: keep the old token (changes are idempotent).
        pull.token = state.get("token") if pull.incremental else None
    return pull


# -- applying -----------------------------------------------------------------------
def local_href(key: str) -> str:
    """The file name a source card gets here: its own name if safe, else a hash."""
    base = key.rstrip("/").rsplit("/", 1)[-1]
    if (base.endswith(".vcf") and len(base) <= 120 and radicale.is_safe_name(base)
            and base.isascii() and "\\" not in base):
        return base
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".vcf"


def _apply(storage: Any, source: Source, state: dict[str, Any], pull: Pull) -> dict[str, int]:
    items: dict[str, list[Any]] = state["items"]
    counts = {"added": 0, "updated": 0, "removed": 0, "unchanged": pull.unchanged,
              "skipped": 0}

    @contextlib.contextmanager
    def source_book() -> Iterator[model.AddressBook]:
        with model.open_book(storage, source.user, source.book, "w") as book, \
                registry.writing():
            yield book

    def delete(book: model.AddressBook, key: str) -> None:
        uid = items.pop(key, [None, None])[1]
        if uid and book.find(uid) is not None:
            book.delete(uid)
            counts["removed"] += 1
            state.setdefault("gone", []).append(uid)

    def upsert(book: model.AddressBook, entry: tuple[str, tuple[str, str]]) -> None:
        key, (etag, text) = entry
        uid = _upsert(book, items, key, etag, text, counts, pull.problems)
        if uid:
            state.setdefault("changed", []).append(uid)

    # Others are answered between short holds of the lock (model.HOLD_SECONDS).
    model.in_short_holds(source_book, sorted(pull.deleted), delete)
    model.in_short_holds(source_book, sorted(pull.upserts.items()), upsert)
    return counts


def _upsert(book: model.AddressBook, items: dict[str, list[Any]], key: str, etag: str,
            text: str, counts: dict[str, int], problems: list[str]) -> str | None:
    """Store one source card; return its UID here if it changed."""
    href = local_href(key)
    old_uid = items.get(key, [None, None])[1]
    try:
        uid = card_fields.uid_of(card_fields.parse_lines(text))
    except card_fields.CardSyntaxError:
        uid = ""
    row = book.find(uid) if uid else None
    if row is not None and row.href == href and row.etag == etag_of(text):
        items[key] = [etag, uid]
        counts["unchanged"] += 1
        return None
    try:
        stored = book.put(text, href=href)
    except Refused as e:
        problems.append(f"{key.rsplit('/', 1)[-1]}: {e.reason}")
        counts["skipped"] += 1
        items[key] = [etag, old_uid]  # not fetched again until it changes at the source
        return None
    if old_uid and old_uid != stored.uid and book.find(old_uid) is not None:
        book.delete(old_uid)
    counts["updated" if old_uid else "added"] += 1
    items[key] = [etag, stored.uid]
    return stored.uid


# -- status -------------------------------------------------------------------------
def due(state: dict[str, Any], now: float) -> bool:
    """Should the refresher sync this source now? (Not while it needs a new sign-in.)"""
    return not state.get("needs_sign_in") and float(state.get("next_at", 0)) <= now


def status_of(source: Source, folder: str) -> dict[str, Any]:
    """What ``list``, ``show`` and the API show: never the password."""
    state = registry.read_state(folder)
    last = state.get("last") or {}
    status = ("needs sign-in again" if state.get("needs_sign_in")
              else last.get("status", "not synced yet"))
    return {
        "name": source.name, "kind": source.kind, "url": display_url(source.url)
        if source.kind != "folder" else source.url,
        "book": source.book, "book_url": display_url(source.book_url) if source.book_url
        else None, "into": source.into, "interval": source.interval,
        "username": source.username or None, "has_password": secrets.has_secret(folder),
        "status": status, "message": last.get("message", ""),
        "last_sync": last.get("at"), "last_success": state.get("last_success"),
        "next_sync": state.get("next_at"), "cards": sum(
            1 for v in (state.get("items") or {}).values() if v[1]),
        "incremental": last.get("incremental", False),
        "seconds": last.get("seconds"), "requests": last.get("requests"),
        "problems": last.get("problems", []),
        "counts": {k: last.get(k, 0) for k in ("added", "updated", "removed", "unchanged",
                                               "skipped")},
    }
