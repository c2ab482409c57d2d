"""A user's mistake on the command line ends in one sentence and changes nothing."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, USER, cardfile_command, free_port, run_cli
from tests.davclient import card

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")


def cardfile(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cardfile_command(), *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def assert_one_sentence(result: subprocess.CompletedProcess[str], *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert output.strip().startswith("Error:") or "Error:" in output, output
    for word in words:
        assert word in output, (word, output)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    run_cli("user", "add", USER, "--password-stdin", data_dir=folder, stdin=PASSWORD + "\n")
    source = tmp_path / "one.vcf"
    source.write_text(card("one", "Olive One", "EMAIL:olive@example.org"), newline="")
    run_cli("import", str(source), "--user", USER, data_dir=folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "cardfile-index" not in p.name and ".Radicale" not in p.name}


def test_a_busy_port_is_named(data: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = cardfile("serve", "--port", str(port), "--data-dir", str(data))
    assert_one_sentence(result, f"127.0.0.1:{port}", "--port")


def test_an_unwritable_output_file_is_named(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "out.vcf"
    result = cardfile("export", "-o", str(target), "--user", USER, "--data-dir", str(data))
    assert_one_sentence(result, str(target))


@pytest.mark.parametrize("command", [["contacts", "list"], ["export", "--format", "csv"]])
def test_an_unknown_category_is_named_with_where_to_see_them(data: Path, tmp_path: Path,
                                                              command: list[str]) -> None:
    """A category name mistyped says so (once it said nothing, or listed no one)."""
    friend = tmp_path / "friend.vcf"
    friend.write_text(card("fred", "Fred Friend", "CATEGORIES:Friends"), newline="")
    run_cli("import", str(friend), "--user", USER, data_dir=data)
    target = tmp_path / "out.csv"
    result = cardfile(*command, "--category", "Freinds", "--user", USER, "--data-dir",
                      str(data), *(["-o", str(target)] if command[0] == "export" else []))
    assert_one_sentence(result, "'Freinds'", "cardfile categories list")
    assert not target.exists()
    found = cardfile(*command, "--category", "friends", "--user", USER, "--data-dir",
                     str(data))
    assert found.returncode == 0 and "Fred Friend" in found.stdout, found
    assert "Olive One" not in found.stdout


def test_an_unknown_merge_id_is_named_with_the_flags_given(data: Path) -> None:
    before = snapshot(data)
    result = cardfile("dedupe", "--undo", "no-such-merge", "--user", USER,
                      "--data-dir", str(data))
    assert_one_sentence(result, "no-such-merge", f"--data-dir {data}", "--history")
    assert snapshot(data) == before


@pytest.mark.parametrize("text,words", [
    ("[server\nhosts = x\n", ["cannot be read"]),
    ("[server]\nmax_connections = lots\n", ["max_connections", "lots"]),
])
def test_a_bad_config_file_is_named(data: Path, tmp_path: Path, text: str,
                                    words: list[str]) -> None:
    config = tmp_path / "bad.conf"
    config.write_text(text)
    for args in (["serve", "--port", str(free_port())], ["contacts", "list"]):
        result = cardfile(*args, "--config", str(config), "--data-dir", str(data))
        assert_one_sentence(result, str(config), *words)


def test_a_data_dir_typo_creates_nothing(tmp_path: Path, data: Path, cli_store: str) -> None:
    typo = tmp_path / "dtaa"
    if cli_store:
        # With PostgreSQL a data folder is only this machine's copy of the database's
        # state: a mistyped one is made and filled from the database, and splits nothing.
        listed = cardfile("contacts", "list", "--data-dir", str(typo))
        assert listed.returncode == 0 and "Olive One" in listed.stdout, listed
        return
    for args in (["contacts", "list"], ["search", "olive"], ["export"],
                 ["import", "-"], ["categories", "list"]):
        result = cardfile(*args, "--data-dir", str(typo), stdin=card("x", "X Y"))
        assert result.returncode != 0 and "Traceback" not in result.stderr, (args, result)
        assert not typo.exists(), args


@pytest.mark.parametrize("args,words", [
    (["categories", "members", "Work", "--add", "one", "--book", "contcts"],
     ["no address book", "contcts"]),
    (["categories", "rename", "Work", "Job", "--book", "contcts"], ["contcts"]),
    (["categories", "remove", "Work", "--book", "contcts"], ["contcts"]),
    (["categories", "add", "Work", "--book", "contcts"], ["contcts"]),
    (["categories", "add", "Work", "--user", "nobdy"], ["no user 'nobdy'", USER]),
    (["categories", "members", "Work", "--add", "one", "--user", "nobdy"], ["nobdy"]),
    (["import", "-", "--user", "nobdy"], ["nobdy"]),
    (["categories", "group-cards", "always", "--user", "nobdy"], ["nobdy"]),
])
def test_a_mistyped_book_or_user_makes_no_book(data: Path, args: list[str],
                                               words: list[str]) -> None:
    """A new, empty book appeared on the user's phones (or a folder for nobody) after a
    command that failed, or that wrote to the wrong place."""
    before = sorted(p.relative_to(data).as_posix() for p in (data / "collection-root").rglob("*")
                    if p.is_dir())
    result = cardfile(*args, "--data-dir", str(data), stdin=card("x", "X Y"))
    assert_one_sentence(result, *words)
    assert sorted(p.relative_to(data).as_posix() for p in (data / "collection-root").rglob("*")
                  if p.is_dir()) == before


def test_a_removed_users_contacts_are_still_theirs_to_read_but_not_to_log_in_to(
        data: Path, tmp_path: Path) -> None:
    run_cli("user", "add", "bob", "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    source = tmp_path / "bob.vcf"
    source.write_text(card("b1", "Bob Friend"), newline="")
    run_cli("import", str(source), "--user", "bob", data_dir=data)
    run_cli("user", "remove", "bob", data_dir=data)
    listed = cardfile("contacts", "list", "--user", "bob", "--data-dir", str(data))
    assert listed.returncode == 0 and "Bob Friend" in listed.stdout
    exported = cardfile("export", "--user", "bob", "--data-dir", str(data))
    assert exported.returncode == 0 and "UID:b1" in exported.stdout
    assert_one_sentence(cardfile("devices", "add", "Phone", "--user", "bob", "--data-dir",
                                 str(data)), "no user 'bob'")


def test_a_dry_run_writes_nothing(tmp_path: Path, data: Path, cli_store: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, data):
        before = sorted(p.name for p in folder.rglob("*"))
        content = snapshot(folder)
        result = cardfile("import", "-", "--dry-run", "--data-dir", str(folder),
                          "--user", USER, stdin=card("new", "Nia New"))
        assert result.returncode == 0, result.stderr
        assert "Would import" in result.stdout and "added 1" in result.stdout
        if not cli_store:  # (on PostgreSQL the folder is the machine's copy of its state)
            assert sorted(p.name for p in folder.rglob("*")) == before
            assert snapshot(folder) == content
    listed = cardfile("contacts", "list", "--data-dir", str(data), "--user", USER)
    assert listed.returncode == 0 and "Olive One" in listed.stdout
    assert "Nia New" not in listed.stdout


def test_every_command_names_the_same_default_user(data: Path) -> None:
    """The only user in htpasswd is the default of every command, not the login name."""
    listed = cardfile("contacts", "list", "--data-dir", str(data))
    found = cardfile("search", "olive", "--data-dir", str(data))
    categories = cardfile("categories", "list", "--data-dir", str(data))
    assert listed.returncode == found.returncode == categories.returncode == 0
    assert "Olive One" in listed.stdout and "Olive One" in found.stdout
