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
-- Each book's history and trash (pg_history.py), one for every server of the
-- database. Keyed by the book's path, not by its ``collections`` row: like the
-- file store's history/<user>/<book>/, it outlives the book, so the cards of a
-- deleted book are in the trash of the book re-created at that path.
-- ``since_ns``: how far back it goes (its start, or the last prune).
CREATE TABLE history_books (
    id bigserial PRIMARY KEY,
    path text NOT NULL UNIQUE,
    since_ns bigint NOT NULL
);
-- One row per change, with the key of the card's text before it (NULL: added).
CREATE TABLE history_events (
    id bigserial PRIMARY KEY,
    book bigint NOT NULL REFERENCES history_books (id) ON DELETE CASCADE,
    time_ns bigint NOT NULL,
    uid text NOT NULL,
    href text NOT NULL,
    action text NOT NULL,
    before bytea,
    fn text NOT NULL DEFAULT '',
    login text NOT NULL DEFAULT '',
    client text NOT NULL DEFAULT '',
    agent text NOT NULL DEFAULT '',
    via text NOT NULL DEFAULT '',
    emptied boolean NOT NULL DEFAULT false
);
CREATE INDEX history_events_uid ON history_events (book, uid, id);
CREATE INDEX history_events_time ON history_events (book, time_ns);
CREATE INDEX history_events_deleted ON history_events (book, time_ns)
    WHERE action = 'deleted';
CREATE INDEX history_events_before ON history_events (book, before)
    WHERE before IS NOT NULL;
-- Card texts, zlib-compressed, once per content hash per book.
CREATE TABLE history_texts (
    book bigint NOT NULL REFERENCES history_books (id) ON DELETE CASCADE,
    hash bytea NOT NULL,
    data bytea NOT NULL,
    size integer NOT NULL,
    PRIMARY KEY (book, hash)
);
-- Mass-change alerts, counted over every server's changes.
CREATE TABLE history_alerts (
    id bigserial PRIMARY KEY,
    book bigint NOT NULL REFERENCES history_books (id) ON DELETE CASCADE,
    time_ns bigint NOT NULL,
    since_ns bigint NOT NULL,
    until_ns bigint NOT NULL,
    login text NOT NULL,
    client text NOT NULL,
    deleted integer NOT NULL DEFAULT 0,
    emptied integer NOT NULL DEFAULT 0,
    book_size integer NOT NULL DEFAULT 0,
    dismissed boolean NOT NULL DEFAULT false
);
CREATE INDEX history_alerts_open ON history_alerts (book, login, client)
    WHERE NOT dismissed;
"""),
    (3, """
-- The data folder's small files (book properties, categories, grants, sources,
-- the password file, settings): see pg_files.py. ``path`` is relative to the
-- data folder; one ending in '/' with no body is a removed folder.
CREATE TABLE state_files (
    path text PRIMARY KEY,
    body bytea,
    mode integer NOT NULL DEFAULT 384,
    revision bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX state_files_revision ON state_files (revision);
-- One row: the table's revision, taken under this row's lock by every write.
CREATE TABLE state_counter (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL
);
INSERT INTO state_counter VALUES (true, 0);
-- The login throttle (pg_login_records.py): one row per client address, shared by
-- every server, so a guesser gets the limit once, not once per server.
CREATE TABLE login_addresses (
    address text PRIMARY KEY,
    failures text NOT NULL DEFAULT '[]',
    blocked_until double precision NOT NULL DEFAULT 0,
    blocks integer NOT NULL DEFAULT 0,
    last_seen double precision NOT NULL,
    in_flight text NOT NULL DEFAULT '[]'
);
"""),
    (4, """
-- The tombstones alone, newest first per book, with their age: the scheduled
-- pruning (``PgStore.prune_expired``) finds what it may forget without
-- reading the cards themselves.
CREATE INDEX cards_tombstones ON cards (coll, revision) INCLUDE (changed_at)
    WHERE body IS NULL;
"""),
    (5, """
-- The group cards that the group view (Apple Contacts, DAVx5 in group mode)
-- gets, one row per group as clients were last shown it. They are derived
-- from the book's categories, so no body is stored: a change gets the book's
-- next revision like a card's (PgStore.record_groups), and sync tokens of the
-- group view count both. ``deleted``: the group is gone (its category was
-- deleted); pruned with the book's tombstones.
CREATE TABLE group_cards (
    coll bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    href text NOT NULL,
    uid text NOT NULL,
    etag text NOT NULL,
    revision bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (coll, href)
);
CREATE INDEX group_cards_revision ON group_cards (coll, revision);
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
