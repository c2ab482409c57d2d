"""``cardfile user add`` and ``user passwd`` refuse passwords a person should not use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port, run_cli

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")

STRONG = "a long and private phrase"


@pytest.mark.parametrize(("password", "why"), [
    ("short1!", "at least 10"),
    ("password123", "most common passwords"),
    ("1234567890", "most common passwords"),
    ("QWERTYUIOP", "most common passwords"),
    ("carol", "at least 10"),
    ("carolcarolcarol", "user name"),
    ("Carol2024!!", "user name"),
    ("aaaaaaaaaaaaaaaa", "different character"),
])
def test_weak_password_is_refused_with_a_reason(tmp_path: Path, password: str,
                                                why: str) -> None:
    data = tmp_path / "data"
    result = run_cli("user", "add", "carol", "--password-stdin", data_dir=data,
                     stdin=password + "\n", check=False)
    assert result.returncode != 0
    assert why in result.stderr and "--allow-weak" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("user", "list", data_dir=data).stdout.split() == []


def test_passwd_refuses_a_weak_password_and_keeps_the_old_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli("user", "add", "carol", "--password-stdin", data_dir=data, stdin=STRONG + "\n")
    before = (data / "htpasswd").read_text()
    result = run_cli("user", "passwd", "carol", "--password-stdin", data_dir=data,
                     stdin="letmein\n", check=False)
    assert result.returncode != 0 and "at least 10" in result.stderr
    assert "Traceback" not in result.stderr
    assert (data / "htpasswd").read_text() == before


def test_allow_weak_keeps_a_weak_password_that_then_logs_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli("user", "add", "carol", "--password-stdin", "--allow-weak", data_dir=data,
            stdin="password\n")
    srv = ServerProcess(data, free_port())
    try:
        assert srv.client("carol", "password").request("PROPFIND", "/carol/")[0] == 207
    finally:
        assert srv.stop() == 0
    run_cli("user", "passwd", "carol", "--password-stdin", "--allow-weak", data_dir=data,
            stdin="qwerty\n")


def test_a_strong_password_is_accepted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_cli("user", "add", "carol", "--password-stdin", data_dir=data,
                     stdin=STRONG + "\n")
    assert "Added user 'carol'" in result.stderr
