"""Several ``cardfile serve`` processes on one PostgreSQL database (tests/pg.py starts it).

Each server has a data folder of its own (its cache of the database, as on
separate machines) and the same user; what one is told, the others answer.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
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
    started: list[ServerProcess] = []
    try:
        for name in ("a", "b", "c"):
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
    finally:
        files.stop()

    done = subprocess.run([*cardfile_command(), "db", "import", str(files.data_dir),
                           "--database", database_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    srv = pg_server(tmp_path, "pg", database_url)
    try:
        client = logged_in(srv)
        assert client.get("lf.vcf")[2].encode() == original["lf.vcf"]
        assert client.put("new.vcf", card("new", "New One"))[0] == 201
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
    os.rename(out, data / "collection-root")
    again = start_server(back)
    try:
        client = logged_in(again)
        for name, body in original.items():
            status, _, text = client.get(name)
            assert status == 200 and text.encode() == body
    finally:
        again.stop()


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
