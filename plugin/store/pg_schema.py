"""The PostgreSQL store's schema: numbered migrations and the check a server makes.

The schema is versioned in the database itself (``cardfile_schema``), so a
server knows whether the tables are the ones it was written for. Only
``cardfile db upgrade`` changes the schema: a server never migrates on its
own, since several servers of different releases may share one database
during an upgrade. A server meeting an older schema asks for the upgrade; one
meeting a newer schema (written by a later Cardfile) refuses to start, since
it could misread or damage tables it does not know.
"""

from __future__ import annotations

import secrets
from typing import Any

from cardfile.plugin.refused import Refused

#: (version, statements): applied in order, each in its own transaction.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE cardfile_meta (key text PRIMARY KEY, value text NOT NULL);
-- One row per address book. ``revision`` is the book's change counter: every
-- write takes the next number under this row's lock, in the write's own
-- transaction, so no two writes share one and none commits out of order.
-- ``floor``: sync tokens below it are refused (their tombstones were pruned).
CREATE TABLE collections (
    id bigserial PRIMARY KEY,
    path text NOT NULL UNIQUE,
    revision bigint NOT NULL DEFAULT 0,
    floor bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- One row per card, and per deleted card (a tombstone: body IS NULL) until it
-- is pruned. ``body`` is the card file's bytes, exactly, so export and import
-- are byte for byte. ``revision``: the book revision of the row's last change,
-- so "what changed since token N" is one range scan.
CREATE TABLE cards (
    coll bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    href text NOT NULL,
    uid text NOT NULL DEFAULT '',
    etag text NOT NULL DEFAULT '',
    body bytea,
    revision bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (coll, href)
);
CREATE INDEX cards_revision ON cards (coll, revision);
CREATE INDEX cards_uid ON cards (coll, uid) WHERE body IS NOT NULL;
"""),
    (2, """
-- The tombstones alone, newest first per book, with their age: the scheduled
-- pruning (``PgStore.prune_expired``) finds what it may forget without
-- reading the cards themselves.
CREATE INDEX cards_tombstones ON cards (coll, revision) INCLUDE (changed_at)
    WHERE body IS NULL;
"""),
]

#: The newest schema this Cardfile knows.
LATEST = MIGRATIONS[-1][0]


class SchemaMismatch(Refused):
    """The database's schema is not the one this Cardfile runs on (the reason says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(503, reason)


def current_version(conn: Any) -> int | None:
    """The schema version of the database; None when Cardfile's tables are not there."""
    found = conn.execute("SELECT to_regclass('cardfile_schema') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return None
    row = conn.execute("SELECT max(version) FROM cardfile_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def check(conn: Any) -> None:
    """Raise ``SchemaMismatch`` unless the database has exactly the schema this Cardfile knows."""
    version = current_version(conn)
    if version is None:
        raise SchemaMismatch("the database has no Cardfile tables yet; run 'cardfile db "
                             "upgrade' first")
    if version > LATEST:
        raise SchemaMismatch(
            f"the database schema is version {version}, newer than this Cardfile knows "
            f"(version {LATEST}): a later Cardfile upgraded it. Upgrade Cardfile on this "
            "machine; starting would risk misreading tables it does not know")
    if version < LATEST:
        raise SchemaMismatch(f"the database schema is version {version}; this Cardfile needs "
                             f"version {LATEST}: run 'cardfile db upgrade'")


def upgrade(conn: Any) -> list[int]:
    """Apply the migrations the database lacks; return the versions applied.

    An advisory lock keeps two ``db upgrade`` runs from applying the same
    migration twice. A database newer than this Cardfile is left alone.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7411170)")
        conn.execute("CREATE TABLE IF NOT EXISTS cardfile_schema ("
                     "version integer PRIMARY KEY, applied_at timestamptz NOT NULL "
                     "DEFAULT now())")
        version = current_version(conn) or 0
        if version > LATEST:
            raise SchemaMismatch(
                f"the database schema is version {version}, newer than this Cardfile knows "
                f"(version {LATEST}); upgrade Cardfile instead")
        for number, statements in MIGRATIONS:
            if number <= version:
                continue
            conn.execute(statements)
            if number == 1:
                # Sync tokens carry it: a re-created database never accepts old tokens.
                conn.execute("INSERT INTO cardfile_meta VALUES ('epoch', %s)",
                             (secrets.token_hex(6),))
            conn.execute("INSERT INTO cardfile_schema (version) VALUES (%s)", (number,))
            applied.append(number)
    return applied
