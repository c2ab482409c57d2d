"""Backup and restore bring back every card of every book of every user, whatever its name.

A card's file name is the name a client gave it in the URL. Names that
collide with Cardfile's own files at the top of the data folder (the index,
the first-run password) must still be archived when they are cards inside a
book, and a name a restore would refuse (a backslash) is refused at upload,
so a backup never holds something it cannot bring back.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from urllib.parse import quote

from tests.conftest import ServerProcess, free_port, run_cli, start_server
from tests.davclient import DavClient, card

USERS = {"alice": "alice's long phrase", "bob": "bob's long phrase",
         "carol": "carol's long phrase"}
NAMES = ["plain.vcf", "with space.vcf", "Zoë Ünïcode 名前.vcf", "100% sure.vcf",
         "a@b.example.vcf", "x" * 180 + ".vcf", "cardfile-index.sqlite3",
         "cardfile-index.sqlite3-wal", "first-run-password", "htpasswd",
         "replaced-20240101.vcf", "cardfile-backup.json"]
MKCOL = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
         "<D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
         "</D:prop></D:set></D:mkcol>")


def _books(client: DavClient) -> list[str]:
    return [f"/{client.user}/contacts/", f"/{client.user}/work/"]


def _everything(server: ServerProcess) -> dict[str, dict[str, tuple[str, str]]]:
    """book -> href -> (etag, body) for every book of every user, over CardDAV."""
    seen = {}
    for user, password in USERS.items():
        client = server.client(user, password)
        for book in _books(client):
            etags = client.etags_of(book)
            seen[book] = {href: (etag, client.request("GET", href)[2])
                          for href, etag in etags.items()}
    return seen


def test_every_book_of_every_user_round_trips_with_unusual_names(tmp_path: Path) -> None:
    server = start_server(tmp_path, USERS)
    try:
        for user, password in USERS.items():
            client = server.client(user, password)
            assert client.request("PROPFIND", f"/{user}/", headers={"Depth": "1"})[0] == 207
            assert client.request("MKCOL", f"/{user}/work/", MKCOL,
                                  {"Content-Type": "application/xml"})[0] == 201
            for book in _books(client):
                for i, name in enumerate(NAMES):
                    text = card(f"{user}-{book.split('/')[2]}-{i}", f"Person Number{i}",
                                "CATEGORIES:Family" if i % 2 else "CATEGORIES:Work")
                    status, _, body = client.put(quote(name), text, book=book)
                    assert status == 201, (name, body)
        alice = server.client("alice", USERS["alice"])
        status, _, reason = alice.put(quote("back\\slash.vcf"), card("bs", "Back Slash"))
        assert status == 400 and "backslash" in reason
        assert not (server.book_dir("alice") / "back\\slash.vcf").exists()
        before = _everything(server)
        # Made by another program: the backup leaves it out and says so.
        (server.book_dir("carol") / "other\\program.vcf").write_text(card("op", "Other Prog"))
        archive = tmp_path / "backup.tar.gz"
        result = run_cli("backup", str(archive), data_dir=server.data_dir)
        assert "other\\\\program.vcf" in result.stderr and "left out" in result.stderr
    finally:
        assert server.stop() == 0
    (server.book_dir("carol") / "other\\program.vcf").unlink()
    assert sum(len(cards) for cards in before.values()) == len(USERS) * 2 * len(NAMES)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "collection-root/alice/contacts/cardfile-index.sqlite3" in names
    assert "collection-root/bob/work/first-run-password" in names
    assert "cardfile-index.sqlite3" not in names  # the real index, at the top, stays out

    target = tmp_path / "restored"
    run_cli("restore", str(archive), data_dir=target)
    restored = ServerProcess(target, free_port())
    try:
        assert _everything(restored) == before
    finally:
        assert restored.stop() == 0
    for user in USERS:
        for book in ("contacts", "work"):
            on_disk = {p.name for p in (target / "collection-root" / user / book).iterdir()
                       if not p.name.startswith(".")}
            assert on_disk == set(NAMES)


def test_a_backslash_in_a_book_name_or_move_target_is_refused(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"alice": USERS["alice"]})
    try:
        client = server.client("alice", USERS["alice"])
        assert client.request("PROPFIND", "/alice/", headers={"Depth": "1"})[0] == 207
        status, _, reason = client.request("MKCOL", quote("/alice/a\\b/"), MKCOL,
                                           {"Content-Type": "application/xml"})
        assert status == 400 and "backslash" in reason
        assert client.put("ok.vcf", card("ok", "Okay Card"))[0] == 201
        target = quote("x\\y.vcf")
        status, _, reason = client.request(
            "MOVE", "/alice/contacts/ok.vcf",
            headers={"Destination": f"{server.url}/alice/contacts/{target}"})
        assert status == 400 and "backslash" in reason
        assert (server.book_dir("alice") / "ok.vcf").is_file()
    finally:
        assert server.stop() == 0
