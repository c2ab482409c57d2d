"""``cardfile backup`` / ``cardfile restore``: a consistent archive, brought back whole,
and hostile or damaged archives refused before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.conftest import USER, ServerProcess, free_port, run_cli, start_server
from tests.davclient import card

PASSWORD = "backup passphrase"


def _files(data_dir: Path) -> dict[str, str]:
    """Every card and store file -> SHA-256 (what a restore must bring back)."""
    root = data_dir / "collection-root"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".Radicale.cache" not in p.parts
            and not p.name.startswith(".Radicale.tmp")}


def test_backup_while_serving_then_restore_into_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    server = start_server(tmp_path / "one", {USER: PASSWORD})
    try:
        client = server.client(USER, PASSWORD)
        assert client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
        cards = {
            f"c{i}.vcf": card(f"c{i}", f"Person Number{i}", f"EMAIL:p{i}@example.com",
                              "CATEGORIES:Family,Work" if i % 2 else "CATEGORIES:Friends",
                              "NOTE:Met in Berlin\\, 2019; café ☕")
            for i in range(40)}
        cards["v4.vcf"] = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:v4\r\nFN:Four Photo\r\n"
                           "PHOTO:data:image/png;base64,iVBORw0KGgo=\r\nEND:VCARD\r\n")
        for name, text in cards.items():
            assert client.put(name, text)[0] == 201
        run_cli("categories", "add", "Book Club", "--color", "#3366cc", "--user", USER,
                data_dir=server.data_dir)
        served = {name: client.get(name)[2] for name in cards}
        etags = client.etags()
        archive = tmp_path / "backup.tar.gz"
        result = run_cli("backup", str(archive), data_dir=server.data_dir)
        assert f"Backed up {len(cards)} card(s)" in result.stdout
        before = _files(server.data_dir)
        categories = run_cli("categories", "list", "--json", "--user", USER,
                             data_dir=server.data_dir).stdout
    finally:
        server.stop()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "cardfile-backup.json" in names and "htpasswd" in names
    assert not [n for n in names if "cardfile-index" in n or ".Radicale.lock" in n]
    assert archive.stat().st_mode & 0o077 == 0

    target = tmp_path / "two" / "data"
    result = run_cli("restore", str(archive), data_dir=target)
    assert f"Restored {len(cards)} card(s)" in result.stdout and USER in result.stdout
    assert _files(target) == before
    assert run_cli("categories", "list", "--json", "--user", USER,
                   data_dir=target).stdout == categories
    restored = ServerProcess(target, free_port())
    try:
        client = restored.client(USER, PASSWORD)  # the login came back too
        assert client.etags() == etags
        for name, text in served.items():
            assert client.get(name)[2] == text
    finally:
        restored.stop()


def test_restore_never_overwrites_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    run_cli("import", "-", "--format", "vcard", "--user", USER, data_dir=data,
            stdin=card("old-1", "Old Card"))
    archive = tmp_path / "a.tar.gz"
    run_cli("backup", str(archive), data_dir=data)
    run_cli("import", "-", "--format", "vcard", "--user", USER, data_dir=data,
            stdin=card("new-1", "New Card"))
    current = _files(data)
    result = run_cli("restore", str(archive), data_dir=data, check=False)
    assert result.returncode != 0 and "--force" in result.stderr
    assert _files(data) == current
    result = run_cli("restore", str(archive), "--force", data_dir=data)
    assert "kept in" in result.stdout
    aside = next(data.glob("replaced-*"))
    assert any("New Card" in p.read_text() for p in (aside / "collection-root").rglob("*.vcf"))
    texts = [p.read_text() for p in (data / "collection-root").rglob("*.vcf")]
    assert any("Old Card" in t for t in texts) and not any("New Card" in t for t in texts)
    # A later backup leaves the moved-aside copy out.
    run_cli("backup", str(tmp_path / "b.tar.gz"), data_dir=data)
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert not [n for n in tar.getnames() if n.startswith("replaced-")]


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
             manifest: bool = True) -> None:
    files = {info.name: hashlib.sha256(data).hexdigest() for info, data in members
             if info.isfile()}
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
        if manifest:
            text = json.dumps({"format": 1, "files": files}).encode()
            info = tarfile.TarInfo("cardfile-backup.json")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_hostile_archives_are_refused_and_write_nothing(tmp_path: Path) -> None:
    good = ("collection-root/alice/contacts/a.vcf", card("a", "Ay Bee").encode())
    cases = {
        "dotdot": [(_file("../escaped.vcf"), b"x")],
        "nested dotdot": [(_file("collection-root/../../escaped.vcf"), b"x")],
        "absolute": [(_file("/tmp/escaped.vcf"), b"x")],
        "symlink": [(_link("collection-root/alice/contacts/l.vcf", "/etc/passwd"), b"")],
        "hardlink": [(_link("collection-root/x", "/etc/passwd", tarfile.LNKTYPE), b"")],
        "device": [(_link("collection-root/dev", "", tarfile.CHRTYPE), b"")],
        "backslash": [(_file("collection-root\\..\\..\\escaped.vcf"), b"x")],
        "index file": [(_file("cardfile-index.sqlite3"), b"x")],
    }
    target = tmp_path / "data"
    for label, members in cases.items():
        archive = tmp_path / f"{label.replace(' ', '-')}.tar.gz"
        _archive(archive, [(_file(good[0]), good[1]), *members])
        result = run_cli("restore", str(archive), data_dir=target, check=False)
        assert result.returncode != 0, label
        assert "nothing was restored" in result.stderr, (label, result.stderr)
        assert not (target / "collection-root" / "alice").exists(), label
    assert not list(tmp_path.rglob("escaped.vcf"))
    # No manifest, a file that does not match it, or not a tar at all: refused too.
    plain = tmp_path / "plain.tar.gz"
    _archive(plain, [(_file(good[0]), good[1])], manifest=False)
    bad = tmp_path / "tampered.tar.gz"
    _archive(bad, [(_file(good[0]), good[1])])
    with tarfile.open(bad) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore
    members[0] = (members[0][0], good[1].replace(b"Ay Bee", b"Evil Er"))
    with tarfile.open(bad, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    truncated = tmp_path / "truncated.tar.gz"
    _archive(truncated, [(_file(good[0]), good[1] * 2000)])
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    for archive in (plain, bad, junk, truncated):
        result = run_cli("restore", str(archive), data_dir=target, check=False)
        assert result.returncode != 0 and "Error:" in result.stderr, archive
        assert not (target / "collection-root" / "alice").exists(), archive
