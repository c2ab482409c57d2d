"""A throw-away PostgreSQL server for the tests, from Debian's packages.

The cluster itself is ``tests/pg_cluster.py`` (shared with the benchmarks);
here are what only the tests need. Each test gets a database of its own.

Without the binaries the tests that need it are skipped, saying why, except
under CI (``CI=true``), where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tests.conftest import free_port
from tests.pg_cluster import PostgresCluster, binaries

REASON = ("PostgreSQL's server binaries (Debian package postgresql: initdb, pg_ctl) are not "
          "installed")


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI: .ci/run installs them)")
    pytest.skip(reason)


def start_cluster() -> PostgresCluster:
    """A running cluster, or the test is skipped (failed under CI) saying why."""
    bin_dir = binaries()
    if bin_dir is None:
        skip_or_fail(REASON)
    assert bin_dir is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg is not installed (pip install '.[postgresql]')")
    return PostgresCluster(bin_dir)


class Relay:
    """A loopback TCP relay to the cluster that a test can cut: the database "goes away".

    Servers reach the database through it; ``cut()`` drops every connection and
    refuses new ones (as a dead database host does), ``restore()`` serves again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def url(self, database: str) -> str:
        return f"postgresql://cardfile@127.0.0.1:{self.port}/{database}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            try:  # wakes the accepting thread (a bare close does not, on Linux)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._open.clear()
