"""The data folder's small files in PostgreSQL: what several servers must agree on.

Cards are rows of their own (``postgres.py``). Everything else a user
changes lives in small files of the data folder: each book's properties
(``.Radicale.props``: its name, colour, description), its category list,
grants (devices, tokens, friends, shares), connected sources and their
encrypted passwords, the password file, per-user settings, merge records.
With several servers these must be one, so each is a row of ``state_files``
(its path in the data folder, its exact bytes, its mode), and each server's
folder holds a copy brought up to date the way the cards' cache is
(``contacts/state_files.py``).

Like a book's cards, the whole table has one revision counter, taken under a
row lock in the write's own transaction: no two writes share a revision and
none commits out of order, so "every row after revision N" never skips one
that commits late. A removed file stays as a row without a body; a removed
folder (a deleted address book) is one row whose path ends in ``/``, and the
rows below it are deleted with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cardfile.plugin.store.postgres import PgStore


@dataclass(frozen=True)
class StateRow:
    """One change: ``body`` None means removed (a path ending in ``/``: a whole folder)."""

    path: str
    body: bytes | None
    mode: int
    revision: int


class PgFiles:
    """The ``state_files`` table of one database, on the store's connection pool."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def revision(self) -> int:
        with self.store._conn() as conn:
            row = conn.execute("SELECT revision FROM state_counter").fetchone()
        return int(row[0]) if row else 0

    def since(self, revision: int) -> tuple[int, list[StateRow]]:
        """(the table's revision, every row changed after ``revision``, oldest first)."""
        import psycopg

        with self.store._conn() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                with conn.transaction():
                    row = conn.execute("SELECT revision FROM state_counter").fetchone()
                    now = int(row[0]) if row else 0
                    if now <= revision:
                        return now, []
                    rows = [StateRow(str(p), bytes(b) if b is not None else None, int(m),
                                     int(r))
                            for p, b, m, r in conn.execute(
                                "SELECT path, body, mode, revision FROM state_files "
                                "WHERE revision > %s ORDER BY revision", (revision,))]
            finally:
                conn.isolation_level = None
        return now, rows

    def put(self, path: str, body: bytes | None, mode: int = 0o600) -> int:
        """Record a file's new bytes (None: removed); return the revision it took."""
        with self.store._conn() as conn, conn.transaction():
            revision = int(conn.execute("SELECT revision FROM state_counter FOR UPDATE"
                                        ).fetchone()[0]) + 1
            if body is None and path.endswith("/"):
                escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                conn.execute("DELETE FROM state_files WHERE path LIKE %s AND path <> %s",
                             (escaped + "%", path))
            conn.execute(
                "INSERT INTO state_files (path, body, mode, revision) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (path) DO UPDATE SET body = EXCLUDED.body, mode = EXCLUDED.mode, "
                "revision = EXCLUDED.revision, changed_at = now()",
                (path, body, mode, revision))
            conn.execute("UPDATE state_counter SET revision = %s", (revision,))
        return revision

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Held by one process of all servers at a time (a read-modify-write of ``name``).

        A session advisory lock on a connection of its own, kept for the
        block (not the pool's: the block itself uses the pool, and a pool of
        one would wait for itself): released when the block ends, or by
        PostgreSQL when the process dies. Edits of grants are rare, so the
        connection's cost is paid rarely.
        """
        with self.store.own_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 7411))", (name,))
            yield
