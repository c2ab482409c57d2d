"""Shared fixtures: a real ``cardfile serve`` on a free loopback port.

Tests talk to it over HTTP exactly as a contacts app would; nothing of the
storage is mocked. Each server gets its own temporary data folder.
"""

from __future__ import annotations

import contextlib
import faulthandler
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.davclient import DavClient

# A crash of this process is reported with every thread's stack, to its very end:
# enabled before pytest's own faulthandler, which then leaves it on after the
# session, for the interpreter's exit (CI once saw a bare "Segmentation fault" there).
faulthandler.enable(all_threads=True)

# The shared corpus of other projects' contact files sits beside the checkout (CI has
# it); CARDFILE_CORPUS points elsewhere (=/nonexistent shows what a fresh clone runs).
CORPUS = Path(os.environ.get("CARDFILE_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")
NO_CORPUS = f"the shared corpus is not at {CORPUS} (set CARDFILE_CORPUS; CI has it)"
requires_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=NO_CORPUS)
# Cardfile's own contact files, written for these tests (tests/data/README.md).
FIXTURES = Path(__file__).resolve().parent / "data"
FIXTURE_FILES = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".vcf", ".csv", ".ldif",
                                                                       ".json"))
USER = "alice"
PASSWORD = "correct horse battery"


def corpus_params(paths: list[Path]) -> list[Any]:
    """``paths`` for ``parametrize``, or one test skipped with the reason when there are none."""
    if paths:
        return paths
    return [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS), id="no-corpus")]


@contextlib.contextmanager
def loopback_site(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A small site on another loopback port (another origin), served while in use."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cardfile_command() -> list[str]:
    exe = shutil.which("cardfile")
    return [exe] if exe else [sys.executable, "-m", "cardfile.cli.main"]


def run_cli(*args: str, data_dir: Path, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cardfile_command(), *args, "--data-dir", str(data_dir)],
        input=stdin, capture_output=True, text=True, check=check, timeout=120)


class ServerProcess:
    """A running ``cardfile serve`` and what a test needs to reach it."""

    def __init__(self, data_dir: Path, port: int, extra_config: str = "") -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir.parent / f"server-{port}.log"
        args = ["serve", "--port", str(port)]
        #: The server's configuration file, if it has one (a CLI on its data needs it too).
        self.config_path: Path | None = None
        if extra_config:
            config = data_dir.parent / f"config-{port}"
            config.write_text(extra_config)
            args += ["--config", str(config)]
            self.config_path = config
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [*cardfile_command(), *args, "--data-dir", str(data_dir)],
            stdout=self._log, stderr=subprocess.STDOUT, text=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def client(self, user: str = USER, password: str = PASSWORD) -> DavClient:
        return DavClient(self.url, user, password)

    def book_dir(self, user: str = USER, book: str = "contacts") -> Path:
        return self.data_dir / "collection-root" / user / book

    def served_cards(self, user: str = USER, password: str = PASSWORD,
                     book: str = "contacts") -> dict[str, str]:
        """Name -> text of every card the server serves in a book (PROPFIND, then GET each).

        What a client sees, on any store; a book's folder is only a cache
        of the database with PostgreSQL.
        """
        from urllib.parse import unquote

        client = self.client(user, password)
        return {unquote(href.rsplit("/", 1)[1]): client.request("GET", href)[2]
                for href in client.etags_of(f"/{user}/{book}/")}

    def restarted(self) -> ServerProcess:
        """This server stopped and started again: the same data, port and configuration."""
        self.stop()
        config = self.config_path.read_text() if self.config_path else ""
        return ServerProcess(self.data_dir, self.port, config)

    def seed(self, files: dict[str, bytes], user: str = USER, password: str = PASSWORD,
             book: str = "contacts") -> None:
        """Store ``files`` (name -> a card's bytes) in a book through the server, on any store.

        Tests used to write such files into the book's folder. With
        PostgreSQL that folder is only each server's cache of the database,
        so cards go in the way a client's do: one PUT each, on one
        keep-alive connection.
        """
        import base64
        import http.client
        from urllib.parse import quote

        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            for name, data in files.items():
                conn.request("PUT", f"/{user}/{book}/{quote(name)}", body=data,
                             headers={"Authorization": auth, "Content-Type": "text/vcard"})
                answer = conn.getresponse()
                body = answer.read()
                assert answer.status in (201, 204), (name, answer.status, body[:300])
        finally:
            conn.close()

    def cli(self, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """A ``cardfile`` command on this server's data and configuration (its store)."""
        config = ("--config", str(self.config_path)) if self.config_path else ()
        return run_cli(*args, *config, data_dir=self.data_dir, stdin=stdin, check=check)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def start_server(tmp_path: Path, users: dict[str, str] | None = None,
                 extra_config: str = "", store_config: str = "") -> ServerProcess:
    """A server on ``tmp_path / "data"``; ``store_config`` (a store fixture's) sets its store."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    for name, password in (users or {USER: PASSWORD}).items():
        # --allow-weak: tests seed servers with whatever password suits them; the
        # password rules themselves are tested in test_weak_passwords.py.
        run_cli("user", "add", name, "--password-stdin", "--allow-weak", data_dir=data_dir,
                stdin=password + "\n")
    return ServerProcess(data_dir, free_port(), merged_config(extra_config, store_config))


def merged_config(*parts: str) -> str:
    """One configuration file from several (a test's own options and its store's)."""
    import configparser

    merged = configparser.ConfigParser(interpolation=None)
    for part in parts:
        merged.read_string(part)
    lines = []
    for section in merged.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in merged.items(section)]
    return "\n".join(lines) + "\n" if lines else ""


#: The stores the ``server`` fixture runs on: CARDFILE_STORES=files,postgresql runs every
#: test that uses it on both (the PostgreSQL one from tests/pg.py, a database per test).
STORES = [s.strip() for s in os.environ.get("CARDFILE_STORES", "files").split(",") if s.strip()]


#: Why a test is ``files_only`` (it then runs on the file store alone):
EDITS_THE_FOLDER = ("it writes a book's folder directly; with PostgreSQL that folder is each "
                    "server's cache of the database, which is changed through a server")
#: ... or it backs up a data folder, which is the file store's (on PostgreSQL ``cardfile
#: backup`` refuses and names the database's own tools: test_postgres checks that).
BACKS_UP_THE_FOLDER = ("'cardfile backup' archives the file store's data folder; with "
                       "PostgreSQL it refuses and names pg_dump and 'cardfile db export'")
#: ... or it compares two data folders, each its own store, through the CLI alone.
TWO_DATA_FOLDERS = ("it compares two data folders as two stores; the one configuration the "
                    "CLI reads here would put both on the same PostgreSQL database")
EDITS_A_GRANTS_FILE = ("it edits a grants file by hand (a deadline moved into the past); with "
                       "PostgreSQL grants are rows of the database, changed through a server")


def _store_params() -> list[str] | None:
    return STORES if STORES != ["files"] else None


def _store_configuration(store: str, database_url: Any) -> str:
    if store == "files":
        return ""
    if store != "postgresql":
        raise ValueError(f"CARDFILE_STORES: unknown store {store!r} (files, postgresql)")
    return f"[storage]\nbackend = {database_url()}\n"


@pytest.fixture(params=_store_params())
def store_config(request: pytest.FixtureRequest) -> str:
    """The configuration that puts a test's server on its store ("" for files)."""
    return _store_configuration(getattr(request, "param", "files"),
                                lambda: request.getfixturevalue("database_url"))


@pytest.fixture(scope="module", params=_store_params())
def module_store_config(request: pytest.FixtureRequest) -> str:
    """``store_config`` for a server a whole test module shares (one database for it)."""
    return _store_configuration(getattr(request, "param", "files"),
                                lambda: request.getfixturevalue("module_database_url"))


@pytest.fixture
def second_store_config(store_config: str, request: pytest.FixtureRequest) -> str:
    """For a test's second, separate server: the same store, its own database."""
    if not store_config:
        return ""
    return _store_configuration("postgresql", lambda: _upgraded_database(
        request.getfixturevalue("postgres")))


@pytest.fixture
def cli_store(store_config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every ``cardfile`` command of the test on the store under test, without ``--config``.

    For tests that work on a data folder through the CLI alone: the store's
    configuration becomes the user's configuration file
    (``$XDG_CONFIG_HOME/cardfile/config``), which every command reads, as a
    user's own commands would.
    """
    if store_config:
        home = tmp_path / "xdg-config"
        (home / "cardfile").mkdir(parents=True, exist_ok=True)
        (home / "cardfile" / "config").write_text(store_config)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return store_config


@pytest.fixture(autouse=True)
def _files_only(request: pytest.FixtureRequest) -> None:
    """A test marked ``files_only`` is skipped on any other store, saying why."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    stores = {params.get("store_config", "files"), params.get("module_store_config", "files")}
    only = request.node.get_closest_marker("files_only")
    if only is not None and stores != {"files"}:
        pytest.skip(f"files store only: {only.args[0]}")


@pytest.fixture
def server(tmp_path: Path, store_config: str) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path, {USER: PASSWORD, "bob": "bob's password"},
                       extra_config=store_config)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def dav(server: ServerProcess) -> DavClient:
    """Alice's client, logged in once so her address book exists."""
    client = server.client()
    status, _, _ = client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    assert status == 207
    return client


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Servers are on loopback; a proxy from the environment must not intercept.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    os.environ.setdefault("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per test module (the web page's tests)."""
    from playwright.sync_api import sync_playwright

    from tests.test_web import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL cluster from Debian's packages for the whole session (tests/pg.py)."""
    from tests.pg import start_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def _upgraded_database(postgres: Any) -> str:
    """A new database with Cardfile's tables (``cardfile db upgrade``)."""
    url: str = postgres.new_database()
    done = subprocess.run([*cardfile_command(), "db", "upgrade", "--database", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return url


@pytest.fixture
def database_url(postgres: Any) -> str:
    """A new database with Cardfile's tables, for one test."""
    return _upgraded_database(postgres)


@pytest.fixture(scope="module")
def module_database_url(postgres: Any) -> str:
    """A new database with Cardfile's tables, for one test module's shared server."""
    return _upgraded_database(postgres)
