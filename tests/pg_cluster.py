"""A throw-away PostgreSQL cluster from Debian's packages, for the tests and the benchmarks.

``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/<version>/bin``) make a
cluster in a temporary folder, listening on 127.0.0.1 on a free port and a
socket in that folder. The server refuses to run as root, so under root (CI,
containers) the folder is given to the ``postgres`` system user (or a
``cardfile-pg`` user created for it) and the commands run as that user.

Standard library only (plus psycopg for ``new_database``): tests/pg.py adds
pytest's skipping around it, and bench/pg_servers.py starts one for
``mix_bench.py --servers cardfile-pg,cardfile-pg3``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Settings for a cluster whose data may be lost (tests): no flush to disk at all.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
#: PostgreSQL's own defaults for durability (benchmarks: what a real server pays).
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, if any."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")
             if (Path(p) / "initdb").exists() and (Path(p) / "pg_ctl").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _service_user() -> str | None:
    """The unprivileged user to run PostgreSQL as when the tests run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "cardfile-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "cardfile-pg"], check=True, capture_output=True)
    return "cardfile-pg"


class PostgresCluster:
    """One running cluster; ``new_database()`` gives each test its own database.

    ``settings``: server options over ``FAST`` (pass ``DURABLE`` to measure).
    """

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None,
                 max_connections: int = 200) -> None:
        self.bin_dir = bin_dir
        self.settings = {**FAST, **(settings or {}), "max_connections": str(max_connections)}
        self.user = _service_user()
        self.folder = Path(tempfile.mkdtemp(prefix="cardfile-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.log = self.folder / "server.log"
        self._numbers = itertools.count(1)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "cardfile",
                  "-E", "UTF8", "--no-locale", "--no-sync")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   + " ".join(f"-c {k}={v}" for k, v in self.settings.items()))
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              cwd=self.folder)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr}\n{log}")

    @property
    def version(self) -> str:
        """The server's major version (the name of its ``/usr/lib/postgresql`` folder)."""
        return self.bin_dir.parent.name

    def postmaster_pid(self) -> int:
        """The server's first process, parent of every other (``postmaster.pid``, line 1)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://cardfile@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "cardfile_test") -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"{prefix}_{next(self._numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
