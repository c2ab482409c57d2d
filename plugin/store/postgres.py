"""The PostgreSQL store: the cards of every address book, shared by any number of servers.

With ``[storage] backend = postgresql://...`` the truth about cards moves
from the data folder into two tables (``pg_schema.py``): ``collections``
(one row per book, with its revision counter) and ``cards`` (one row per
card or tombstone, with the book revision of its last change). Each server
keeps its folder of ``.vcf`` files and its SQLite index as a *cache* of
these tables, brought up to date from the rows changed since the revision it
last saw (``contacts/shared_books.py``), so every reader, query, fast path
and sync answer stays the one code the file store uses.

Every write is one transaction that locks the book's row (``FOR UPDATE``),
checks the card is still the one the server based its decision on (so
``If-Match`` holds across servers: a card changed through another server
meanwhile gives 412) and that no other card has its UID (409), writes the
row and takes the book's next revision. Writes to one book are thus
serialised across servers and commit in revision order; reads never wait.

A database that cannot be reached (or does not answer in time) is a
``Refused(503)`` with a Retry-After, never a 500: the server stays up and
answers again once the database is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cardfile.plugin.refused import Refused
from cardfile.plugin.store import pg_schema

log = logging.getLogger("cardfile")

#: Seconds a client is asked to wait before retrying when the database is unreachable.
RETRY_AFTER = 5
#: The ``cardfile_meta`` row that says until when the last pruning round holds its turn
#: (seconds since the epoch): of several servers pruning on their schedules, one takes
#: each turn and the others skip theirs (``prune_expired``).
PRUNE_TURN = "tombstones_turn_until"

#: Per book, the newest revision among the tombstones the policy lets go: deleted longer
#: ago than the age and not among the book's newest ``keep`` deletions. Everything of the
#: book up to it is forgotten (``_prune_to``), so the floor is one number per book.
_PRUNABLE = """
SELECT coll, max(revision) FROM (
    SELECT coll, revision, changed_at,
           row_number() OVER (PARTITION BY coll ORDER BY revision DESC) AS newer
    FROM cards WHERE body IS NULL) AS tombstones
WHERE newer > %(keep)s AND changed_at < now() - %(seconds)s * interval '1 second'
GROUP BY coll ORDER BY coll
"""


@dataclass(frozen=True)
class BookState:
    """A book as the database knows it: ids for sync tokens, its revision and floor."""

    coll_id: int
    epoch: str
    revision: int
    floor: int

    @property
    def source(self) -> str:
        """What a cache of this book was filled from (changes when the book is re-created)."""
        return f"{self.epoch}-{self.coll_id}"


@dataclass(frozen=True)
class Pruned:
    """What one pruning round forgot: books whose floor rose, and tombstones removed.

    ``busy``: books skipped because a write held them (they are pruned next round).
    """

    books: int
    tombstones: int
    busy: int = 0


@dataclass(frozen=True)
class GroupRow:
    """A group card as the group view's clients were last shown it (``group_cards``)."""

    href: str
    uid: str
    etag: str
    revision: int
    deleted: bool


@dataclass(frozen=True)
class Changes:
    """The rows changed since a revision, read in one snapshot.

    ``full``: the cache was too old (or of another book) to be brought up to
    date by changes, so ``cards`` holds every live card and anything else
    the cache holds is gone; ``groups`` then holds every group row the
    database still has, deleted ones included.
    """

    revision: int
    floor: int
    full: bool
    cards: list[tuple[str, bytes | None, int]]  # (href, body or None if deleted, revision)
    groups: list[GroupRow] = field(default_factory=list)


def unreachable(error: Exception) -> Refused:
    """The refusal a request gets while the database cannot answer."""
    detail = " ".join(str(error).split())[:200] or type(error).__name__
    log.warning("PostgreSQL unavailable: %s", detail)
    return Refused(503, _UNREACHABLE, retry_after=RETRY_AFTER)


_UNREACHABLE = "The contacts database cannot be reached right now; try again in a few seconds"


def display_url(url: str) -> str:
    """A database address fit for a log line or an error message (no password)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


class PgStore:
    """A pool of connections to one Cardfile database, and every statement run on it."""

    #: Seconds requests are refused at once after the database failed to answer one.
    DOWN_SECONDS = 1.0

    def __init__(self, url: str, pool_size: int = 8, timeout: float = 5.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._errors = (psycopg.OperationalError, psycopg.InterfaceError)
        self._unique_violation = psycopg.errors.UniqueViolation
        self.url = url
        self.timeout = timeout
        self._down_until = 0.0
        # No check of each connection as it leaves the pool: that was a round trip
        # before every query (half of a read request's time with the database).
        # A connection broken meanwhile fails its query, the request gets 503,
        # and the pool's other idle connections are checked then (``_conn``).
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), timeout=timeout, open=False,
            name="cardfile",
            kwargs={
                "autocommit": True,  # a transaction is always an explicit block
                "connect_timeout": max(1, int(timeout)),
                "application_name": "cardfile",
                # A statement or lock wait longer than this is an outage, not a slow answer.
                "options": f"-c statement_timeout={int(timeout * 2000)} "
                           f"-c lock_timeout={int(timeout * 2000)} "
                           f"-c idle_in_transaction_session_timeout={int(timeout * 6000)}",
            })
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection; an unreachable database becomes ``Refused(503)``.

        After a failure, requests are answered 503 at once for ``DOWN_SECONDS``
        instead of each waiting ``timeout`` for a connection that will not
        come; the first request after that tries the database again. The
        failure also has the pool check its idle connections (in the
        background: a check may wait on a dead network), so after a database
        restart the requests that follow get new connections, not one broken
        one each.
        """
        if time.monotonic() < self._down_until:
            raise Refused(503, _UNREACHABLE, retry_after=RETRY_AFTER)
        try:
            with self.pool.connection() as conn:
                yield conn
        except self._errors as e:
            self._down_until = time.monotonic() + self.DOWN_SECONDS
            threading.Thread(target=self._check_pool, name="cardfile-pool-check",
                             daemon=True).start()
            raise unreachable(e) from None

    def _check_pool(self) -> None:
        with contextlib.suppress(Exception):  # a closed pool, or the database still away
            self.pool.check()

    @contextlib.contextmanager
    def own_connection(self) -> Iterator[Any]:
        """A connection outside the pool, closed after the block (503 if unreachable)."""
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=max(1, int(self.timeout)),
                                 autocommit=True, application_name="cardfile") as conn:
                yield conn
        except self._errors as e:
            raise unreachable(e) from None

    # -- schema ------------------------------------------------------------
    def check_schema(self) -> None:
        """``SchemaMismatch`` unless the tables are the ones this Cardfile knows.

        On a connection of its own, not the pool's: a server starting while the
        database is away learns it at once instead of after the pool's timeout.
        """
        with self.own_connection() as conn:
            pg_schema.check(conn)

    def upgrade(self) -> list[int]:
        with self._conn() as conn:
            return pg_schema.upgrade(conn)

    def schema_version(self) -> int | None:
        with self._conn() as conn:
            return pg_schema.current_version(conn)

    # -- books ----------------------------------------------------------------
    def book(self, path: str) -> BookState:
        """The state of the book at ``path`` (``user/book``), its row created on first use."""
        sql = ("SELECT c.id, m.value, c.revision, c.floor FROM collections c "
               "JOIN cardfile_meta m ON m.key = 'epoch' WHERE c.path = %s")
        with self._conn() as conn:
            row = conn.execute(sql, (path,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO collections (path) VALUES (%s) "
                             "ON CONFLICT (path) DO NOTHING", (path,))
                row = conn.execute(sql, (path,)).fetchone()
        return BookState(int(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def changes(self, coll_id: int, since: int | None) -> Changes:
        """What changed in a book after revision ``since`` (None: everything), one snapshot."""
        import psycopg

        with self._conn() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                with conn.transaction():
                    row = conn.execute("SELECT revision, floor FROM collections WHERE id = %s",
                                       (coll_id,)).fetchone()
                    if row is None:
                        return Changes(0, 0, True, [])
                    revision, floor = int(row[0]), int(row[1])
                    full = since is None or since < floor or since > revision
                    if full:
                        cur = conn.execute("SELECT href, body, revision FROM cards "
                                           "WHERE coll = %s AND body IS NOT NULL", (coll_id,))
                    else:
                        cur = conn.execute("SELECT href, body, revision FROM cards "
                                           "WHERE coll = %s AND revision > %s ORDER BY revision",
                                           (coll_id, since))
                    cards = [(str(h), bytes(b) if b is not None else None, int(r))
                             for h, b, r in cur]
                    groups = [GroupRow(str(h), str(u), str(e), int(r), bool(d))
                              for h, u, e, r, d in conn.execute(
                                  "SELECT href, uid, etag, revision, deleted FROM group_cards "
                                  "WHERE coll = %s AND revision > %s ORDER BY revision",
                                  (coll_id, -1 if full else since))]
            finally:
                conn.isolation_level = None
        return Changes(revision, floor, full, cards, groups)

    def put(self, coll_id: int, path: str, href: str, body: bytes, uid: str, etag: str,
            basis: str | None) -> int:
        """Store one card; return the book revision it took.

        ``basis``: the etag of the card at ``href`` this server decided on
        (None: it saw none). If the card changed meanwhile (another server
        wrote it), 412; if another card of the book has the UID, 409.
        """
        with self._conn() as conn, conn.transaction():
            revision = self._lock(conn, coll_id)
            self._check_basis(conn, coll_id, href, basis)
            if uid:
                other = conn.execute(
                    "SELECT href FROM cards WHERE coll = %s AND uid = %s AND href <> %s "
                    "AND body IS NOT NULL LIMIT 1", (coll_id, uid, href)).fetchone()
                if other is not None:
                    raise Refused(409, f"UID {uid!r} is already used by /{path}/{other[0]}")
            revision += 1
            conn.execute(
                "INSERT INTO cards (coll, href, uid, etag, body, revision) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (coll, href) DO UPDATE SET "
                "uid = EXCLUDED.uid, etag = EXCLUDED.etag, body = EXCLUDED.body, "
                "revision = EXCLUDED.revision, changed_at = now()",
                (coll_id, href, uid, etag, body, revision))
            conn.execute("UPDATE collections SET revision = %s WHERE id = %s",
                         (revision, coll_id))
        return revision

    def delete(self, coll_id: int, href: str, basis: str | None) -> int:
        """Delete one card (its row becomes a tombstone); return the revision it took."""
        with self._conn() as conn, conn.transaction():
            revision = self._lock(conn, coll_id)
            self._check_basis(conn, coll_id, href, basis)
            revision += 1
            conn.execute("UPDATE cards SET body = NULL, etag = '', revision = %s, "
                         "changed_at = now() WHERE coll = %s AND href = %s",
                         (revision, coll_id, href))
            conn.execute("UPDATE collections SET revision = %s WHERE id = %s",
                         (revision, coll_id))
        return revision

    def record_groups(self, coll_id: int, basis: int, current: dict[str, tuple[str, str]]
                      ) -> int | None:
        """Record the book's group cards as ``current`` (href -> UID, etag); the revision taken.

        Group cards are derived (from the categories and their members), so
        each server computes them from its cache; the first to find them
        changed records that under the book's next revision, and every
        server's group view then reports them changed from that revision on.
        ``basis``: the revision the server's cache held when it computed
        them. If the book moved on since, nothing is recorded (None): the
        groups were computed from cards that are no longer the newest, and
        the server records them again once it has caught up.
        """
        with self._conn() as conn, conn.transaction():
            revision = self._lock(conn, coll_id)
            if revision != basis:
                return None
            known = {str(h): (str(u), str(e)) for h, u, e in conn.execute(
                "SELECT href, uid, etag FROM group_cards WHERE coll = %s AND NOT deleted",
                (coll_id,))}
            changed = [(h, u, e) for h, (u, e) in current.items() if known.get(h) != (u, e)]
            gone = sorted(known.keys() - current.keys())
            if not changed and not gone:
                return revision
            revision += 1
            for href, uid, etag in changed:
                conn.execute(
                    "INSERT INTO group_cards (coll, href, uid, etag, revision) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (coll, href) DO UPDATE SET "
                    "uid = EXCLUDED.uid, etag = EXCLUDED.etag, revision = EXCLUDED.revision, "
                    "deleted = false", (coll_id, href, uid, etag, revision))
            for href in gone:
                conn.execute("UPDATE group_cards SET deleted = true, revision = %s "
                             "WHERE coll = %s AND href = %s", (revision, coll_id, href))
            conn.execute("UPDATE collections SET revision = %s WHERE id = %s",
                         (revision, coll_id))
        return revision

    @staticmethod
    def _lock(conn: Any, coll_id: int) -> int:
        """Lock the book's row for this transaction; its revision now."""
        row = conn.execute("SELECT revision FROM collections WHERE id = %s FOR UPDATE",
                           (coll_id,)).fetchone()
        if row is None:
            raise Refused(409, "the address book was deleted meanwhile (through another "
                               "server); fetch it again")
        return int(row[0])

    @staticmethod
    def _check_basis(conn: Any, coll_id: int, href: str, basis: str | None) -> None:
        row = conn.execute("SELECT etag FROM cards WHERE coll = %s AND href = %s "
                           "AND body IS NOT NULL", (coll_id, href)).fetchone()
        current = str(row[0]) if row else None
        if current != basis:
            what = ("was created" if basis is None else "was deleted" if current is None
                    else "changed")
            raise Refused(412, f"the contact {href} {what} meanwhile (through another server "
                               "or program); fetch it again")

    def drop_book(self, path: str) -> None:
        """Forget a deleted book and everything below it (a re-created one starts afresh).

        ``path``: the collection's path as Radicale names it (``user/book``).
        Its history is kept (``pg_history.py``, keyed by path), as the file
        store keeps ``history/<user>/<book>/``: the storage recorded every card
        as deleted first, so the book re-created at this path has them in its trash.
        """
        prefix = path.strip("/") + "/"
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM collections WHERE path = %s OR path LIKE %s",
                         (path, escaped + "%"))

    def prune_tombstones(self, coll_id: int, keep: int) -> int:
        """Forget all but the newest ``keep`` deletions of one book; tokens before them get 403."""
        with self._conn() as conn, conn.transaction():
            self._lock(conn, coll_id)
            row = conn.execute(
                "SELECT revision FROM cards WHERE coll = %s AND body IS NULL "
                "ORDER BY revision DESC OFFSET %s LIMIT 1", (coll_id, keep)).fetchone()
            if row is None:
                return 0
            return self._prune_to(conn, coll_id, int(row[0]))

    def prune_expired(self, older_than_days: float, keep: int, turn_seconds: float = 0.0
                      ) -> Pruned | None:
        """Forget, in every book, the deletions the policy lets go (``[storage] tombstone_*``).

        A deletion goes when it is older than ``older_than_days`` *and* not among
        its book's newest ``keep``. A sync token from before a forgotten
        deletion then gets 403 valid-sync-token (the client syncs afresh).

        ``turn_seconds`` > 0: a round only when no server (this one included)
        took its turn in the last ``turn_seconds``; None when one did. So
        servers on one schedule prune once per interval between them, not once
        each. The turn is a row of ``cardfile_meta`` claimed by one conditional
        UPDATE, not a session advisory lock: a lock taken and released through
        a pooler in transaction mode (PgBouncer) may land on two server
        connections and never be released, and pruning would stop for good.

        Rounds that overlap anyway (a turn shorter than a round) are harmless:
        each book is pruned in a transaction of its own under its row lock,
        taken with SKIP LOCKED (a book a write or another round holds right
        now is left for the next round, so pruning never waits for a client's
        write, and a write waits at most for one book's DELETE), and pruning
        a book to a revision twice changes nothing the second time.
        """
        with self._conn() as conn:
            if turn_seconds > 0 and not self._take_turn(conn, turn_seconds):
                return None
            cuts = [(int(c), int(r)) for c, r in conn.execute(
                _PRUNABLE, {"keep": max(0, keep), "seconds": max(0.0, older_than_days) * 86400})]
            books = removed = busy = 0
            for coll_id, cut in cuts:
                with conn.transaction():
                    held = conn.execute("SELECT 1 FROM collections WHERE id = %s "
                                        "FOR UPDATE SKIP LOCKED", (coll_id,)).fetchone()
                    if held is None:  # a write holds it, or it was dropped meanwhile
                        busy += 1
                        continue
                    removed += self._prune_to(conn, coll_id, cut)
                    books += 1
        return Pruned(books, removed, busy)

    @staticmethod
    def _take_turn(conn: Any, seconds: float) -> bool:
        """Claim the pruning turn for ``seconds`` unless a server holds it; whether claimed."""
        conn.execute("INSERT INTO cardfile_meta (key, value) VALUES (%s, '0') "
                     "ON CONFLICT (key) DO NOTHING", (PRUNE_TURN,))
        row = conn.execute(
            "UPDATE cardfile_meta SET value = (extract(epoch FROM now()) + %s)::text "
            "WHERE key = %s AND value::float8 <= extract(epoch FROM now()) RETURNING 1",
            (seconds, PRUNE_TURN)).fetchone()
        return row is not None

    @staticmethod
    def _prune_to(conn: Any, coll_id: int, cut: int) -> int:
        """Delete the book's tombstones up to revision ``cut``; raise its floor to ``cut``.

        The caller holds the book's row lock, in the same transaction.
        """
        cur = conn.execute("DELETE FROM cards WHERE coll = %s AND body IS NULL "
                           "AND revision <= %s", (coll_id, cut))
        conn.execute("DELETE FROM group_cards WHERE coll = %s AND deleted AND revision <= %s",
                     (coll_id, cut))
        conn.execute("UPDATE collections SET floor = GREATEST(floor, %s) WHERE id = %s",
                     (cut, coll_id))
        return int(cur.rowcount or 0)

    # -- whole database (export, import) -------------------------------------
    def book_paths(self) -> list[str]:
        with self._conn() as conn:
            return [str(r[0]) for r in
                    conn.execute("SELECT path FROM collections ORDER BY path")]

    def live_cards(self, coll_id: int) -> Iterator[tuple[str, bytes]]:
        """(href, body) of every card of a book, in href order."""
        with self._conn() as conn:
            for href, body in conn.execute(
                    "SELECT href, body FROM cards WHERE coll = %s AND body IS NOT NULL "
                    "ORDER BY href", (coll_id,)):
                yield str(href), bytes(body)

    def load_book(self, path: str, cards: list[tuple[str, bytes, str, str]]) -> int:
        """Import: make the book at ``path`` hold exactly ``cards`` (href, body, uid, etag).

        One transaction, one revision for all of it; cards no longer there
        become tombstones, so a syncing client is told of them.
        """
        coll_id = self.book(path).coll_id
        with self._conn() as conn, conn.transaction():
            revision = self._lock(conn, coll_id) + 1
            known = {str(h): str(e) for h, e in conn.execute(
                "SELECT href, etag FROM cards WHERE coll = %s AND body IS NOT NULL",
                (coll_id,))}
            changed = 0
            for href, body, uid, etag in cards:
                if known.pop(href, None) == etag:
                    continue
                conn.execute(
                    "INSERT INTO cards (coll, href, uid, etag, body, revision) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (coll, href) DO UPDATE SET "
                    "uid = EXCLUDED.uid, etag = EXCLUDED.etag, body = EXCLUDED.body, "
                    "revision = EXCLUDED.revision, changed_at = now()",
                    (coll_id, href, uid, etag, body, revision))
                changed += 1
            for href in known:
                conn.execute("UPDATE cards SET body = NULL, etag = '', revision = %s, "
                             "changed_at = now() WHERE coll = %s AND href = %s",
                             (revision, coll_id, href))
                changed += 1
            if changed:
                conn.execute("UPDATE collections SET revision = %s WHERE id = %s",
                             (revision, coll_id))
        return changed
