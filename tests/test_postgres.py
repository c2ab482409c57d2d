"""Several ``cardfile serve`` processes on one PostgreSQL database (tests/pg.py starts it).

Each server has a data folder of its own (its cache of the database, as on
separate machines) and the same user; what one is told, the others answer.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    PASSWORD,
    USER,
    ServerProcess,
    cardfile_command,
    free_port,
    run_cli,
    start_server,
)
from tests.davclient import DavClient, card
from tests.pg import Relay
from tests.test_api import Api
from tests.test_categories import (
    APPLE_UA,
    apple_group,
    categories_of,
    groups_seen,
    names,
    put_people,
)

pytestmark = pytest.mark.slow


def pg_server(tmp_path: Path, name: str, url: str) -> ServerProcess:
    folder = tmp_path / name
    folder.mkdir()
    return start_server(folder, extra_config=f"[storage]\nbackend = {url}\n")


def logged_in(server: ServerProcess) -> DavClient:
    client = server.client()
    status, _, _ = client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    assert status == 207, server.log()
    return client


@pytest.fixture
def servers(tmp_path: Path, database_url: str) -> Iterator[list[ServerProcess]]:
    yield from _pg_servers(tmp_path, database_url, ("a", "b", "c"))


def _pg_servers(tmp_path: Path, database_url: str, names: tuple[str, ...]
                ) -> Iterator[list[ServerProcess]]:
    """Servers on one database, each with its own data folder; stopped afterwards."""
    started: list[ServerProcess] = []
    try:
        for name in names:
            started.append(pg_server(tmp_path, name, database_url))
        yield started
    finally:
        for srv in started:
            srv.stop()


def test_a_card_written_through_one_server_is_read_and_synced_through_the_others(
        servers: list[ServerProcess]) -> None:
    a, b, c = (logged_in(s) for s in servers)
    _, token_b, _ = b.sync()
    status, headers, _ = a.put("ann.vcf", card("ann", "Ann Lee", "EMAIL:ann@example.org"))
    assert status == 201
    etag = headers["etag"]

    status, headers, text = c.get("ann.vcf")
    assert status == 200 and "FN:Ann Lee" in text and headers["etag"] == etag
    hits = c.query('<C:prop-filter name="EMAIL"><C:text-match>ann@example'
                   '</C:text-match></C:prop-filter>')
    assert [e.href.rsplit("/", 1)[-1] for e in hits] == ["ann.vcf"]
    status, token_after, changed = b.sync(token_b)
    assert status == 207 and [e.href.rsplit("/", 1)[-1] for e in changed] == ["ann.vcf"]

    # A token one server gave is understood by another: the revision is the database's.
    assert b.delete("ann.vcf", if_match=etag) in (200, 204)
    status, _, changed = c.sync(token_after)
    assert status == 207
    assert [(e.href.rsplit("/", 1)[-1], e.status) for e in changed] == [("ann.vcf", 404)]
    assert a.get("ann.vcf")[0] == 404


def test_if_match_holds_across_servers(servers: list[ServerProcess]) -> None:
    a, b, _ = (logged_in(s) for s in servers)
    _, headers, _ = a.put("bo.vcf", card("bo", "Bo Day"))
    first = headers["etag"]
    assert b.put("bo.vcf", card("bo", "Bo Day", "NOTE:from b"), if_match=first)[0] == 204
    # a's copy is stale: its If-Match fails although a never saw b's write itself.
    status, _, _ = a.put("bo.vcf", card("bo", "Bo Day", "NOTE:from a"), if_match=first)
    assert status == 412
    assert "NOTE:from b" in a.get("bo.vcf")[2]


def test_eight_concurrent_writers_across_servers_lose_no_update(
        servers: list[ServerProcess]) -> None:
    """Each writer adds its own line to one card, retrying on 412: all eight lines survive."""
    clients = [logged_in(s) for s in servers]
    assert clients[0].put("shared.vcf", card("shared", "Shared Card"))[0] == 201

    def add_line(n: int) -> int:
        client = clients[n % 3]
        for attempt in range(200):
            status, headers, text = client.get("shared.vcf")
            assert status == 200
            lines = text.replace("END:VCARD\r\n", f"NOTE:writer {n}\r\nEND:VCARD\r\n")
            assert lines != text, text
            status, answer, _ = client.put("shared.vcf", lines, if_match=headers["etag"])
            if status == 204:
                log.append((n, headers["etag"][:8], answer.get("etag", "")[:8],
                            len(re.findall("NOTE", text))))
                return attempt
            assert status == 412, status
        raise AssertionError(f"writer {n} never got its update in")

    log: list[tuple[int, str, str, int]] = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(add_line, range(8)))
    for client in clients:
        text = client.get("shared.vcf")[2]
        assert sorted(re.findall(r"NOTE:writer (\d)", text)) == [str(n) for n in range(8)], log


def test_a_uid_taken_by_two_servers_at_once_gives_one_201_and_one_409(
        servers: list[ServerProcess]) -> None:
    a, b, _ = (logged_in(s) for s in servers)
    for round_ in range(5):
        uid = f"same-{round_}"
        barrier = threading.Barrier(2)

        def put(client: DavClient, name: str, uid: str = uid,
                barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return client.put(name, card(uid, "Same Person"))[0]

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(put, (a, b), (f"a-{round_}.vcf", f"b-{round_}.vcf")))
        assert results == [201, 409]
        hrefs = [e.href for e in a.query(f'<C:prop-filter name="UID"><C:text-match '
                                         f'match-type="equals">{uid}</C:text-match>'
                                         '</C:prop-filter>')]
        assert len(hrefs) == 1


def test_a_server_killed_right_after_a_201_loses_no_card(servers: list[ServerProcess]) -> None:
    a, b, _ = (logged_in(s) for s in servers)
    status, headers, _ = a.put("kept.vcf", card("kept", "Kept Card"))
    assert status == 201
    servers[0].process.send_signal(signal.SIGKILL)
    servers[0].process.wait()
    status, got, text = b.get("kept.vcf")
    assert status == 200 and "FN:Kept Card" in text and got["etag"] == headers["etag"]


def test_an_unreachable_database_is_a_503_with_retry_after_and_then_served_again(
        tmp_path: Path, database_url: str, postgres: object) -> None:
    relay = Relay(postgres.port)  # type: ignore[attr-defined]
    url = relay.url(database_url.rsplit("/", 1)[-1])
    folder = tmp_path / "relayed"
    folder.mkdir()
    srv = start_server(folder, extra_config=f"[storage]\nbackend = {url}\n"
                                            "database_timeout = 1\n")
    try:
        client = logged_in(srv)
        assert client.put("x.vcf", card("x", "Ex Why"))[0] == 201
        relay.cut()
        for method, address, body in (("GET", "/alice/contacts/x.vcf", None),
                                      ("PUT", "/alice/contacts/y.vcf", card("y", "Wy Zed")),
                                      ("REPORT", "/alice/contacts/", SYNC_BODY),
                                      ("GET", "/api/books/contacts/contacts", None)):
            status, headers, text = client.request(method, address, body, headers={
                "Content-Type": "text/vcard" if method == "PUT" else "application/xml"})
            assert status == 503, (method, address, status, text)
            assert headers.get("retry-after", "").isdigit(), headers
            assert "database" in text
        relay.restore()
        # Each worker process reconnects on its own: a client that honours
        # Retry-After is served again by all of them within seconds.
        deadline = time.monotonic() + 30
        while client.get("x.vcf")[0] != 200:
            assert time.monotonic() < deadline, srv.log()[-2000:]
            time.sleep(0.2)
        while (status := client.put("y.vcf", card("y", "Wy Zed"))[0]) == 503:
            assert time.monotonic() < deadline, srv.log()[-2000:]
            time.sleep(0.2)
        assert status == 201
    finally:
        srv.stop()
        relay.cut()
    assert " 500 " not in srv.log()


SYNC_BODY = ('<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
             '<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>')


def test_a_server_refuses_a_database_of_a_newer_schema(tmp_path: Path,
                                                      database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO cardfile_schema (version) VALUES (99)")
    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", "--allow-weak", data_dir=data,
            stdin=PASSWORD + "\n")
    done = subprocess.run([*cardfile_command(), "serve", "--port", str(free_port()),
                           "--data-dir", str(data), "--database", database_url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "version 99, newer than this Cardfile knows" in done.stderr
    assert "Traceback" not in done.stderr
    # db upgrade leaves a newer database alone, and says so.
    done = subprocess.run([*cardfile_command(), "db", "upgrade", "--database", database_url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "upgrade Cardfile" in done.stderr


def test_a_server_on_a_database_without_tables_asks_for_db_upgrade(
        tmp_path: Path, postgres: object) -> None:
    url = postgres.new_database()  # type: ignore[attr-defined]
    done = subprocess.run([*cardfile_command(), "serve", "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data"), "--database", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cardfile db upgrade" in done.stderr


def test_export_and_import_move_a_book_between_the_stores_byte_for_byte(
        tmp_path: Path, database_url: str) -> None:
    """Files -> db import -> PostgreSQL server -> db export -> files: every byte kept."""
    files = start_server(tmp_path / "files" if (tmp_path / "files").mkdir() is None else
                         tmp_path)
    try:
        client = logged_in(files)
        cards = {
            "crlf.vcf": card("crlf", "Cee Arr", "EMAIL:c@example.org").encode(),
            "lf.vcf": b"BEGIN:VCARD\nVERSION:4.0\nUID:lf\nFN:\xc3\x89lo\xc3\xafse\nEND:VCARD\n",
            "folded.vcf": (b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:folded\r\nFN:Fol Ded\r\n"
                           b"NOTE:a long line that is folded \r\n  here\r\nEND:VCARD\r\n"),
        }
        for name, body in cards.items():
            assert client.put(name, body)[0] == 201
        book = files.book_dir()
        original = {name: (book / name).read_bytes() for name in cards}
        # Beside the cards: a category with its colour, and a device password.
        Api(files).ok("POST", "/api/books/contacts/categories",
                      {"name": "Climbing", "color": "#aa3300"}, status=201)
        device = json.loads(run_cli("devices", "add", "Tablet", "--user", USER, "--json",
                                    data_dir=files.data_dir).stdout)
    finally:
        files.stop()

    def check_the_small_files(server: ServerProcess) -> None:
        listed = Api(server).ok("GET", "/api/books/contacts/categories")["items"]
        assert [(x["name"], x.get("color")) for x in listed] == [("Climbing", "#aa3300")]
        tablet = server.client(USER, device["password"])
        assert tablet.request("PROPFIND", f"/{USER}/contacts/", headers={"Depth": "1"}
                              )[0] == 207

    done = subprocess.run([*cardfile_command(), "db", "import", str(files.data_dir),
                           "--database", database_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    srv = pg_server(tmp_path, "pg", database_url)
    try:
        client = logged_in(srv)
        assert client.get("lf.vcf")[2].encode() == original["lf.vcf"]
        assert client.put("new.vcf", card("new", "New One"))[0] == 201
        check_the_small_files(srv)
    finally:
        srv.stop()

    out = tmp_path / "export"
    done = subprocess.run([*cardfile_command(), "db", "export", str(out), "--database",
                           database_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    exported = out / USER / "contacts"
    for name, body in original.items():
        assert (exported / name).read_bytes() == body
    assert (exported / "new.vcf").exists()
    assert (exported / ".Radicale.props").exists()

    # ...and back to files: the export is a collection-root a file server serves as is.
    back = tmp_path / "back"
    back.mkdir()
    data = back / "data"
    data.mkdir()
    os.rename(out / ".cardfile-data", back / "small-files")
    os.rename(out, data / "collection-root")
    shutil.copytree(back / "small-files", data, dirs_exist_ok=True)
    again = ServerProcess(data, free_port())  # its users came with the export
    try:
        client = logged_in(again)
        for name, body in original.items():
            status, _, text = client.get(name)
            assert status == 200 and text.encode() == body
        check_the_small_files(again)
    finally:
        again.stop()


def test_an_apple_group_card_brought_in_by_db_import_becomes_a_category(
        tmp_path: Path, database_url: str) -> None:
    """A vdir with Apple's group cards (an export of another server) loses no group.

    The file store turns a group-card file into a category at the book's next
    write; on PostgreSQL the same happens, and the group card leaves the
    database, so no server keeps a group file that nobody is served.
    """
    folder = tmp_path / "vdir"
    folder.mkdir()
    files = start_server(folder)
    try:
        put_people(logged_in(files), ("ann", "Ann Smith"), ("bob", "Bob Jones"))
        book = files.book_dir()
    finally:
        files.stop()
    (book / "FAMILY-GROUP.vcf").write_text(apple_group("FAMILY-GROUP", "Family", ["ann"]))
    done = subprocess.run([*cardfile_command(), "db", "import", str(files.data_dir),
                           "--database", database_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr

    a, b = pg_server(tmp_path, "a", database_url), pg_server(tmp_path, "b", database_url)
    try:
        plain = logged_in(a)
        assert plain.put("cyd.vcf", card("cyd", "Cyd Brown"))[0] == 201  # the next write
        assert categories_of(plain, "ann.vcf") == {"Family"}
        apple = DavClient(b.url, USER, PASSWORD, user_agent=APPLE_UA)
        assert groups_seen(apple) == {"FAMILY-GROUP.vcf": ("Family", {"ann"})}
        assert set(logged_in(b).etags()) == {f"/{USER}/contacts/{n}.vcf"
                                             for n in ("ann", "bob", "cyd")}
    finally:
        a.stop()
        b.stop()
    out = tmp_path / "export"
    done = subprocess.run([*cardfile_command(), "db", "export", str(out), "--database",
                           database_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / USER / "contacts").glob("*.vcf")) == [
        "ann.vcf", "bob.vcf", "cyd.vcf"]


def test_pruned_tombstones_make_older_tokens_403_on_every_server(
        servers: list[ServerProcess], database_url: str) -> None:
    from cardfile.plugin.store.postgres import PgStore

    a, b, _ = (logged_in(s) for s in servers)
    for name in ("p1", "p2", "p3"):
        assert a.put(f"{name}.vcf", card(name, f"Pe {name}"))[0] == 201
    _, old_token, _ = b.sync()
    for name in ("p1", "p2"):
        assert a.delete(f"{name}.vcf") in (200, 204)
    _, recent, _ = b.sync(old_token)
    store = PgStore(database_url, pool_size=1)
    try:
        assert store.prune_tombstones(store.book(f"{USER}/contacts").coll_id, keep=0) == 2
    finally:
        store.close()
    status, _, text = b.request("REPORT", b.book, SYNC_BODY.replace(
        "<D:sync-token/>", f"<D:sync-token>{old_token}</D:sync-token>"),
        headers={"Depth": "1", "Content-Type": "application/xml"})
    assert status == 403 and "valid-sync-token" in text
    # A token from after the deletions is still good, on a server that never issued it.
    status, _, changed = a.sync(recent)
    assert status == 207 and changed == []
    assert sorted(a.etags()) == sorted(b.etags()) == [f"{a.book}p3.vcf"]


MKCOL_BOOK = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
              'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
              "<D:collection/><C:addressbook/></D:resourcetype><D:displayname>Work</D:displayname>"
              "</D:prop></D:set></D:mkcol>")


def test_books_users_devices_and_categories_made_through_one_server_reach_the_others(
        servers: list[ServerProcess]) -> None:
    """What is not a card (book properties, passwords, grants, categories) is shared too."""

    a, b, c = (logged_in(s) for s in servers)
    # A book made through a: listed, named and written through b, read through c.
    status, _, body = a.request("MKCOL", f"/{USER}/work/", MKCOL_BOOK,
                                {"Content-Type": "application/xml"})
    assert status == 201, body
    status, _, listing = b.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    assert status == 207 and f"/{USER}/work/" in listing and "Work" in listing
    assert b.put("w.vcf", card("w-1", "Wendy Work"), book=f"/{USER}/work/")[0] == 201
    status, _, text = c.request("GET", f"/{USER}/work/w.vcf")
    assert status == 200 and "FN:Wendy Work" in text

    # A category made through a's API is listed by c's, with its colour.
    Api(servers[0]).ok("POST", "/api/books/contacts/categories",
                       {"name": "Climbing", "color": "#aa3300"}, status=201)
    listed = Api(servers[2]).ok("GET", "/api/books/contacts/categories")["items"]
    assert [(x["name"], x.get("color")) for x in listed] == [("Climbing", "#aa3300")]

    # A user added with the CLI on a's machine logs in on b; a device password too.
    config = servers[0].data_dir.parent / f"config-{servers[0].port}"
    run_cli("user", "add", "dora", "--password-stdin", "--allow-weak", "--config", str(config),
            data_dir=servers[0].data_dir, stdin="dora's password\n")
    dora = servers[1].client("dora", "dora's password")
    assert dora.request("PROPFIND", "/dora/", headers={"Depth": "1"})[0] == 207
    device = run_cli("devices", "add", "Tablet", "--user", USER, "--json", "--config",
                     str(config), data_dir=servers[0].data_dir)
    password = re.search(r'"password": "([^"]+)"', device.stdout)
    assert password is not None, device.stdout
    tablet = servers[2].client(USER, password.group(1))
    assert tablet.request("PROPFIND", f"/{USER}/contacts/", headers={"Depth": "1"})[0] == 207


    # Deleting the book through c removes it from every server.
    assert c.request("DELETE", f"/{USER}/work/")[0] in (200, 204)
    for client in (a, b):
        status, _, listing = client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        assert status == 207 and f"/{USER}/work/" not in listing
        assert client.request("GET", f"/{USER}/work/w.vcf")[0] == 404


def test_a_group_card_put_through_one_server_is_synced_through_the_others(
        servers: list[ServerProcess]) -> None:
    """Apple's group cards: what one server records, every server's group view reports.

    Group cards are derived from the categories, so each server computes
    them; their changes take the book's revisions in the database, and a
    token from any server's group view is answered by any other.
    """
    plain = logged_in(servers[1])
    put_people(plain, ("ann", "Ann Smith"), ("bob", "Bob Jones"), ("cyd", "Cyd Brown"))
    apple_a, apple_b, apple_c = (DavClient(s.url, USER, PASSWORD, user_agent=APPLE_UA)
                                 for s in servers)
    _, token, _ = apple_c.sync()
    status, headers, _ = apple_a.put("FAMILY-GROUP.vcf",
                                     apple_group("FAMILY-GROUP", "Family", ["ann", "bob"]))
    assert status == 201 and "etag" not in headers  # kept as a category: Apple fetches it

    # The group Apple PUT through a is there for it through c and b, with its members
    # (who changed too: they carry the category now).
    _, token, entries = apple_c.sync(token)
    assert names(entries) == {"FAMILY-GROUP.vcf": 200, "ann.vcf": 200, "bob.vcf": 200}
    assert groups_seen(apple_b) == {"FAMILY-GROUP.vcf": ("Family", {"ann", "bob"})}
    assert categories_of(plain, "ann.vcf") == {"Family"}

    # A categories client adds Cyd through b; Apple's sync through a (with c's token)
    # reports Cyd and the group, and the group now lists her.
    etag = plain.get("cyd.vcf")[1]["etag"]
    assert plain.put("cyd.vcf", card("cyd", "Cyd Brown", "EMAIL:cyd@example.com",
                                     "CATEGORIES:Family"), if_match=etag)[0] == 204
    _, token, entries = apple_a.sync(token)
    assert names(entries) == {"cyd.vcf": 200, "FAMILY-GROUP.vcf": 200}
    assert groups_seen(apple_a)["FAMILY-GROUP.vcf"] == ("Family", {"ann", "bob", "cyd"})
    assert apple_b.sync(token)[2] == [] and apple_c.sync(token)[2] == []

    # Apple deletes the group through b; its sync through c reports it gone, and the
    # members stay (without the category).
    etag = apple_b.get("FAMILY-GROUP.vcf")[1]["etag"]
    assert apple_b.delete("FAMILY-GROUP.vcf", if_match=etag) in (200, 204)
    _, token, entries = apple_c.sync(token)
    assert names(entries).get("FAMILY-GROUP.vcf") == 404
    assert apple_a.get("FAMILY-GROUP.vcf")[0] == 404
    assert categories_of(plain, "ann.vcf") == set()
    # A categories client never sees a group card, and the views' tokens stay apart.
    assert set(plain.etags()) == {f"/{USER}/contacts/{n}.vcf" for n in ("ann", "bob", "cyd")}
    assert plain.sync(token)[0] == 403


def test_wrong_passwords_spread_over_the_servers_are_counted_together(
        servers: list[ServerProcess]) -> None:
    """A guesser gets the limit (5 failures) once, not once per server."""
    statuses = []
    for n in range(9):
        guesser = servers[n % 3].client(USER, f"guess {n}")
        statuses.append(guesser.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0])
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429] * 4, statuses
# -- history and trash: one per book in the database, whichever server is asked ---------------
DAVX5 = "DAVx5/4.3.1-ose (2024/01/01; dav4jvm; okhttp/4.12.0) Android/14"
BOOK_API = "/api/books/contacts"


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[list[ServerProcess]]:
    """Two servers on one database (two are enough to tell one history from two)."""
    yield from _pg_servers(tmp_path, database_url, ("a", "b"))


def test_a_card_deleted_through_one_server_is_restored_from_the_trash_through_another(
        pair: list[ServerProcess]) -> None:
    from tests.test_api import Api

    a, b = (logged_in(s) for s in pair)
    text = card("ann", "Ann Lee", "EMAIL:ann@example.org", "TEL:+1 555 0100")
    assert a.put("ann-href.vcf", text)[0] == 201
    _, token, _ = a.sync()
    phone = DavClient(pair[0].url, USER, PASSWORD, user_agent=DAVX5)
    assert phone.delete("ann-href.vcf") == 200

    api_b = Api(pair[1])
    trash = api_b.ok("GET", f"{BOOK_API}/trash")
    assert [(i["uid"], i["href"], i["deleted"]["client"]) for i in trash["items"]] == [
        ("ann", "ann-href.vcf", "DAVx5/4.3.1-ose")]
    assert api_b.ok("GET", trash["items"][0]["url"])["vcard"] == text
    status, _, body = api_b.call("POST", trash["items"][0]["restore"])
    assert status == 201, body
    # A client of the other server syncs the restored card, at its old href, same bytes.
    status, _, entries = a.sync(token)
    assert status == 207 and [e.href.rsplit("/", 1)[1] for e in entries] == ["ann-href.vcf"]
    assert a.get("ann-href.vcf")[2] == text
    assert Api(pair[0]).ok("GET", f"{BOOK_API}/trash")["total"] == 0


def test_the_history_of_a_card_edited_through_one_server_is_read_through_another(
        pair: list[ServerProcess]) -> None:
    from tests.test_api import Api

    a, b = (logged_in(s) for s in pair)
    assert a.put("bo.vcf", card("bo", "Bo Day", "TITLE:Clerk"))[0] == 201
    assert a.put("bo.vcf", card("bo", "Bo Day", "TITLE:Manager"))[0] == 204
    history = Api(pair[1]).ok("GET", f"{BOOK_API}/contacts/bo/history")
    assert history["total"] == 2
    current, earlier = history["items"]
    assert current["current"] and not earlier["current"]
    assert any(c["field"] == "Title" for c in current["changes"])
    # An old version, restored through b, is read back through a.
    assert Api(pair[1]).call("POST", earlier["restore"])[0] == 200
    assert "TITLE:Clerk" in a.get("bo.vcf")[2]
    assert Api(pair[0]).ok("GET", f"{BOOK_API}/contacts/bo/history")["total"] == 3


def test_a_phones_mass_delete_split_over_two_servers_raises_one_alert(
        pair: list[ServerProcess]) -> None:
    from tests.test_api import Api

    a = logged_in(pair[0])
    logged_in(pair[1])
    for i in range(40):
        assert a.put(f"m{i}.vcf", card(f"m{i}", f"Mass Person{i}", "EMAIL:m@example.org")
                     )[0] == 201
    phones = [DavClient(s.url, USER, PASSWORD, user_agent=DAVX5) for s in pair]

    def delete_half(n: int) -> None:  # 15 each, both servers at once: neither alone is 25%
        for i in range(n, 30, 2):
            assert phones[n].delete(f"m{i}.vcf") == 200

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(delete_half, (0, 1)))
    seen = [Api(s).ok("GET", f"{BOOK_API}/alerts")["items"] for s in pair]
    assert seen[0] == seen[1] and len(seen[0]) == 1, seen
    alert = seen[0][0]
    assert alert["client"] == "DAVx5/4.3.1-ose" and alert["deleted"] == 30
    assert alert["book_size"] >= 40
    assert Api(pair[1]).ok("GET", f"{BOOK_API}/trash")["total"] == 30
    # Dismissed through one server, gone on the other.
    assert Api(pair[1]).call("DELETE", alert["url"])[0] == 204
    assert Api(pair[0]).ok("GET", f"{BOOK_API}/alerts")["total"] == 0


def test_a_book_deleted_through_one_server_leaves_its_cards_in_the_trash_for_all(
        pair: list[ServerProcess]) -> None:
    """As on files: the history outlives the book, so the re-created book's trash has them."""
    from tests.test_api import Api

    a, b = (logged_in(s) for s in pair)
    for uid in ("k1", "k2"):
        assert a.put(f"{uid}.vcf", card(uid, f"Kept {uid}", "NOTE:x"))[0] == 201
    assert a.request("DELETE", a.book)[0] in (200, 204)
    status, _, _ = a.request("MKCOL", a.book, (
        '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
        '<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>'),
        headers={"Content-Type": "application/xml"})
    assert status == 201
    assert b.etags() == {}
    trash = Api(pair[1]).ok("GET", f"{BOOK_API}/trash")
    assert sorted(i["uid"] for i in trash["items"]) == ["k1", "k2"]
    assert Api(pair[1]).call("POST", trash["items"][0]["restore"])[0] == 201
    assert len(a.etags()) == 1


def test_db_upgrade_adds_the_history_tables_to_a_version_1_database(
        tmp_path: Path, postgres: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from cardfile.plugin.store import pg_schema
    from cardfile.plugin.store.index import etag_of
    from cardfile.plugin.store.postgres import PgStore

    url = postgres.new_database()  # type: ignore[attr-defined]
    # A database as the Cardfile before history moved into it left it: schema 1, a card.
    monkeypatch.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:1])
    monkeypatch.setattr(pg_schema, "LATEST", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        assert pg_schema.upgrade(conn) == [1]
    store = PgStore(url, pool_size=1)
    try:
        coll = store.book(f"{USER}/contacts").coll_id
        text = card("old", "Old Card")
        store.put(coll, f"{USER}/contacts", "old.vcf", text.encode(), "old", etag_of(text),
                  None)
    finally:
        store.close()
    monkeypatch.undo()

    data = tmp_path / "data"
    run_cli("user", "add", USER, "--password-stdin", "--allow-weak", data_dir=data,
            stdin=PASSWORD + "\n")
    refused = subprocess.run([*cardfile_command(), "serve", "--port", str(free_port()),
                              "--data-dir", str(data), "--database", url],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "version 1" in refused.stderr
    assert "cardfile db upgrade" in refused.stderr
    done = subprocess.run([*cardfile_command(), "db", "upgrade", "--database", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "applied migration(s) 2" in done.stderr, done.stderr

    srv = pg_server(tmp_path, "upgraded", url)
    try:
        client = logged_in(srv)
        assert "FN:Old Card" in client.get("old.vcf")[2]
        assert client.delete("old.vcf") == 200
        from tests.test_api import Api

        [item] = Api(srv).ok("GET", f"{BOOK_API}/trash")["items"]
        assert item["uid"] == "old"
    finally:
        srv.stop()


def test_the_history_store_keeps_each_text_once_prunes_and_keeps_books_apart(
        database_url: str) -> None:
    """The store itself: what the HTTP tests cannot see (rows, sizes, another book's ids)."""
    import psycopg

    from cardfile.plugin.store.history import Alert, Change
    from cardfile.plugin.store.pg_history import PgHistoryStore
    from cardfile.plugin.store.postgres import PgStore

    pg = PgStore(database_url, pool_size=2)
    try:
        mine, other = PgHistoryStore(pg, "alice/contacts"), PgHistoryStore(pg, "bob/contacts")
        text = card("t", "Tex Twice", "NOTE:" + "x" * 2000)
        base = time.time_ns()
        ids = mine.record([Change(base + i * 1000, f"u{i}", f"u{i}.vcf", "deleted", text, "Tex")
                           for i in range(50)])
        assert len(ids) == 50 and ids == sorted(ids)
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM history_texts").fetchone()[0] == 1
        assert [e.uid for e in mine.deletions(0)][:2] == ["u49", "u48"]
        assert mine.text(mine.latest("u3").before or b"") == text  # type: ignore[union-attr]
        assert other.count() == 0 and other.deletions(0) == []

        alert_id = mine.raise_alert(Alert(0, 2_000, 1_000, 2_000, "alice", "phone", 50, 0, 60))
        assert other.dismiss_alert(alert_id) is False  # another book's alert: not there
        assert mine.raise_alert(Alert(0, 3_000, 1_500, 3_000, "alice", "phone", 55, 0, 60)
                                ) == alert_id  # the same run seen by another server
        [alert] = mine.alerts()
        assert (alert.since_ns, alert.until_ns, alert.deleted) == (1_000, 3_000, 55)

        assert mine.forget_contact("u0") == 1 and mine.count() == 49
        size = mine.size_bytes()
        assert mine.prune(0, size // 2) > 0
        assert 0 < mine.count() < 49 and mine.size_bytes() <= size // 2
        assert mine.since_ns() > base  # the history now reaches back to what is left only
        left = mine.count()
        assert mine.prune(time.time_ns(), 0) == left and mine.count() == 0
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM history_texts").fetchone()[0] == 0
    finally:
        pg.close()

def test_the_schedule_forgets_old_deletions_and_older_tokens_get_403_on_every_server(
        tmp_path: Path, database_url: str) -> None:
    """No manual call: the servers' own schedule prunes; a recent token still syncs."""
    import psycopg

    policy = (f"[storage]\nbackend = {database_url}\n"
              "tombstone_days = 0.00001\n"  # under a second
              "tombstone_keep = 1\n"  # the newest deletion stays, however old
              "tombstone_prune_interval = 0.5\n")
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b", "c"):
            folder = tmp_path / name
            folder.mkdir()
            started.append(start_server(folder, extra_config=policy))
        a, b, c = (logged_in(s) for s in started)
        for name in ("p1", "p2", "p3"):
            assert a.put(f"{name}.vcf", card(name, f"Pe {name}"))[0] == 201
        _, old_token, _ = b.sync()
        assert a.delete("p1.vcf") in (200, 204)
        status, recent, changed = c.sync(old_token)
        assert status == 207 and [e.href.rsplit("/", 1)[-1] for e in changed] == ["p1.vcf"]
        assert b.delete("p2.vcf") in (200, 204)

        old_sync = SYNC_BODY.replace("<D:sync-token/>",
                                     f"<D:sync-token>{old_token}</D:sync-token>")
        deadline = time.monotonic() + 30
        while b.request("REPORT", b.book, old_sync, headers={
                "Depth": "1", "Content-Type": "application/xml"})[0] != 403:
            assert time.monotonic() < deadline, started[1].log()[-2000:]
            time.sleep(0.2)
        for client in (a, b, c):
            status, _, text = client.request("REPORT", client.book, old_sync, headers={
                "Depth": "1", "Content-Type": "application/xml"})
            assert status == 403 and "valid-sync-token" in text
            status, _, changed = client.sync(recent)
            assert status == 207
            assert [(e.href.rsplit("/", 1)[-1], e.status) for e in changed] == [("p2.vcf", 404)]
        with psycopg.connect(database_url) as conn:
            left = [r[0] for r in conn.execute("SELECT href FROM cards WHERE body IS NULL")]
        assert left == ["p2.vcf"]
        assert any("Forgot 1 deleted card(s)" in s.log() for s in started)
    finally:
        for srv in started:
            srv.stop()


def test_pruning_keeps_recent_deletions_and_servers_take_turns(database_url: str) -> None:
    from cardfile.plugin.store.postgres import PgStore

    store = PgStore(database_url, pool_size=2)
    other_server = PgStore(database_url, pool_size=2)
    try:
        coll = store.book(f"{USER}/contacts").coll_id
        for name in ("x", "y"):
            store.put(coll, f"{USER}/contacts", f"{name}.vcf", card(name, name).encode(),
                      name, f'"{name}"', None)
            store.delete(coll, f"{name}.vcf", f'"{name}"')
        # Younger than a day: kept, whatever the count says.
        pruned = store.prune_expired(older_than_days=1, keep=0, turn_seconds=3600)
        assert pruned is not None and pruned.tombstones == 0
        # That round took the hour's turn: another server's round (or this one's) skips.
        assert other_server.prune_expired(older_than_days=0, keep=0, turn_seconds=3600) is None
        assert store.changes(coll, 1).full is False
        pruned = other_server.prune_expired(older_than_days=0, keep=1)  # no turn asked
        assert pruned is not None and (pruned.books, pruned.tombstones) == (1, 1)
        # Revisions: x put 1, deleted 2; y put 3, deleted 4. x's deletion is forgotten.
        changes = store.changes(coll, 1)
        assert changes.full and changes.floor == 2  # a token from before it is refused
        changes = store.changes(coll, 2)
        assert not changes.full and changes.cards == [("y.vcf", None, 4)]
        # Pruning to the same point again changes nothing.
        pruned = store.prune_expired(older_than_days=0, keep=1)
        assert pruned is not None and pruned.tombstones == 0
    finally:
        store.close()
        other_server.close()


def test_a_pruning_policy_that_is_not_a_number_stops_serve_with_a_clear_error(
        tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "config"
    config.write_text(f"[storage]\nbackend = {database_url}\ntombstone_days = ninety\n")
    done = subprocess.run([*cardfile_command(), "serve", "--port", str(free_port()),
                           "--data-dir", str(tmp_path / "data"), "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "tombstone_days = 'ninety' is not a number" in done.stderr
    assert "Traceback" not in done.stderr


def test_backup_and_restore_on_postgresql_say_what_to_use_instead(tmp_path: Path,
                                                                 database_url: str) -> None:
    """``cardfile backup`` archives a data folder; on PostgreSQL that is only a cache.

    A backup of it could miss what other servers wrote, and a restore into it
    would be undone by the database. Both refuse, name ``cardfile db export``
    and pg_dump, and write nothing.
    """
    server = pg_server(tmp_path, "a", database_url)
    try:
        assert logged_in(server).put("one.vcf", card("one", "Only One"))[0] == 201
        archive = tmp_path / "backup.tar.gz"
        older = tmp_path / "older-backup.tar.gz"
        older.write_bytes(b"an archive from before")
        for args in (("backup", str(archive)), ("restore", str(older), "--force")):
            done = server.cli(*args, check=False)
            assert done.returncode == 1, done
            assert "db export" in done.stderr and "pg_dump" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
            assert not archive.exists()  # the backup wrote nothing
        assert logged_in(server).get("one.vcf")[0] == 200
    finally:
        server.stop()


def test_a_change_without_the_database_to_a_servers_copy_of_it_is_refused(
        tmp_path: Path, database_url: str) -> None:
    """A command given the data folder of a server on PostgreSQL but not its
    configuration took the folder for a file store and changed the server's
    copy alone: a category renamed so was served by GET, yet no client's sync
    ever reported it, and the database never had it. Such a change is refused,
    saying what to pass, and changes nothing; reading the copy still works; with
    the configuration the change is made for every client."""
    server = pg_server(tmp_path, "a", database_url)
    try:
        client = logged_in(server)
        assert client.put("ann.vcf", card("ann", "Ann Smith", "CATEGORIES:Friends"))[0] == 201
        phone = tmp_path / "phone"
        phone.mkdir()
        (phone / "cyd.vcf").write_text(card("cyd", "Cyd Brown"), newline="")
        server.cli("sources", "add", str(phone), "--name", "phone", "--into", "main",
                   "--user", USER)
        (phone / "dan.vcf").write_text(card("dan", "Dan Gray"), newline="")
        _, token, _ = client.sync()
        for args in (("categories", "rename", "Friends", "Close Friends", "--user", USER),
                     ("categories", "add", "Choir", "--user", USER),
                     ("import", str(tmp_path / "bob.vcf"), "--user", USER),
                     ("sources", "sync", "phone", "--user", USER),  # (Dan: a new card there)
                     ("sources", "add", str(phone), "--name", "again", "--user", USER),
                     ("sources", "remove", "phone", "--user", USER),
                     ("me", "set", "ann", "--user", USER)):  # (friends get copies)
            (tmp_path / "bob.vcf").write_text(card("bob", "Bob Jones"), newline="")
            done = run_cli(*args, data_dir=server.data_dir, check=False)
            assert done.returncode == 1, done
            assert "PostgreSQL" in done.stderr and "--config" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
        exported = run_cli("export", "--user", USER, data_dir=server.data_dir)  # a read
        assert "Ann Smith" in exported.stdout
        assert "CATEGORIES:Friends" in client.get("ann.vcf")[2]
        assert client.sync(token)[2] == []  # nothing changed
        server.cli("categories", "rename", "Friends", "Close Friends", "--user", USER)
        assert [e.href.rsplit("/", 1)[-1] for e in client.sync(token)[2]] == ["ann.vcf"]
        assert "CATEGORIES:Close Friends" in client.get("ann.vcf")[2]
    finally:
        server.stop()


def test_a_new_machine_can_add_a_user_before_it_ever_served(tmp_path: Path,
                                                           database_url: str) -> None:
    """``cardfile user add`` is a new machine's first command, before any ``serve``.

    Its data folder (with PostgreSQL, only this machine's copy of the
    database's state) did not exist yet, and the command failed with
    "cannot use .../.cardfile-state.lock". The user it adds logs in through
    every server.
    """
    running = pg_server(tmp_path, "a", database_url)
    try:
        config = tmp_path / "new-machine.conf"
        config.write_text(f"[storage]\nbackend = {database_url}\n")
        fresh = tmp_path / "new-machine" / "data"
        done = run_cli("user", "add", "dora", "--password-stdin", "--config", str(config),
                       data_dir=fresh, stdin="dora's long password\n", check=False)
        assert done.returncode == 0, done.stderr
        status, _, _ = running.client("dora", "dora's long password").request(
            "PROPFIND", "/dora/", headers={"Depth": "0"})
        assert status == 207
    finally:
        running.stop()
