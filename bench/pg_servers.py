"""Cardfile on PostgreSQL for the benchmarks: a throw-away cluster, its database, its books.

``mix_bench.py`` runs two such set-ups beside the file store:

- ``cardfile-pg``: one ``cardfile serve --database URL``;
- ``cardfile-pg3``: three, each with its own data folder (its cache), on the
  same database and the same users, as three machines behind a load
  balancer would be; the clients spread their requests round-robin over the
  three ports.

The cluster is ``tests/pg_cluster.py``'s (Debian's ``postgresql`` package),
started here with PostgreSQL's own durability defaults (``fsync``,
``synchronous_commit`` and ``full_page_writes`` on; the tests turn them off),
so a write pays its flush as it would on a real server. The books are loaded
the way an administrator moves a file store over: card files written as a
data folder, then ``cardfile db import``; the schema by ``cardfile db
upgrade``. Each server's cache is filled by its first requests (untimed).

The PostgreSQL server's processes (the postmaster, one backend per
connection, its background writers) are not children of any Cardfile
process: ``postmaster_pid`` gives the root of their tree, which the
benchmark adds to the servers' CPU and memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from servers import BenchError, cardfile_argv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.pg_cluster import DURABLE, PostgresCluster, binaries  # noqa: E402

#: The set-ups on PostgreSQL, and how many servers each runs.
SERVER_COUNTS = {"cardfile-pg": 1, "cardfile-pg3": 3}


@dataclass
class DatabaseSize:
    """What the database holds after seeding, in bytes (tables with their indexes)."""

    cards: int
    collections: int
    database: int
    rows: int

    def describe(self, cards: int) -> str:
        per = self.cards / cards * 100_000 if cards else 0
        return (f"cards table {self.cards / 2**20:.1f} MiB for {self.rows} rows "
                f"(= {per / 2**20:.0f} MiB per 100,000 cards), whole database "
                f"{self.database / 2**20:.1f} MiB")


class Database:
    """A running cluster with one Cardfile database in it."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise BenchError("PostgreSQL's server binaries are not installed "
                             "(apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BenchError("psycopg is not installed (pip install '.[postgresql]')") from None
        self.cluster = PostgresCluster(bin_dir, settings=DURABLE)
        self.url = self.cluster.new_database("cardfile_bench")
        done = subprocess.run([*cardfile_argv(), "db", "upgrade", "--database", self.url],
                              capture_output=True, text=True)
        if done.returncode != 0:
            self.stop()
            raise BenchError(f"cardfile db upgrade failed: {done.stderr.strip()}")

    @property
    def described(self) -> str:
        settings = ", ".join(f"{k} {v}" for k, v in self.cluster.settings.items())
        return f"PostgreSQL {self.cluster.version} ({settings}; other settings its defaults)"

    def postmaster_pid(self) -> int:
        return self.cluster.postmaster_pid()

    def import_books(self, folder: Path) -> float:
        """``cardfile db import`` of a data folder; the seconds it took."""
        started = time.perf_counter()
        done = subprocess.run([*cardfile_argv(), "db", "import", str(folder), "--database",
                               self.url], capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"cardfile db import failed: {done.stderr.strip()}")
        return time.perf_counter() - started

    def size(self) -> DatabaseSize:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            row = conn.execute(
                "SELECT pg_total_relation_size('cards'), pg_total_relation_size('collections'),"
                " pg_database_size(current_database()), (SELECT count(*) FROM cards)"
            ).fetchone()
        assert row is not None
        return DatabaseSize(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def stop(self) -> None:
        self.cluster.stop()
