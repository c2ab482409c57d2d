"""Recording every change of a book, and reading its trash and versions back.

The storage (``storage.py``) calls ``record_write``/``record_delete`` from
``store_card`` and ``delete``: the one place every CardDAV PUT and DELETE,
API edit, import, merge, category edit and restore lands. So nothing can
change a card without leaving its prior text here, with who did it and with
which client (``actor.py``).

Where it lives and why: ``history/<user>/<book>/history.sqlite3`` in the data
folder, one SQLite file per book (``store/history.py``); with the PostgreSQL
store, tables of that database (``store/pg_history.py``), so every server of
it records into and reads one history, trash and guard per book. Not in the card
index, which is derived and may be deleted and rebuilt at any time; not in
the book's folder, which a client's DELETE of the whole collection removes
(exactly when the history is most wanted). A backup archives it; the
retention (``[storage] history_days``, 30 by default) and size bound
(``history_max_mb``, per book) are applied as it is written.

The mass-change guard watches deletions and "emptied" cards (a card that had
emails, phones, addresses or notes replaced by one with none) per user and
client: more than ``mass_change_share`` of the book within
``mass_change_minutes`` raises an alert (logged, shown on the web page, with
the time just before it began to restore to). The changes themselves are
applied: a client that is refused mid-sync breaks worse.
"""

from __future__ import annotations

import datetime
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardfile.plugin.contacts import actor
from cardfile.plugin.radicale_adapter import radicale_logger as logger
from cardfile.plugin.store.history import FILE_NAME as HISTORY_FILE
from cardfile.plugin.store.history import Alert, Change, Event, HistoryBackend, HistoryStore
from cardfile.plugin.store.pg_history import PgHistoryStore
from cardfile.plugin.store.postgres import PgStore

HISTORY_FOLDER = "history"
_PRUNE_EVERY = 500
_PRUNE_SECONDS = 3600
#: Properties that make a card worth having; a card left with none of them is "emptied".
_SUBSTANCE = frozenset({"EMAIL", "TEL", "ADR", "NOTE", "ORG", "URL", "BDAY", "PHOTO", "TITLE",
                        "NICKNAME", "IMPP", "X-SOCIALPROFILE"})


@dataclass(frozen=True)
class HistorySettings:
    days: float = 30.0
    max_mb: float = 500.0
    guard_share: float = 0.25
    guard_minutes: float = 15.0
    guard_min: int = 20

    @property
    def enabled(self) -> bool:
        return self.days > 0


def settings_from(option: Callable[[str, str], str]) -> HistorySettings:
    """The ``[storage]`` options (``option(name, default)``); a bad value is the default."""
    defaults = HistorySettings()

    def number(name: str, default: float) -> float:
        try:
            value = float(option(name, str(default)))
        except ValueError:
            logger.warning("[storage] %s is not a number; using %s", name, default)
            return default
        return value if value >= 0 else default

    return HistorySettings(
        days=number("history_days", defaults.days),
        max_mb=number("history_max_mb", defaults.max_mb),
        guard_share=number("mass_change_share", defaults.guard_share),
        guard_minutes=number("mass_change_minutes", defaults.guard_minutes),
        guard_min=int(number("mass_change_min", defaults.guard_min)))


def history_path(data_folder: str, book_path: str) -> str:
    """``history/<user>/<book>/history.sqlite3`` for the book ``user/book``."""
    return os.path.join(data_folder, HISTORY_FOLDER, *book_path.strip("/").split("/"),
                        HISTORY_FILE)


def has_substance(text: str | None) -> bool:
    """Does the card hold anything beyond a name (email, phone, address, note...)?"""
    if not text:
        return False
    for line in text.splitlines():
        if not line or line[0] in " \t":
            continue
        name = line.split(":", 1)[0].split(";", 1)[0].rsplit(".", 1)[-1].upper()
        if name in _SUBSTANCE:
            return True
    return False


def fn_of(text: str | None) -> str:
    """The card's FN, cheaply (for listing the trash without reading texts)."""
    for line in (text or "").splitlines():
        upper = line[:3].upper()
        if upper == "FN:" or upper == "FN;":
            return line.split(":", 1)[1].strip().replace("\\,", ",")[:200]
    return ""


class BookHistory:
    """The history of one book: recording (under the write lock) and the guard."""

    def __init__(self, store: HistoryBackend, settings: HistorySettings, book_path: str,
                 count_cards: Callable[[int | None], int]) -> None:
        self.store = store
        self.settings = settings
        self.book_path = book_path
        self.count_cards = count_cards

    @property
    def owner(self) -> str:
        return self.book_path.strip("/").split("/", 1)[0]

    def _change(self, href: str, uid: str, action: str, before: str | None, fn: str,
                emptied: bool = False) -> Change:
        who = actor.current()
        return Change(time.time_ns(), uid, href, action, before, fn[:200],
                      who.user or self.owner, who.client, who.agent, who.via, emptied)

    def record_write(self, href: str, old_text: str | None, old_uid: str, new_text: str,
                     new_uid: str, fn: str) -> None:
        changes = []
        if old_text is not None and old_uid and old_uid != new_uid:
            # The href now holds another contact: the old one is gone.
            changes.append(self._change(href, old_uid, "deleted", old_text, fn_of(old_text)))
            old_text = None
        if old_text is None:
            changes.append(self._change(href, new_uid, "added", None, fn))
        elif old_text != new_text:
            emptied = has_substance(old_text) and not has_substance(new_text)
            changes.append(self._change(href, new_uid, "changed", old_text, fn, emptied))
        self._record(changes)

    def record_delete(self, href: str, uid: str, text: str | None, fn: str) -> None:
        self._record([self._change(href, uid, "deleted", text, fn or fn_of(text))])

    def record_deletes(self, cards: list[tuple[str, str, str]]) -> None:
        """(href, uid, text) of every card of a book that is being deleted as a whole.

        Recorded before the book goes (its files are read for the trash), so the
        mass-change guard is told that none of its cards remain: counted, they
        made its alert say "deleted 100 of 200 contacts" of a book of 100.
        """
        self._record([self._change(href, uid, "deleted", text, fn_of(text))
                      for href, uid, text in cards], remaining=0)

    def _record(self, changes: list[Change], remaining: int | None = None) -> None:
        """Record ``changes``; ``remaining``: the book's cards left after them, when known."""
        if not changes:
            return
        try:
            self.store.record(changes)
        except Exception:  # the card is written already: a failed PUT would be worse
            logger.exception("Could not record %d change(s) of %r in its history",
                             len(changes), self.book_path)
            return
        _maintenance.after_record(self, len(changes))
        # A restore the user asked for is no accident to warn about.
        destructive = [c for c in changes if (c.action == "deleted" or c.emptied)
                       and not c.via.startswith("restore")]
        if destructive:
            try:
                _guard.note(self, destructive, remaining)
            except Exception:  # the change is written and recorded: the guard only warns
                logger.exception("Could not count the recent deletions in %r for the "
                                 "mass-change guard", self.book_path)

    def prune(self) -> int:
        cutoff = time.time_ns() - int(self.settings.days * 86400e9)
        return self.store.prune(cutoff, int(self.settings.max_mb * 1024 * 1024))

    # -- reading ----------------------------------------------------------------
    def since_ns(self) -> int:
        """How far back the history goes: its start, or the retention window's edge."""
        window = time.time_ns() - int(self.settings.days * 86400e9)
        return max(self.store.since_ns(), window)

    def text(self, digest: bytes | None) -> str | None:
        return self.store.text(digest) if digest else None


class _Maintenance:
    """Prunes each book's history at its first write in a process, then now and then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float]] = {}

    def after_record(self, book: BookHistory, count: int) -> None:
        with self._lock:
            written, last = self._state.get(book.store.path, (0, 0.0))
            written += count
            due = not last or written >= _PRUNE_EVERY or time.monotonic() - last > _PRUNE_SECONDS
            self._state[book.store.path] = (0, time.monotonic()) if due else (written, last)
        if due:
            try:
                dropped = book.prune()
            except Exception:
                logger.exception("Could not prune the history of %r", book.book_path)
                return
            if dropped:
                logger.info("History of %r: %d change(s) older than %g days or over %g MB "
                            "dropped", book.book_path, dropped, book.settings.days,
                            book.settings.max_mb)


class _Guard:
    """Counts recent deletions and emptied cards per book, user and client.

    Counted from the book's history itself, not in memory: the server's
    worker processes each record some of one phone's deletions, and only
    together are they a mass change. With the PostgreSQL store the history is
    the database's, so the same holds for several servers.
    """

    def note(self, book: BookHistory, changes: list[Change], remaining: int | None = None
             ) -> None:
        settings = book.settings
        if settings.guard_share <= 0 or settings.guard_minutes <= 0:
            return
        window_ns = int(settings.guard_minutes * 60e9)
        first = changes[0]
        edge = changes[-1].time_ns - window_ns
        snapshot = book.store.destructive_since(first.user, first.client, edge)
        if len(snapshot) < settings.guard_min:
            return
        deleted = sum(1 for _, is_delete in snapshot if is_delete)
        emptied = len(snapshot) - deleted
        # The book's size when the run began: what is left and what the run deleted.
        # Counted only as far as decides it (exact when the run is a mass change):
        # once a run reached guard_min, counting all of a 100,000-card book was
        # 5.6 ms of each of its deletions (DELETE p50 8 ms against 3 ms at 10,000).
        enough = math.ceil(len(snapshot) / settings.guard_share)
        size_before = (book.count_cards(enough) if remaining is None else remaining) + deleted
        if len(snapshot) <= settings.guard_share * max(size_before, 1):
            return
        try:
            self._alert(book, first, snapshot, deleted, emptied, size_before, edge)
        except Exception:
            logger.exception("Could not record the mass-change alert of %r", book.book_path)

    @staticmethod
    def _alert(book: BookHistory, first: Change, snapshot: list[tuple[int, bool]],
               deleted: int, emptied: int, size_before: int, edge: int) -> None:
        store = book.store
        now = snapshot[-1][0]
        open_alert = store.open_alert(first.user, first.client, edge)
        if open_alert is not None:
            store.raise_alert(Alert(open_alert.id, open_alert.time_ns, open_alert.since_ns,
                                    now, first.user, first.client,
                                    max(open_alert.deleted, deleted),
                                    max(open_alert.emptied, emptied),
                                    max(open_alert.book_size, size_before)))
            return
        since = snapshot[0][0] - 1_000_000  # a millisecond before the first of them
        store.raise_alert(Alert(0, now, since, now, first.user, first.client, deleted,
                                emptied, size_before))
        moment = f"'{describe_time(since, precise=True)}'"
        logger.warning(
            "Mass change in %r: %s with %s deleted %d and emptied %d of %d contacts within "
            "%g minutes. The changes were applied; to undo them: cardfile restore-to %s "
            "--user %s --book %s (or the banner on the web page)", book.book_path,
            first.user, first.client or "an unknown client", deleted, emptied, size_before,
            book.settings.guard_minutes, moment, book.owner,
            book.book_path.strip("/").split("/")[-1])


_maintenance = _Maintenance()
_guard = _Guard()


class HistoryStores:
    """The open history databases of one storage (one connection per book).

    ``pg``: the PostgreSQL store when the cards are there; each book's history
    is then in that database (``PgHistoryStore``, no file, nothing to open).
    """

    def __init__(self, data_folder: str, settings: HistorySettings,
                 pg: PgStore | None = None) -> None:
        self.data_folder = data_folder
        self.settings = settings
        self.pg = pg
        self._lock = threading.Lock()
        self._stores: dict[str, HistoryStore] = {}

    def store(self, book_path: str, create: bool = True) -> HistoryBackend | None:
        """The book's open database; reopened when its file was replaced (a restore)."""
        if self.pg is not None:
            return PgHistoryStore(self.pg, book_path)
        path = history_path(self.data_folder, book_path)
        with self._lock:
            store = self._stores.get(path)
            if store is not None and not store.is_current():
                store.close()
                store = None
            if store is None:
                if not create and not os.path.exists(path):
                    return None
                store = self._stores[path] = HistoryStore(path)
            return store

    def forget(self, book_path: str) -> None:
        """Close a book's database (its file is about to be moved, by a restore)."""
        path = history_path(self.data_folder, book_path)
        with self._lock:
            store = self._stores.pop(path, None)
        if store is not None:
            store.close()

    def close_all(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()


def describe_time(time_ns: int, precise: bool = False) -> str:
    """Local time, to the second (``precise``: the millisecond), as restore-to reads it."""
    return datetime.datetime.fromtimestamp(time_ns / 1e9).isoformat(
        sep=" ", timespec="milliseconds" if precise else "seconds")


def iso_utc(time_ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(time_ns / 1e9, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_summary(event: Event) -> dict[str, Any]:
    return {"time": iso_utc(event.time_ns), "user": event.user, "client": event.client,
            "action": event.action, "via": event.via}
