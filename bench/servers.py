"""The three servers the benchmarks compare: how each is set up, seeded, started and stopped.

- ``radicale``: stock Radicale from the package registry, ``multifilesystem``
  storage, bcrypt htpasswd with cached logins, owner-only rights.
- ``xandikos``: Xandikos from the package registry (``python -m xandikos.web``).
  It has no authentication of its own over plain HTTP (``--htpasswd`` needs
  ``--autocert``, i.e. TLS with a self-signed certificate), so it is run
  without any and the clients send no credentials: it pays no login check at
  all, which favours it slightly. Each address book is a Git repository
  (``<data>/<user>/<book>``, ``xandikos.type = addressbook`` in its config).
- ``cardfile``: ``cardfile serve`` (Granian, a master and worker processes),
  users added with ``cardfile user add``.

Every server gets its own fresh folder and a free 127.0.0.1 port. Seeding
from files puts the same card files where each server reads them before it
starts (for Xandikos: committed into the book's Git repository).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt

HOST = "127.0.0.1"
LABELS = ("radicale", "xandikos", "cardfile")
PROPS_JSON = '{"tag": "VADDRESSBOOK"}'

# What a client asks for when it first opens an address book; for Radicale
# getetag/getctag/sync-token mean reading every card, for Cardfile reconciling
# the folder with its index, so this request carries the seeding cost.
FIRST_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    "<D:prop><D:resourcetype/><D:displayname/><D:getetag/><CS:getctag/>"
    "<D:sync-token/></D:prop></D:propfind>")
LOGIN_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>')


def find_yardstick() -> Path:
    """The shared yardstick's folder: ``shared/bench`` beside the checkout or a parent of it.

    The main checkout sits at /work/main and worktrees at /work/wt/NAME, so
    the folder is looked for in every parent, nearest first.
    """
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "bench"
        if (candidate / "carddav_bench.py").is_file():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "bench"


class BenchError(Exception):
    """A setup step failed; the message says which and why."""


def free_port() -> int:
    """A port the kernel considers free now (tiny race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def uses_auth(label: str) -> bool:
    """Whether clients log in to this server (Xandikos runs without authentication)."""
    return label != "xandikos"


@dataclass
class Server:
    """One running server: its process, port and where its files and log live."""

    label: str
    port: int
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def book_path(self, user: str, book: str) -> str:
        return f"/{user}/{book}/"

    def url(self, user: str, book: str) -> str:
        return f"http://{HOST}:{self.port}{self.book_path(user, book)}"

    def launch(self, argv: list[str], env: dict[str, str]) -> None:
        """Start it in its own session (so Ctrl-C reaches only us and its workers)."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def start(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        """Launch and wait until the port accepts connections."""
        self.launch(argv, env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running(argv)
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"{self.label} did not accept connections on port {self.port} "
                         f"within {timeout:.0f}s\n{tail(self.log)}")

    def check_running(self, argv: list[str] | None = None) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.label} exited with status {self.proc.returncode} "
                             f"while starting: {' '.join(argv or [])}\n{tail(self.log)}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM to its process group (master and workers), then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Workers left behind by a master that died first share its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# -- preparing each server's folder ---------------------------------------------
def cardfile_argv() -> list[str]:
    """The ``cardfile`` console script next to this interpreter, else the one on PATH.

    Using the script itself (not a shell wrapper) keeps the server PID the
    Python process, so its process tree is the server's own.
    """
    beside = Path(sys.executable).with_name("cardfile")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cardfile")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from cardfile.cli.main import cli; sys.exit(cli())"]


def prepare_radicale(root: Path, port: int, users: list[str],
                     password: str) -> tuple[list[str], Path]:
    """Write stock Radicale's config and htpasswd; return its argv and storage folder."""
    storage = root / "storage"
    storage.mkdir(parents=True)
    htpasswd = root / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd.write_text("".join(f"{user}:{hashed}\n" for user in users))
    config = root / "config"
    config.write_text(
        "[server]\n"
        f"hosts = {HOST}:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = bcrypt\n"
        "cache_logins = True\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        "type = multifilesystem\n"
        f"filesystem_folder = {storage}\n"
        "[logging]\n"
        "level = warning\n")
    # --config replaces Radicale's default search path, so no system or user
    # configuration file can change what "stock" means here.
    return [sys.executable, "-m", "radicale", "--config", str(config)], storage


def prepare_cardfile(root: Path, port: int, users: list[str], password: str,
                     env: dict[str, str]) -> tuple[list[str], Path]:
    """Add the users to a fresh Cardfile data folder; return serve argv and folder."""
    data = root / "data"
    cmd = cardfile_argv()
    for user in users:
        done = subprocess.run([*cmd, "user", "add", user, "--password-stdin",
                               "--data-dir", str(data)],
                              input=password + "\n", text=True, capture_output=True, env=env)
        if done.returncode != 0:
            raise BenchError(f"cardfile user add {user} failed ({done.returncode}):\n"
                             f"{done.stdout}{done.stderr}")
    return [*cmd, "serve", "--data-dir", str(data), "--port", str(port),
            "--log-level", "warning"], data


def prepare_xandikos(root: Path, port: int, principal: str) -> tuple[list[str], Path]:
    """Xandikos serving a fresh folder, ``principal`` as its one current-user principal."""
    data = root / "data"
    data.mkdir(parents=True)
    return [sys.executable, "-m", "xandikos.web", "--directory", str(data),
            "--current-user-principal", f"/{principal}/", "--autocreate",
            "--listen-address", HOST, "--port", str(port), "--no-detect-systemd"], data


def prepare(label: str, root: Path, port: int, users: list[str], password: str,
            env: dict[str, str]) -> tuple[list[str], Path]:
    """One server's argv and data folder, its users created."""
    root.mkdir(parents=True, exist_ok=True)
    if label == "radicale":
        return prepare_radicale(root, port, users, password)
    if label == "cardfile":
        return prepare_cardfile(root, port, users, password, env)
    if label == "xandikos":
        return prepare_xandikos(root, port, users[0])
    raise BenchError(f"unknown server {label!r}")


def set_port(argv: list[str], label: str, root: Path, port: int) -> list[str]:
    """The same server on another port (Radicale's port is in its config file)."""
    if label == "radicale":
        config = Path(argv[argv.index("--config") + 1])
        text = "".join(f"hosts = {HOST}:{port}\n" if line.startswith("hosts =") else line
                       for line in config.read_text().splitlines(keepends=True))
        config.write_text(text)
        return argv
    flag = "--port"
    i = argv.index(flag)
    return [*argv[:i + 1], str(port), *argv[i + 2:]]


# -- seeding ------------------------------------------------------------------------
_GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def book_folder(label: str, storage: Path, user: str, book: str) -> Path:
    """Where the server reads the book's card files."""
    if label == "xandikos":
        return storage / user / book
    return storage / "collection-root" / user / book


def seed_book(label: str, storage: Path, user: str, book: str, vcards: Path) -> None:
    """Put the generated cards where the server looks for the book, before it starts."""
    folder = book_folder(label, storage, user, book)
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(vcards, folder)
    if label != "xandikos":
        (folder / ".Radicale.props").write_text(PROPS_JSON)
        return
    env = {**os.environ, **_GIT_ENV}
    for cmd in (["init", "-q"], ["config", "xandikos.type", "addressbook"],
                ["add", "-A"], ["commit", "-q", "--no-gpg-sign", "-m", "seed"]):
        done = subprocess.run(["git", "-C", str(folder), *cmd], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"git {cmd[0]} in {folder} failed: {done.stderr.strip()}")


def remove_index(label: str, storage: Path) -> str:
    """Delete what the server rebuilds from the cards at start; say what that was."""
    if label == "cardfile":
        for path in storage.glob("cardfile-index.sqlite3*"):
            path.unlink()
        return "index deleted"
    if label == "radicale":
        for path in storage.rglob(".Radicale.cache"):
            shutil.rmtree(path)
        return "item cache deleted"
    return "nothing kept outside Git to delete"


# -- HTTP probes ----------------------------------------------------------------------
def auth_header(user: str, password: str | None) -> dict[str, str]:
    if password is None:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def dav(port: int, user: str, password: str | None, method: str, path: str, body: str,
        headers: dict[str, str], timeout: float) -> tuple[int, float]:
    """One request on a fresh connection -> (status, seconds until the body is read)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body.encode(), {
            **auth_header(user, password),
            "Content-Type": "application/xml; charset=utf-8", **headers})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t0
    finally:
        conn.close()


def wait_until_book_answers(server: Server, user: str, book: str, password: str | None,
                            timeout: float) -> float:
    """Seconds from now until a PROPFIND Depth 0 of the book is answered with 207.

    The port may accept connections before the server can answer (Cardfile's
    workers build or check the index after Granian binds), so readiness is
    the first answered request of the book, logged in, not the open port.
    """
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        server.check_running()
        try:
            status, _ = dav(server.port, user, password, "PROPFIND",
                            server.book_path(user, book), FIRST_PROPFIND, {"Depth": "0"},
                            max(1.0, deadline - time.monotonic()))
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
            time.sleep(0.02)
            continue
        if status == 207:
            return time.perf_counter() - started
        last = f"HTTP {status}"
        time.sleep(0.02)
    raise BenchError(f"{server.label}: the book did not answer within {timeout:.0f}s "
                     f"({last})\n{tail(server.log)}")
