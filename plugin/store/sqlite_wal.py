"""Switching a new SQLite file to WAL mode, when several connections do it at once.

The index, the history and the login records are each shared by every worker
process and thread, and each connection asks for WAL mode as it opens. On a
file not yet in WAL mode the switch needs the file to itself, and SQLite
answers "database is locked" at once, without waiting out the connection's
busy timeout, to a connection that meets another one switching. On a fresh
data folder that was a 500 for one of the first requests of a two-worker
server (the login records are opened by the first requests). Once the file
is in WAL mode, asking again costs a read and never fails this way.
"""

from __future__ import annotations

import sqlite3
import time

#: Between two tries of the switch.
_RETRY_S = 0.01


def use_wal(db: sqlite3.Connection, within_s: float) -> None:
    """``PRAGMA journal_mode=WAL`` on ``db``, tried again for up to ``within_s`` seconds
    while another connection holds the file (then its error is raised)."""
    give_up = time.monotonic() + within_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            held = "locked" in str(e) or "busy" in str(e)
            if not held or time.monotonic() >= give_up:
                raise
        time.sleep(_RETRY_S)
