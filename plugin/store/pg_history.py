"""A book's history in PostgreSQL: one history, trash and mass-change guard for every server.

With the file store each book's history is a SQLite file in the server's
data folder (``history.py``). With ``[storage] backend = postgresql://...``
several servers share one database, and a history per server would split
what is one book's past: a card deleted through server A would not be in
the trash seen through server B, and a phone's mass delete spread over two
servers would never reach the guard's threshold on either. So the history
moves into the database too, in the tables of migration 2 (``pg_schema.py``),
and this store has exactly the methods of ``HistoryStore``: everything above
it (``contacts/history.py``, ``undo.py``, the API and the CLI) is unchanged.

As in the file store, a change's ``before`` is the key of the card's text
before it; texts are zlib-compressed and stored once per content hash per
book. A history is keyed by the book's path, not its ``collections`` row, so
it outlives the book as ``history/<user>/<book>/`` does: a book deleted as a
whole first puts its cards in the trash, which the book re-created at that
path still shows.

Every write locks the book's ``history_books`` row. That orders the
changes of one book across servers (their ids grow in commit order, which
``events_of`` and ``deletions`` read as time's order) and keeps a prune on
one server from dropping a text another server's change is just pointing
at. It shares the card store's connection pool (``PgStore``); an
unreachable database is a ``Refused(503)``, as for cards.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from cardfile.plugin.store.history import Alert, Change, Event, compressed_texts, start_ns
from cardfile.plugin.store.postgres import PgStore

_EVENT_COLUMNS = ("e.id, e.time_ns, e.uid, e.href, e.action, e.before, e.fn, e.login, "
                  "e.client, e.agent, e.via, e.emptied")
_ALERT_COLUMNS = ("id, time_ns, since_ns, until_ns, login, client, deleted, emptied, "
                  "book_size")
#: The book's id, for reads (a book whose history never began has none: no rows).
_BOOK = "(SELECT id FROM history_books WHERE path = %s)"


def _event(row: tuple[Any, ...]) -> Event:
    (id_, time_ns, uid, href, action, before, fn, user, client, agent, via, emptied) = row
    return Event(int(id_), int(time_ns), str(uid), str(href), str(action),
                 bytes(before) if before is not None else None, str(fn), str(user),
                 str(client), str(agent), str(via), bool(emptied))


def _alert(row: tuple[Any, ...]) -> Alert:
    (id_, time_ns, since_ns, until_ns, user, client, deleted, emptied, book_size) = row
    return Alert(int(id_), int(time_ns), int(since_ns), int(until_ns), str(user), str(client),
                 int(deleted), int(emptied), int(book_size))


class PgHistoryStore:
    """One book's history in the database; every method is one transaction or one query.

    Holds no connection and no state of its own (the pool is the ``PgStore``'s),
    so it is as cheap to make as to keep, and any number of servers can use
    the same book's history at once.
    """

    def __init__(self, pg: PgStore, book_path: str) -> None:
        self.pg = pg
        self.path = book_path.strip("/")

    def is_current(self) -> bool:
        """Always: the tables are not swapped under a server as a restored file is."""
        return True

    def close(self) -> None:
        """Nothing to close: the connections are the card store's pool."""

    # -- the book's row ----------------------------------------------------------
    def _book(self, conn: Any, lock: bool = False) -> tuple[int, int]:
        """(id, since_ns) of this history, begun now if it had not been.

        ``lock``: hold the row until the transaction ends (every writer does).
        """
        sql = "SELECT id, since_ns FROM history_books WHERE path = %s"
        if lock:
            sql += " FOR UPDATE"
        row = conn.execute(sql, (self.path,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO history_books (path, since_ns) VALUES (%s, %s) "
                         "ON CONFLICT (path) DO NOTHING", (self.path, start_ns()))
            row = conn.execute(sql, (self.path,)).fetchone()
        return int(row[0]), int(row[1])

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self.pg._conn() as conn:
            return list(conn.execute(sql, args).fetchall())

    # -- writing -------------------------------------------------------------------
    def record(self, changes: Iterable[Change]) -> list[int]:
        """Record changes in one transaction; returns their ids."""
        changes = list(changes)
        if not changes:
            return []
        texts, digests = compressed_texts(changes)
        with self.pg._conn() as conn, conn.transaction():
            book, _ = self._book(conn, lock=True)
            cur = conn.cursor()
            if texts:
                cur.executemany(
                    "INSERT INTO history_texts (book, hash, data, size) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (book, hash) DO NOTHING",
                    [(book, digest, data, size) for digest, (data, size) in texts.items()])
            cur.executemany(
                "INSERT INTO history_events (book, time_ns, uid, href, action, before, fn, "
                "login, client, agent, via, emptied) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s) RETURNING id",
                [(book, c.time_ns, c.uid, c.href, c.action, digest, c.fn, c.user, c.client,
                  c.agent, c.via, c.emptied) for c, digest in zip(changes, digests, strict=True)],
                returning=True)
            ids = []
            while True:
                row = cur.fetchone()
                ids.append(int(row[0]) if row else 0)
                if not cur.nextset():
                    break
        return ids

    def forget_contact(self, uid: str) -> int:
        """Drop every change of ``uid`` (purging it from the trash); returns how many."""
        with self.pg._conn() as conn, conn.transaction():
            book, _ = self._book(conn, lock=True)
            count = conn.execute("DELETE FROM history_events WHERE book = %s AND uid = %s",
                                 (book, uid)).rowcount
            self._drop_unused_texts(conn, book)
        return int(count or 0)

    def prune(self, cutoff_ns: int, max_bytes: int) -> int:
        """Drop changes older than ``cutoff_ns``, then the oldest until under ``max_bytes``.

        As ``HistoryStore.prune``; the size is what the book's rows take in the
        database (``size_bytes``). Returns how many changes went.
        """
        dropped = 0
        with self.pg._conn() as conn, conn.transaction():
            book, old_since = self._book(conn, lock=True)
            dropped += int(conn.execute(
                "DELETE FROM history_events WHERE book = %s AND time_ns < %s",
                (book, cutoff_ns)).rowcount or 0)
            if dropped:
                self._drop_unused_texts(conn, book)
            since = cutoff_ns
            while max_bytes > 0 and self._bytes(conn, book) > max_bytes:
                # The oldest tenth of what is left goes, until it fits.
                count = int(conn.execute("SELECT count(*) FROM history_events WHERE book = %s",
                                         (book,)).fetchone()[0])
                if not count:
                    break
                row = conn.execute("SELECT time_ns FROM history_events WHERE book = %s "
                                   "ORDER BY id OFFSET %s LIMIT 1",
                                   (book, max(1, count // 10))).fetchone()
                edge = int(row[0]) if row else start_ns()
                dropped += int(conn.execute(
                    "DELETE FROM history_events WHERE book = %s AND time_ns < %s",
                    (book, edge)).rowcount or 0)
                self._drop_unused_texts(conn, book)
                since = max(since, edge)
                if row is None:
                    break
            if since > old_since:
                conn.execute("UPDATE history_books SET since_ns = %s WHERE id = %s",
                             (since, book))
        return dropped

    @staticmethod
    def _drop_unused_texts(conn: Any, book: int) -> None:
        conn.execute("DELETE FROM history_texts t WHERE t.book = %s AND NOT EXISTS "
                     "(SELECT 1 FROM history_events e WHERE e.book = t.book "
                     "AND e.before = t.hash)", (book,))

    @staticmethod
    def _bytes(conn: Any, book: int) -> int:
        """What the book's changes and texts take in their tables (rows, not indexes)."""
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_column_size(e.*)), 0) FROM history_events e "
            "WHERE e.book = %s) + (SELECT coalesce(sum(pg_column_size(t.*)), 0) "
            "FROM history_texts t WHERE t.book = %s)", (book, book)).fetchone()
        return int(row[0])

    def size_bytes(self) -> int:
        """Bytes the book's history takes in the database (its rows)."""
        with self.pg._conn() as conn:
            book, _ = self._book(conn)
            return self._bytes(conn, book)

    # -- reading -------------------------------------------------------------------
    def since_ns(self) -> int:
        """The earliest time the history can go back to (its start or the last prune)."""
        with self.pg._conn() as conn:
            return self._book(conn)[1]

    def text(self, digest: bytes) -> str | None:
        rows = self._query(f"SELECT data FROM history_texts WHERE book = {_BOOK} AND hash = %s",
                           (self.path, digest))
        if not rows:
            return None
        return zlib.decompress(bytes(rows[0][0])).decode("utf-8")

    def events_of(self, uid: str) -> list[Event]:
        """Every recorded change of one contact, oldest first."""
        return [_event(r) for r in self._query(
            f"SELECT {_EVENT_COLUMNS} FROM history_events e WHERE e.book = {_BOOK} "
            "AND e.uid = %s ORDER BY e.id", (self.path, uid))]

    def latest(self, uid: str) -> Event | None:
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM history_events e WHERE "
                           f"e.book = {_BOOK} AND e.uid = %s ORDER BY e.id DESC LIMIT 1",
                           (self.path, uid))
        return _event(rows[0]) if rows else None

    def deletions(self, since_ns: int) -> list[Event]:
        """The newest change of each contact whose newest change is a deletion, newest first."""
        return [_event(r) for r in self._query(
            f"SELECT {_EVENT_COLUMNS} FROM history_events e WHERE e.book = {_BOOK} "
            "AND e.action = 'deleted' AND e.time_ns >= %s AND e.id = (SELECT max(id) "
            "FROM history_events WHERE book = e.book AND uid = e.uid) ORDER BY e.id DESC",
            (self.path, since_ns))]

    def first_changes_after(self, time_ns: int) -> list[Event]:
        """For each contact changed after ``time_ns``, its first change after it."""
        return [_event(r) for r in self._query(
            f"SELECT {_EVENT_COLUMNS} FROM history_events e JOIN (SELECT min(id) AS first "
            f"FROM history_events WHERE book = {_BOOK} AND time_ns > %s GROUP BY uid) f "
            "ON e.id = f.first ORDER BY e.id", (self.path, time_ns))]

    def count(self) -> int:
        return int(self._query(f"SELECT count(*) FROM history_events WHERE book = {_BOOK}",
                               (self.path,))[0][0])

    def destructive_since(self, user: str, client: str, since_ns: int
                          ) -> list[tuple[int, bool]]:
        """(time, is a deletion) of this user and client's deletions and emptied cards.

        Counted over every server's changes: a phone whose deletions land on
        several servers is one phone to the guard. Restores are left out.
        """
        return [(int(t), bool(d)) for t, d in self._query(
            f"SELECT time_ns, action = 'deleted' FROM history_events WHERE book = {_BOOK} "
            "AND time_ns >= %s AND login = %s AND client = %s "
            "AND (action = 'deleted' OR emptied) AND via NOT LIKE 'restore%%' ORDER BY id",
            (self.path, since_ns, user, client))]

    # -- mass-change alerts ------------------------------------------------------------
    def open_alert(self, user: str, client: str, after_ns: int) -> Alert | None:
        """The undismissed alert of this user and client that lasted past ``after_ns``."""
        rows = self._query(f"SELECT {_ALERT_COLUMNS} FROM history_alerts WHERE "
                           f"book = {_BOOK} AND NOT dismissed AND login = %s AND client = %s "
                           "AND until_ns >= %s ORDER BY id DESC LIMIT 1",
                           (self.path, user, client, after_ns))
        return _alert(rows[0]) if rows else None

    def raise_alert(self, alert: Alert) -> int:
        """Raise a new alert (``id`` 0) or extend one; returns its id.

        Two servers may each see a run cross the threshold at once and both
        find no open alert: under the book's lock, a new alert that overlaps
        an open one of the same user and client extends it instead, so one
        run is one alert. Counts only grow (another server may have counted
        more of the run already).
        """
        with self.pg._conn() as conn, conn.transaction():
            book, _ = self._book(conn, lock=True)
            alert_id = alert.id
            if not alert_id:
                row = conn.execute(
                    "SELECT id FROM history_alerts WHERE book = %s AND NOT dismissed AND "
                    "login = %s AND client = %s AND until_ns >= %s ORDER BY id DESC LIMIT 1",
                    (book, alert.user, alert.client, alert.since_ns)).fetchone()
                alert_id = int(row[0]) if row else 0
            if alert_id:
                conn.execute(
                    "UPDATE history_alerts SET since_ns = LEAST(since_ns, %s), "
                    "until_ns = GREATEST(until_ns, %s), deleted = GREATEST(deleted, %s), "
                    "emptied = GREATEST(emptied, %s), book_size = GREATEST(book_size, %s) "
                    "WHERE id = %s AND book = %s",
                    (alert.since_ns, alert.until_ns, alert.deleted, alert.emptied,
                     alert.book_size, alert_id, book))
                return alert_id
            row = conn.execute(
                "INSERT INTO history_alerts (book, time_ns, since_ns, until_ns, login, client, "
                "deleted, emptied, book_size) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id", (book, alert.time_ns, alert.since_ns, alert.until_ns,
                                 alert.user, alert.client, alert.deleted, alert.emptied,
                                 alert.book_size)).fetchone()
            return int(row[0])

    def alerts(self) -> list[Alert]:
        """Undismissed alerts, newest first."""
        return [_alert(r) for r in self._query(
            f"SELECT {_ALERT_COLUMNS} FROM history_alerts WHERE book = {_BOOK} "
            "AND NOT dismissed ORDER BY id DESC", (self.path,))]

    def dismiss_alert(self, alert_id: int) -> bool:
        """Dismiss one of this book's alerts (ids are the database's: another book's is not)."""
        with self.pg._conn() as conn, conn.transaction():
            return bool(conn.execute(
                f"UPDATE history_alerts SET dismissed = true WHERE id = %s AND book = {_BOOK} "
                "AND NOT dismissed", (alert_id, self.path)).rowcount)
