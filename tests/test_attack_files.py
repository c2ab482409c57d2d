"""File modes of everything Cardfile writes, and where the first-run password goes.

Another account on the same machine must not be able to read anyone's cards,
the index or the password hashes, whichever command wrote them and whatever
umask the person who ran it had. The first-run password must reach the
person, not a log (a service manager's journal keeps standard output).
"""

from __future__ import annotations

import getpass
import os
import pty
import re
import select
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, cardfile_command, free_port, run_cli
from tests.davclient import DavClient, card

USER, PASSWORD = "alice", "a private set of words"


@pytest.fixture(autouse=True)
def _loose_umask() -> Iterator[None]:
    """Run every command as someone with the common 022 umask would."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _loose_entries(root: Path) -> list[str]:
    """Every file or folder under ``root`` (itself included) others could read."""
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(root.parent)} {mode:04o}")
    return loose


def test_every_file_any_command_writes_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    vcf = tmp_path / "import.vcf"
    vcf.write_text(card("imported-1", "Ada Lovelace", "CATEGORIES:Friends"))
    run_cli("import", str(vcf), data_dir=data)
    run_cli("categories", "add", "Empty one", data_dir=data)
    srv = ServerProcess(data, free_port())
    try:
        client = srv.client(USER, PASSWORD)
        assert client.put("put-1.vcf", card("put-1", "Grace Hopper", "CATEGORIES:Work"))[0] == 201
        index = data / "cardfile-index.sqlite3"
        assert Path(f"{index}-wal").exists()
        loose_while_serving = _loose_entries(data)
    finally:
        assert srv.stop() == 0
    assert loose_while_serving == []
    assert _loose_entries(data) == []
    archive = tmp_path / "backup.tar.gz"
    run_cli("backup", str(archive), data_dir=data)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    restored = tmp_path / "restored"
    run_cli("restore", str(archive), data_dir=restored)
    assert (restored / "collection-root" / USER / "contacts" / "put-1.vcf").is_file()
    assert _loose_entries(restored) == []


def test_serve_makes_a_loose_data_folder_private_and_says_so_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    data.chmod(0o755)
    (data / "htpasswd").chmod(0o644)
    srv = ServerProcess(data, free_port())
    assert srv.stop() == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "htpasswd").stat().st_mode) == 0o600
    assert "readable by other users" in srv.log() and str(data) in srv.log()
    again = ServerProcess(data, free_port())
    assert again.stop() == 0
    assert "readable by other users" not in again.log()


def _first_user_login(data: Path, port: int, password: str) -> int:
    user = getpass.getuser()
    client = DavClient(f"http://127.0.0.1:{port}", user, password)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            return client.request("PROPFIND", f"/{user}/")[0]
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not answer")


def test_first_run_password_goes_to_a_private_file_when_stdout_is_no_terminal(
        tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    srv = ServerProcess(data, free_port())  # stdout and stderr go to a log file
    try:
        log = srv.log()
        password_file = data / "first-run-password"
        assert str(password_file) in log
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        match = re.search(r"Password: (\S+)", password_file.read_text())
        assert match
        password = match.group(1)
        assert password not in srv.log()
        assert _first_user_login(data, srv.port, password) == 207
    finally:
        assert srv.stop() == 0
    assert password not in srv.log()
    user = re.search(r"User:\s+(\S+)", log)
    assert user
    run_cli("user", "passwd", user.group(1), "--password-stdin", data_dir=data,
            stdin="another long passphrase\n")
    assert not password_file.exists()


def test_first_run_password_is_shown_on_a_terminal_and_not_logged(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    port = free_port()
    master, slave = pty.openpty()
    errors = tmp_path / "stderr.log"
    with open(errors, "w") as err:
        proc = subprocess.Popen(
            [*cardfile_command(), "serve", "--port", str(port), "--data-dir", str(data)],
            stdout=slave, stderr=err, stdin=subprocess.DEVNULL)
    os.close(slave)
    try:
        output = b""
        deadline = time.monotonic() + 30
        while b"Password:" not in output or not output.endswith(b"\n"):
            assert time.monotonic() < deadline, output
            if select.select([master], [], [], 0.5)[0]:
                output += os.read(master, 4096)
        match = re.search(rb"Password: (\S+)", output)
        assert match, output
        password = match.group(1).decode()
        assert _first_user_login(data, port, password) == 207
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        os.close(master)
    assert not (data / "first-run-password").exists()
    assert password not in errors.read_text()
