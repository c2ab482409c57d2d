"""``cardfile serve`` and ``cardfile user`` as a new user meets them."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import (
    USER,
    ServerProcess,
    cardfile_command,
    free_port,
    run_cli,
    start_server,
)
from tests.davclient import DavClient, card


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_first_run_with_no_configuration(tmp_path: Path) -> None:
    """No flags, no config: data under $HOME, loopback, a user created and shown once."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env["HOME"] = str(home)
    port = free_port()
    # --port only because 5232 may be taken on a shared machine; everything else is default.
    proc = subprocess.Popen([*cardfile_command(), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = ""
        assert proc.stdout is not None
        while "Password:" not in output:
            line = proc.stdout.readline()
            assert line, output
            output += line
        # Standard output is a pipe, not a terminal: the password is in a private file.
        match = re.search(r"User:\s+(\S+)\s+Password:\s+written to (\S+) ", output)
        assert match, output
        user, password_file = match.groups()
        assert f"http://127.0.0.1:{port}/{user}/contacts/" in output
        data = home / ".local" / "share" / "cardfile"
        assert Path(password_file) == data / "first-run-password"
        found = re.search(r"Password: (\S+)", Path(password_file).read_text())
        assert found
        password = found.group(1)
        assert password not in output
        assert (data / "htpasswd").is_file()
        assert (data / "htpasswd").stat().st_mode & 0o077 == 0
        assert password not in (data / "htpasswd").read_text()
        client = DavClient(f"http://127.0.0.1:{port}", user, password)
        _wait_for(lambda: _answers(client, f"/{user}/"))
        assert client.request("PROPFIND", f"/{user}/", auth=False)[0] == 401
        assert client.put("first.vcf", card("first", "First Contact"), book=None)[0] == 201
        assert (data / "collection-root" / user / "contacts" / "first.vcf").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    # The second start creates no new user and prints no password.
    proc = subprocess.Popen([*cardfile_command(), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert "Password:" not in out and proc.returncode == 0


def _answers(client: DavClient, path: str) -> bool:
    try:
        return client.request("PROPFIND", path, headers={"Depth": "0"})[0] == 207
    except OSError:
        return False


def test_refuses_exposed_address_without_authentication(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[auth]\ntype = none\n")
    result = subprocess.run(
        [*cardfile_command(), "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "authentication" in result.stderr


def test_user_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, other, new = "first of carol's words", "dave's own words", "carol's new words"
    run_cli("user", "add", "carol", "--password-stdin", data_dir=data, stdin=first + "\n")
    run_cli("user", "add", "dave", "--password-stdin", data_dir=data, stdin=other + "\n")
    assert run_cli("user", "list", data_dir=data).stdout.split() == ["carol", "dave"]
    again = run_cli("user", "add", "carol", "--password-stdin", data_dir=data, stdin="x\n",
                    check=False)
    assert again.returncode != 0 and "exists already" in again.stderr
    bad = run_cli("user", "add", "../evil", "--password-stdin", data_dir=data, stdin="x\n",
                  check=False)
    assert bad.returncode != 0 and "invalid user name" in bad.stderr
    run_cli("user", "passwd", "carol", "--password-stdin", data_dir=data, stdin=new + "\n")
    srv = ServerProcess(data, free_port())
    try:
        assert srv.client("carol", new).request("PROPFIND", "/carol/")[0] == 207
        assert srv.client("carol", first).request("PROPFIND", "/carol/")[0] == 401
        run_cli("user", "remove", "dave", data_dir=data)
        _wait_for(lambda: srv.client("dave", other).request("PROPFIND", "/dave/")[0] == 401)
    finally:
        assert srv.stop() == 0
    assert run_cli("user", "list", data_dir=data).stdout.split() == ["carol"]


def _server_with_cards(tmp_path: Path, count: int, prefix: str, extra: str
                       ) -> tuple[ServerProcess, DavClient]:
    """A running server whose book holds ``count`` cards ``{prefix}{i}.vcf``."""
    srv = start_server(tmp_path)
    client = srv.client()
    client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    for i in range(count):
        assert client.put(f"{prefix}{i}.vcf", card(f"{prefix}{i}", f"Person {prefix}{i}",
                                                   extra.format(i=i)))[0] == 201
    return srv, client


def test_index_is_derived_and_rebuilt(tmp_path: Path) -> None:
    srv, client = _server_with_cards(tmp_path, 20, "r", "EMAIL:r{i}@example.com")
    etags = client.etags()
    _, token, _ = client.sync()
    assert srv.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        index = srv.data_dir / f"cardfile-index.sqlite3{suffix}"
        if index.exists():
            index.unlink()
    srv = ServerProcess(srv.data_dir, free_port())
    try:
        client = srv.client()
        assert client.etags() == etags
        hits = client.query('<C:prop-filter name="EMAIL"><C:text-match>r7@</C:text-match>'
                            '</C:prop-filter>')
        assert [h.href.rsplit("/", 1)[-1] for h in hits] == ["r7.vcf"]
        # A token from before the rebuild is refused, so the client resyncs fully.
        assert client.sync(token)[0] == 403
        status, _, entries = client.sync()
        assert status == 207 and len(entries) == 20
    finally:
        srv.stop()


def test_a_book_restored_from_files_is_indexed_without_a_second_copy_on_disk(
        tmp_path: Path) -> None:
    """A book copied in as files (a restore, a move from another server) is indexed
    at start, and the data folder then holds the index once: SQLite's log of that
    build, as large as the index, is not left beside it for every later start to
    read back."""
    srv = start_server(tmp_path)
    assert srv.client().etags() == {}  # the user's first login makes the book
    assert srv.stop() == 0
    book = srv.book_dir()
    count = 6000  # over the index's bulk-load threshold, as a real restore is
    for i in range(count):
        (book / f"restored{i}.vcf").write_text(
            card(f"restored{i}", f"Person {i}", f"EMAIL:p{i}@example.com"), newline="")
    (book / "broken.vcf").write_text("not a card\n")  # skipped, with the others read
    index = srv.data_dir / "cardfile-index.sqlite3"
    log = srv.data_dir / "cardfile-index.sqlite3-wal"
    for start in ("first", "second"):
        srv = ServerProcess(srv.data_dir, free_port())
        try:
            client = srv.client()
            assert len(client.etags()) == count
            # What the reader processes derived reached the index whole: search by
            # e-mail address finds the one card, with its name.
            status, _, body = client.request("GET", "/api/books/contacts/contacts"
                                                    "?q=p4321@example.com&fields=uid,name")
            assert status == 200, body
            assert [(c["uid"], c["name"]) for c in json.loads(body)["items"]] == [
                ("restored4321", "Person 4321")]
            log_size = log.stat().st_size if log.exists() else 0
            assert log_size < index.stat().st_size / 10, (start, log_size,
                                                          index.stat().st_size)
        finally:
            assert srv.stop() == 0


def test_an_index_from_an_older_version_is_rebuilt(tmp_path: Path) -> None:
    """An upgrade finds the previous release's index: it is rebuilt, not misread."""
    srv, client = _server_with_cards(tmp_path, 5, "u", "CATEGORIES:Old Friends")
    etags = client.etags()
    assert srv.stop() == 0
    with sqlite3.connect(srv.data_dir / "cardfile-index.sqlite3") as db:
        # The shape of schema 7: props without the coll column.
        db.execute("DROP TABLE props")
        db.execute("CREATE TABLE props (item INTEGER NOT NULL, name TEXT NOT NULL, "
                   "value TEXT NOT NULL, lvalue TEXT NOT NULL, norm TEXT NOT NULL DEFAULT '')")
        db.execute("UPDATE meta SET value='7' WHERE key='schema'")
    srv = ServerProcess(srv.data_dir, free_port())
    try:
        client = srv.client()
        assert client.etags() == etags
        status, _, body = client.request("GET", "/api/books/contacts/categories")
        assert status == 200
        assert [(c["name"], c["count"]) for c in json.loads(body)["items"]] == [
            ("Old Friends", 5)]
    finally:
        srv.stop()


def _last_check(data_dir: Path) -> list[tuple[str, int]]:
    """(generation, when) of each book's last comparison with its files, from the index."""
    with sqlite3.connect(data_dir / "cardfile-index.sqlite3") as db:
        return db.execute("SELECT generation, checked_ns FROM checks ORDER BY coll").fetchall()


def _edit_in_place_found(client: DavClient, note: str, token: str) -> None:
    """Within 15 s, a search finds edited.vcf by its new NOTE text, and a sync from
    ``token`` (taken before the edit) reports it changed, and nothing else."""
    query = (f'<C:prop-filter name="NOTE"><C:text-match>{note}'
             '</C:text-match></C:prop-filter>')
    _wait_for(lambda: [h.href.rsplit("/", 1)[-1] for h in client.query(query)]
              == ["edited.vcf"], timeout=15)
    status, _, changed = client.sync(token)
    assert status == 207
    assert [e.href.rsplit("/", 1)[-1] for e in changed] == ["edited.vcf"]


def _seen_by_every_worker(srv: ServerProcess, expected: dict[str, str]) -> None:
    """Each request on a fresh connection (any worker) lists and finds what is on disk."""
    for _ in range(8):
        client = srv.client()
        listed = {href.rsplit("/", 1)[-1] for href in client.etags()}
        assert listed == set(expected), listed
        hits = client.query('<C:prop-filter name="NOTE"><C:text-match>changed on disk'
                            '</C:text-match></C:prop-filter>')
        assert [h.href.rsplit("/", 1)[-1] for h in hits] == ["edited.vcf"], hits
        assert hits[0].data and expected["edited.vcf"] in hits[0].data


def test_changes_while_the_server_was_down_are_found_at_start(tmp_path: Path) -> None:
    """Cards added, edited in place and removed while no server ran are served from the
    first request by every worker, after one comparison of the files for the whole
    server: the workers trust it instead of each comparing again. A card edited in
    place alone (the folder unchanged) is found by that comparison made while the
    server already answers: searches find its new text and a sync reports it."""
    config = "[server]\nworkers = 2\n"
    srv = start_server(tmp_path, extra_config=config)
    client = srv.client()
    client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    for name in ("kept", "edited", "removed"):
        assert client.put(f"{name}.vcf", card(name, f"Person {name.title()}"))[0] == 201
    assert srv.stop() == 0
    book = srv.book_dir()
    (book / "removed.vcf").unlink()
    (book / "added.vcf").write_text(card("added", "Person Added"), newline="")
    edited = card("edited", "Person Edited", "NOTE:changed on disk once")
    (book / "edited.vcf").write_text(edited, newline="")  # same file, new content
    srv = ServerProcess(srv.data_dir, free_port(), config)
    try:
        _seen_by_every_worker(srv, {"kept.vcf": "", "edited.vcf": "once", "added.vcf": ""})
        checked = _last_check(srv.data_dir)
        assert len(checked) == 1 and checked[0][0], checked
        _seen_by_every_worker(srv, {"kept.vcf": "", "edited.vcf": "once", "added.vcf": ""})
        assert _last_check(srv.data_dir) == checked  # no worker compared the files again
        _, token, _ = srv.client().sync()
    finally:
        assert srv.stop() == 0
    # Edited in place alone: the folder's mtime does not change, the file's does.
    folder_mtime = book.stat().st_mtime_ns
    (book / "edited.vcf").write_text(card("edited", "Person Edited",
                                          "NOTE:changed on disk twice"), newline="")
    assert book.stat().st_mtime_ns == folder_mtime
    srv = ServerProcess(srv.data_dir, free_port(), config)
    try:
        _seen_by_every_worker(srv, {"kept.vcf": "", "edited.vcf": "twice", "added.vcf": ""})
        _edit_in_place_found(srv.client(), "changed on disk twice", token)
        later = _last_check(srv.data_dir)
        assert later[0][0] != checked[0][0], "each start of the server compares once"
    finally:
        assert srv.stop() == 0


def test_a_killed_writes_file_in_a_folder_already_indexed_is_removed_at_the_next_start(
        tmp_path: Path) -> None:
    """A temporary file a killed process left, which the index already saw (the folder's
    mtime recorded since), is removed at the next start, though that start compares
    such an unchanged folder only after it began to serve; the cards stay."""
    srv = start_server(tmp_path)
    leftover = None
    try:
        client = srv.client()
        client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        assert client.put("kept.vcf", card("kept", "Person Kept"))[0] == 201
        leftover = srv.book_dir() / ".Radicale.tmp-left-by-a-kill"
        leftover.write_text(card("half", "Half Written"), newline="")
        assert {h.rsplit("/", 1)[-1] for h in client.etags()} == {"kept.vcf"}
    finally:
        assert srv.stop() == 0
    assert leftover is not None and leftover.exists()
    with sqlite3.connect(srv.data_dir / "cardfile-index.sqlite3") as db:
        recorded = db.execute("SELECT dir_mtime_ns FROM collections").fetchall()
    # The next start finds the folder as the index saw it (the file is not new to it).
    assert (srv.book_dir().stat().st_mtime_ns,) in recorded
    srv = ServerProcess(srv.data_dir, free_port())
    try:
        _wait_for(lambda: not leftover.exists(), timeout=15)
        assert {h.rsplit("/", 1)[-1] for h in srv.client().etags()} == {"kept.vcf"}
    finally:
        assert srv.stop() == 0


def test_a_card_edited_in_place_while_serving_is_found_by_the_rescan(tmp_path: Path) -> None:
    """Another program rewrites a card in place (the folder's mtime stays): within the
    rescan interval, searches find the new text and a sync reports the card changed."""
    srv = start_server(tmp_path, extra_config="[storage]\nrescan_interval = 1\n")
    try:
        client = srv.client()
        client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        for name in ("kept", "edited"):
            assert client.put(f"{name}.vcf", card(name, f"Person {name.title()}"))[0] == 201
        _, token, _ = client.sync()
        book = srv.book_dir()
        folder_mtime = book.stat().st_mtime_ns
        (book / "edited.vcf").write_text(card("edited", "Person Edited",
                                              "NOTE:rewritten by another program"), newline="")
        assert book.stat().st_mtime_ns == folder_mtime
        _edit_in_place_found(client, "rewritten by another", token)
    finally:
        assert srv.stop() == 0


@pytest.mark.slow
def test_cards_saved_while_a_rescan_lists_the_folder_stay_listed(tmp_path: Path) -> None:
    """A rescan compares the folder with the index without the storage lock (writers
    would wait for a stat of every card). Cards saved and deleted while it lists the
    folder are their writers' to index: a card a client saved is listed from then on,
    and a sync never reports it deleted. (Before, a card created during a rescan's
    listing was dropped from the index, with a tombstone, for up to a rescan interval.)"""
    srv = start_server(tmp_path, extra_config="[storage]\nrescan_interval = 0.05\n")
    try:
        client = srv.client()
        client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        book = srv.book_dir()
        for i in range(6000):  # a listing that takes a while: rescans overlap the saves
            (book / f"seed{i}.vcf").write_text(card(f"seed{i}", f"Seeded Person {i}"),
                                               newline="")
        _wait_for(lambda: len(client.etags()) == 6000, timeout=120)
        _, token, _ = client.sync()
        saved: list[str] = []
        for i in range(240):
            name = f"saved{i}.vcf"
            assert client.put(name, card(f"saved{i}", f"Saved Person {i}"),
                              if_none_match="*")[0] == 201
            saved.append(name)
            if i % 2:
                assert client.delete(f"seed{i}.vcf") in (200, 204)
            if i % 12 == 11:
                listed = {href.rsplit("/", 1)[-1] for href in client.etags()}
                assert not [n for n in saved if n not in listed], i
                status, token, changes = client.sync(token)
                assert status == 207
                reported_gone = {e.href.rsplit("/", 1)[-1] for e in changes if e.status == 404}
                assert not reported_gone & set(saved), sorted(reported_gone & set(saved))
    finally:
        assert srv.stop() == 0


def test_plugin_works_in_plain_radicale(tmp_path: Path) -> None:
    """``[storage] type = cardfile.plugin`` in an ordinary Radicale installation."""
    port = free_port()
    config = tmp_path / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = none\n"
        f"[storage]\ntype = cardfile.plugin\nfilesystem_folder = {tmp_path / 'data'}\n"
        "[web]\ntype = none\n")
    proc = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = DavClient(f"http://127.0.0.1:{port}", "anon", "x")
        _wait_for(lambda: _answers(client, "/"))
        mkcol = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" '
                 'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
                 '<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
        assert client.request("MKCOL", "/anon/book/", mkcol)[0] == 201
        assert client.put("a.vcf", card("a", "Plain Radicale", "EMAIL:p@example.com"),
                          book="/anon/book/")[0] == 201
        client_book = DavClient(f"http://127.0.0.1:{port}", "anon", "x")
        status, text = client_book.report(
            '<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/></D:prop><C:filter>'
            '<C:prop-filter name="EMAIL"><C:text-match>p@</C:text-match></C:prop-filter>'
            '</C:filter></C:addressbook-query>', path="/anon/book/")
        assert status == 207 and "/anon/book/a.vcf" in text
        assert (tmp_path / "data" / "cardfile-index.sqlite3").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_sigterm_finishes_cleanly(server: ServerProcess, dav: DavClient) -> None:
    assert dav.put("t.vcf", card("t", "Term Signal"))[0] == 201
    assert server.stop() == 0
    log = server.log()
    assert "Traceback" not in log
    assert re.search(r"PUT /alice/contacts/t\.vcf 201 ", log)
    assert "Stopping" in log


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the server's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_end_when_the_server_process_is_killed(server: ServerProcess,
                                                       dav: DavClient) -> None:
    """A kill -9 of ``cardfile serve`` leaves no worker serving the data folder alone."""
    assert dav.put("w.vcf", card("w", "Worker Check"))[0] == 201
    workers = _children(server.process.pid)
    assert workers, "the server runs its requests in worker processes"
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=15)


def _put_quietly(client: DavClient) -> None:
    """A PUT whose connection the test expects to break (its server is killed)."""
    try:
        client.put("x.vcf", card("x", "Waiting Writer"))
    except OSError:
        pass


def test_workers_end_with_the_server_process_even_mid_request(server: ServerProcess,
                                                              dav: DavClient) -> None:
    """A worker whose request waits for the storage lock still ends with its master.

    Workers stop gracefully on SIGTERM, finishing their running requests
    first. One whose request waited for the storage lock (here held by the
    test, as a long ``cardfile import`` would hold it) went on after a
    ``kill -9`` of ``cardfile serve``, holding the lock's turnstile, and the
    server started next on the folder waited for it.
    """
    import fcntl
    import threading

    assert dav.put("w.vcf", card("w", "Worker Check"))[0] == 201
    workers = _children(server.process.pid)
    lock = os.open(server.data_dir / ".Radicale.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        threading.Thread(target=_put_quietly, args=(server.client(),), daemon=True).start()
        time.sleep(1)  # the PUT is in a worker, waiting for the lock
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)
    finally:
        os.close(lock)
    config = server.config_path.read_text() if server.config_path else ""
    restarted = ServerProcess(server.data_dir, free_port(), config)
    try:
        assert restarted.client().get("w.vcf")[0] == 200
    finally:
        restarted.stop()


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    level = {pid}
    while level:
        level = {child for parent in level for child in _children(parent)} - found
        found |= level
    return found


def test_a_kill_9_during_the_first_index_build_leaves_no_process_behind(tmp_path: Path) -> None:
    """The index check's reader processes end with it, and the next start reads every card.

    At start one process compares the books with the index, and for many new
    cards it forks reader processes, which share its open files, the storage
    lock's among them. Killed with ``cardfile serve``, it left the readers
    running, holding the storage lock, so no server could start on the
    folder again.
    """
    first = start_server(tmp_path)
    try:
        assert first.client().put("seed.vcf", card("seed", "Seed Card"))[0] == 201
    finally:
        first.stop()
    book = first.data_dir / "collection-root" / USER / "contacts"
    for number in range(6000):  # past index.BULK_LOAD: read by several processes
        (book / f"c{number}.vcf").write_text(card(f"c{number}", f"Card Number{number}"))
    process = subprocess.Popen([*cardfile_command(), "serve", "--port", str(free_port()),
                                "--data-dir", str(first.data_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                _children(child) for child in _children(process.pid)):
            time.sleep(0.01)
        seen = _descendants(process.pid)
        assert any(_children(child) for child in seen), "the check forked its readers"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in seen), timeout=10)
    again = ServerProcess(first.data_dir, free_port())
    try:
        status, _, body = again.client().request(
            "PROPFIND", f"/{USER}/contacts/", headers={"Depth": "1"})
        assert status == 207  # the book and its cards:
        assert len(ElementTree.fromstring(body).findall("{DAV:}response")) == 6002
    finally:
        again.stop()


def test_the_index_log_is_copied_by_saves_after_they_release_the_lock(
        tmp_path: Path) -> None:
    """A stream of saves keeps the index's log short: it is copied into the index
    after saves, once they no longer hold the storage lock, well before SQLite's
    own copy at 1,000 pages (4 MB), which a save made while everyone waited."""
    # One worker: its copies are the only ones (with two, each copies after its own 16).
    srv = start_server(tmp_path, extra_config="[server]\nworkers = 1\n")
    try:
        client = srv.client()
        for i in range(250):
            assert client.put(f"s{i}.vcf", card(f"s{i}", f"Saved Person {i}",
                                                f"EMAIL:s{i}@example.com"))[0] == 201
        log = srv.data_dir / "cardfile-index.sqlite3-wal"
        assert log.stat().st_size < 2.5 * 1024 * 1024, log.stat().st_size
        assert len(client.etags()) == 250
    finally:
        assert srv.stop() == 0


def _thread_cores(pid: int) -> list[tuple[str, set[int]]]:
    """(name, cores it may run on) of every thread of process ``pid``, from /proc."""
    threads = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except OSError:  # ended meanwhile
            continue
        listed = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M)
        cores: set[int] = set()
        for part in (listed.group(1) if listed else "").split(","):
            low, _, high = part.partition("-")
            if low:
                cores.update(range(int(low), int(high or low) + 1))
        threads.append((name, cores))
    return threads


def _busy(srv: ServerProcess, rounds: int) -> None:
    """Requests on fresh connections from several threads at once, so every worker gets some."""
    def propfind(_: int) -> int:
        return srv.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(propfind, range(rounds))) == {207}


def _pinned_cores(workers: list[int]) -> dict[int, set[int]]:
    """Per worker, the cores of its threads that may run on one core only."""
    return {w: {min(cores) for _, cores in _thread_cores(w) if len(cores) == 1}
            for w in workers}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="needs two usable cores: with one, two workers are not pinned")
def test_each_worker_answers_on_a_core_of_its_own(tmp_path: Path) -> None:
    """With as many cores as workers, a worker's request threads stay on one core,
    another for each worker (``cli/cpu_pinning.py``); its other threads keep every
    core; ``pin_workers = false`` leaves every thread free."""
    usable = os.sched_getaffinity(0)
    for folder in ("pinned", "free"):
        (tmp_path / folder).mkdir()
    srv = start_server(tmp_path / "pinned", extra_config="[server]\nworkers = 2\n")
    try:
        workers = _children(srv.process.pid)
        assert len(workers) == 2
        for _ in range(10):  # which worker a connection reaches is the kernel's choice
            _busy(srv, 64)
            if all(_pinned_cores(workers).values()):
                break
        pinned = _pinned_cores(workers)
        assert all(len(cores) == 1 for cores in pinned.values()), pinned
        first, second = (next(iter(cores)) for cores in pinned.values())
        assert first != second and {first, second} <= usable, pinned
        for worker in workers:  # Granian's I/O thread, the main and background threads
            assert any(cores == usable for _, cores in _thread_cores(worker))
    finally:
        srv.stop()
    free = start_server(tmp_path / "free",
                        extra_config="[server]\nworkers = 2\npin_workers = false\n")
    try:
        _busy(free, 64)
        workers = _children(free.process.pid)
        assert workers and not any(_pinned_cores(workers).values())
    finally:
        free.stop()


_FORK_THEN_SIGTERM = """
import os, signal, sys
from cardfile.cli.server import stop_forked_workers_while_loading
handled = []
signal.signal(signal.SIGTERM, lambda *_: handled.append(1))  # as Granian's master's handler
if sys.argv[1] == "reset":
    stop_forked_workers_while_loading()
child = os.fork()
if child == 0:  # a worker, SIGTERMed before it has handlers of its own
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(3 if handled else 4)  # it ran on: the stop was lost
_, status = os.waitpid(child, 0)
print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit %d" % os.WEXITSTATUS(status))
"""


@pytest.mark.parametrize("reset", ["reset", "inherited"])
def test_a_sigterm_before_a_worker_has_handlers_ends_it(reset: str) -> None:
    """A worker forked by ``cardfile serve`` ends at a SIGTERM from its first instant.

    Forked workers inherit the master's Python handler, which only flags the
    master's shutdown; a SIGTERM before Granian installed the worker's own was
    lost, and the master waited 30 s (``workers_kill_timeout``) to kill it.
    The control case shows the inherited handler swallowing it.
    """
    done = subprocess.run([sys.executable, "-c", _FORK_THEN_SIGTERM, reset],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    expected = str(int(signal.SIGTERM)) if reset == "reset" else "exit 3"
    assert done.stdout.strip() == expected
