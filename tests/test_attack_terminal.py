"""A card file's control characters reach a terminal as visible escapes, never as commands.

A card sent by a client or imported has them removed, but a card file placed
in the data folder by hand, or synced into it by another program, is read as
it is: printed raw, an ESC in a name is a command to the terminal of whoever
lists their contacts (erase the screen, set the title, write the clipboard).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cardfile_command, run_cli
from tests.davclient import card

USER = "alice"
#: OSC 0 (set the window title), CSI 2J (erase the screen), a C1 CSI, a bell.
HOSTILE_NAME = "Mallory\x1b]0;owned\x07 Evil"
HOSTILE_EMAIL = "m\x1b[2Jx@example.org"
HOSTILE_NOTE = "call\u009b6n now"
HOSTILE_CATEGORY = "Friends\x1b]52;c;cGFzdGU=\x07"  # OSC 52: write the clipboard


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", "--allow-weak", data_dir=data,
            stdin="pw\n")
    plain = tmp_path / "plain.vcf"
    plain.write_text(card("plain-1", "Plain Person"))
    run_cli("import", str(plain), "--user", USER, data_dir=data)
    book = data / "collection-root" / USER / "contacts"
    (book / "evil.vcf").write_text(card("evil-1", HOSTILE_NAME, f"EMAIL:{HOSTILE_EMAIL}",
                                        f"NOTE:{HOSTILE_NOTE}",
                                        f"CATEGORIES:{HOSTILE_CATEGORY}"), newline="")
    return data


def _on_a_terminal(*args: str, data_dir: Path) -> bytes:
    """What ``cardfile ARGS`` writes to a terminal (standard output and error)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*cardfile_command(), *args, "--data-dir", str(data_dir)],
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    output = b""
    try:
        while True:
            assert select.select([master], [], [], 60)[0], output
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command ended and its terminal closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        proc.wait(timeout=60)
        os.close(master)
    assert proc.returncode == 0, output
    return output


def _runs_nothing(output: bytes) -> bool:
    """No ESC, bell or C1 control reached the terminal."""
    return not any(char in output for char in (b"\x1b", b"\x07", "\u009b".encode()))


@pytest.mark.parametrize("command", [
    ("contacts", "list"), ("search", "Mallory"), ("contacts", "show", "evil-1"), ("export",),
    ("categories", "list"),
])
def test_a_terminal_is_shown_the_control_characters_of_a_card_file(
        data: Path, command: tuple[str, ...]) -> None:
    output = _on_a_terminal(*command, "--user", USER, data_dir=data)
    assert _runs_nothing(output), output
    if command[0] == "categories":
        assert b"Friends\\x1b]52;c;cGFzdGU=\\x07" in output, output
    else:
        assert b"Mallory\\x1b]0;owned\\x07 Evil" in output, output
    if command in (("contacts", "list"), ("export",)):
        assert b"Plain Person" in output, output


def test_the_import_progress_bar_is_still_drawn(data: Path, tmp_path: Path) -> None:
    """The CLI's own drawing (a CR, then click's escape codes) is not escaped."""
    many = tmp_path / "many.vcf"
    many.write_text("".join(card(f"many-{i}", f"Many Person{i}") for i in range(250)))
    output = _on_a_terminal("import", str(many), "--user", USER, data_dir=data)
    assert b"\rImporting" in output.replace(b"\x1b[?25l", b"") and b"\\r" not in output, output
    assert b"added 250" in output, output


@pytest.mark.parametrize("command", [("export",), ("contacts", "show", "evil-1", "--format",
                                                   "vcard")])
def test_a_pipe_gets_the_cards_exactly(data: Path, command: tuple[str, ...]) -> None:
    """A card written into a file or another program is the card's own text (before,
    click cut what looked like a colour code out of it)."""
    written = run_cli(*command, "--user", USER, data_dir=data).stdout
    assert HOSTILE_NAME in written and HOSTILE_EMAIL in written
