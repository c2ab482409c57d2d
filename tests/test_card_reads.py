"""Card files read a few at a time (``card_reads``): every card, in order, and no file left open."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

from cardfile.plugin.store import card_reads


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _cards(folder: Path, count: int) -> list[str]:
    names = [f"card-{i:03}.vcf" for i in range(count)]
    for i, name in enumerate(names):
        (folder / name).write_bytes(f"BEGIN:VCARD\r\nFN:Person {i}\r\nEND:VCARD\r\n".encode())
    return names


def test_every_card_comes_in_order_with_its_own_text(tmp_path: Path) -> None:
    names = _cards(tmp_path, 40)
    names.insert(7, "gone.vcf")  # listed, then deleted before it was read
    before = _open_fds()
    got = []
    for name, fd in card_reads.opened_ahead(str(tmp_path), names, str, ahead=5):
        if isinstance(fd, OSError):
            got.append((name, type(fd).__name__))
            continue
        try:
            got.append((name, card_reads.read_served(fd, 10).decode()))
        finally:
            os.close(fd)
    assert [name for name, _ in got] == names
    assert got[7] == ("gone.vcf", "FileNotFoundError")
    assert got[0][1] == "BEGIN:VCARD\r\nFN:Person 0\r\nEND:VCARD\r\n"
    assert got[40][1].startswith("BEGIN:VCARD\r\nFN:Person 39\r\n")
    assert _open_fds() == before


def test_a_reader_that_stops_early_leaves_no_file_open(tmp_path: Path) -> None:
    names = _cards(tmp_path, 30)
    before = _open_fds()
    reads = card_reads.opened_ahead(str(tmp_path), names, str, ahead=8)
    name, fd = next(reads)
    assert isinstance(fd, int)
    os.close(fd)  # the caller's; the 8 opened ahead are the iterator's
    assert _open_fds() == before + 8
    reads.close()  # a client gone mid-answer
    assert _open_fds() == before


def test_a_byte_order_mark_is_never_served(tmp_path: Path) -> None:
    text = b"BEGIN:VCARD\r\nFN:Ren\xc3\xa9e\r\nEND:VCARD\r\n"
    (tmp_path / "bom.vcf").write_bytes(card_reads.BOM + text)
    (tmp_path / "plain.vcf").write_bytes(text)
    for name in ("bom.vcf", "plain.vcf"):
        fd = os.open(tmp_path / name, os.O_RDONLY)
        try:
            assert card_reads.served_size(fd) == len(text)
            assert card_reads.read_served(fd, os.fstat(fd).st_size) == text
        finally:
            os.close(fd)
    assert card_reads.served(card_reads.BOM * 2 + text) == card_reads.BOM + text  # one mark only


_FEW_DESCRIPTORS = """
import os, resource, sys
from cardfile.plugin.store import card_reads
folder, count = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(folder))
in_use = len(os.listdir("/proc/self/fd"))
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 5, hard))
read = 0
for name, fd in card_reads.opened_ahead(folder, names, str, ahead=16):
    assert isinstance(fd, int), (name, fd)
    read += len(card_reads.read_served(fd, 10))
    os.close(fd)
print(len(names), read)
"""


def test_out_of_descriptors_the_cards_opened_ahead_are_read_first(tmp_path: Path) -> None:
    """A process near its open-file limit reads every card (the ahead files are read,
    then the open is tried again): none is taken for deleted."""
    names = _cards(tmp_path, 40)
    done = subprocess.run([sys.executable, "-c", _FEW_DESCRIPTORS, str(tmp_path), "40"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    count, size = map(int, done.stdout.split())
    assert count == len(names) and size == sum((tmp_path / n).stat().st_size for n in names)


def test_only_a_missing_file_counts_as_a_deleted_card(tmp_path: Path) -> None:
    reads = card_reads.opened_ahead(str(tmp_path), ["missing.vcf"], str)
    _, error = next(reads)
    assert isinstance(error, OSError) and card_reads.is_gone(error)
    assert not card_reads.is_gone(OSError(errno.EMFILE, "Too many open files"))
    assert not card_reads.is_gone(OSError(errno.EIO, "Input/output error"))
