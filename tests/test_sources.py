"""Connected sources against real servers on loopback (issue 15).

Each source server (stock Radicale, Xandikos, a second Cardfile) runs as a
subprocess behind a recording proxy; ``cardfile sources`` connects it to a
Cardfile data folder, cards change at the source, and one ``sync`` brings
them. The proxy's request log shows whether a refresh was incremental.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import source_servers
from tests.conftest import BACKS_UP_THE_FOLDER, USER, run_cli
from tests.davclient import card, parse_multistatus
from tests.source_servers import RecordingProxy, SourceServer

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")

NAME = "remote"


@pytest.fixture(autouse=True)
def _key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's credentials key, outside its data folder (inherited by the CLI)."""
    key = tmp_path / "config" / "sources.key"
    monkeypatch.setenv("CARDFILE_KEY_FILE", str(key))
    return key


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A Cardfile data folder with one user, no server running."""
    data = tmp_path / "target"
    data.mkdir()
    run_cli("user", "add", USER, "--password-stdin", "--allow-weak", data_dir=data,
            stdin="pw\n")
    return data


def book_cards(data: Path, book: str = f"source-{NAME}") -> dict[str, str]:
    """UID -> FN of every card file in a book (the files are the truth)."""
    folder = data / "collection-root" / USER / book
    found = {}
    for path in folder.glob("*.vcf"):
        text = path.read_text()
        uid = re.search(r"^UID:(.*?)\r?$", text, re.M)
        fn = re.search(r"^FN:(.*?)\r?$", text, re.M)
        assert uid and fn, text
        found[uid.group(1)] = fn.group(1)
    return found


def book_snapshot(data: Path, book: str) -> dict[str, bytes]:
    folder = data / "collection-root" / USER / book
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def served_cards(server: Any, book: str = f"source-{NAME}") -> dict[str, str]:
    """UID -> FN of every card a server serves in a book (on any store); {} before it exists."""
    client = server.client()
    status, text = client.propfind(f"/{USER}/{book}/", '<?xml version="1.0"?><D:propfind '
                                   'xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>')
    if status != 207:
        return {}
    found = {}
    for entry in parse_multistatus(text)[1]:
        if entry.href.endswith("/"):
            continue
        body = client.request("GET", entry.href)[2]
        uid = re.search(r"^UID:(.*?)\r?$", body, re.M)
        fn = re.search(r"^FN:(.*?)\r?$", body, re.M)
        assert uid and fn, body
        found[uid.group(1)] = fn.group(1)
    return found


def add_source(target: Path, url: str, *extra: str, password: str | None = None,
               check: bool = True, config: Path | None = None) -> str:
    args = ["sources", "add", url, "--name", NAME, *extra]
    if config is not None:
        args += ["--config", str(config)]
    if password is not None:
        args += ["--password-stdin"]
    result = run_cli(*args, data_dir=target, stdin=(password or "") + "\n", check=False)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout + result.stderr


def sync(target: Path, check: bool = True) -> tuple[int, str]:
    """(exit status, the status line on standard output)."""
    result = run_cli("sources", "sync", NAME, data_dir=target, check=False)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout


def show(target: Path) -> dict[str, object]:
    result = run_cli("sources", "show", NAME, "--json", data_dir=target)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture(params=["radicale", "cardfile", "xandikos"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceServer]:
    if request.param == "xandikos" and shutil.which("xandikos") is None:
        pytest.skip("xandikos is not installed (pip install xandikos; it is in the test extra)")
    server = source_servers.start(request.param, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(source: SourceServer) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(source.url)
    try:
        yield recording
    finally:
        recording.close()


def _login(source: SourceServer) -> list[str]:
    return ["--login", source.user] if source.name != "xandikos" else []


def _connect(target: Path, source: SourceServer, proxy: RecordingProxy, url: str) -> None:
    password = source.password if source.name != "xandikos" else None
    add_source(target, url, *_login(source), password=password)


@pytest.mark.slow
def test_changes_at_a_real_server_arrive_in_one_refresh_incrementally(
        source: SourceServer, proxy: RecordingProxy, target: Path) -> None:
    for i in range(1, 4):
        source.put(f"card-{i}", card(f"card-{i}", f"Person {i}", f"EMAIL:p{i}@example.org"))
    # Discovery from the server's root URL (well-known, principal, home), not the book URL.
    _connect(target, source, proxy, proxy.url + "/")
    assert book_cards(target) == {f"card-{i}": f"Person {i}" for i in range(1, 4)}
    first = show(target)
    assert first["status"] == "ok" and first["cards"] == 3
    assert str(first["book_url"]).endswith(source.book_path)

    source.put("card-1", card("card-1", "Person One", "EMAIL:p1@example.org"))
    source.put("card-4", card("card-4", "Person Four"))
    source.delete("card-2")
    proxy.log.clear()
    _, out = sync(target)
    assert "1 added, 1 updated, 1 removed" in out
    assert book_cards(target) == {"card-1": "Person One", "card-3": "Person 3",
                                  "card-4": "Person Four"}
    # The second run asked only for changes: sync-collection with the token it was given,
    # then a multiget of just the two changed cards; no PROPFIND listing of the book.
    reports = proxy.requests("REPORT")
    syncs = [r for r in reports if "sync-collection" in r.body]
    assert syncs and all(re.search(r"<D:sync-token>[^<]+</D:sync-token>", r.body)
                         for r in syncs), [r.body for r in syncs]
    multigets = [r for r in reports if "addressbook-multiget" in r.body]
    assert len(multigets) == 1 and multigets[0].body.count("<D:href>") == 2
    assert not [r for r in proxy.requests("PROPFIND") if "getetag" in r.body]
    assert show(target)["incremental"] is True


@pytest.mark.slow
def test_a_refused_login_keeps_the_cards_and_says_sign_in_again(
        source: SourceServer, proxy: RecordingProxy, target: Path) -> None:
    # The 401 comes from the proxy, so a source without logins (Xandikos here) is tested too.
    source.put("kept", card("kept", "Kept Person"))
    _connect(target, source, proxy, proxy.url + source.book_path)
    before = book_snapshot(target, f"source-{NAME}")
    proxy.fault = lambda method, path: (401, {"WWW-Authenticate": 'Basic realm="x"'},
                                        b"no")
    code, out = sync(target, check=False)
    assert code == 1 and "needs sign-in again" in out
    assert book_snapshot(target, f"source-{NAME}")["kept.vcf"] == before["kept.vcf"]
    assert show(target)["status"] == "needs sign-in again"
    proxy.fault = None
    result = run_cli("sources", "login", NAME, "--login", source.user, "--password-stdin",
                     data_dir=target, stdin=source.password + "\n")
    assert result.returncode == 0
    sync(target)
    assert show(target)["status"] == "ok"


@pytest.mark.slow
def test_an_expired_token_falls_back_to_a_full_listing_that_removes_what_went(
        source: SourceServer, proxy: RecordingProxy, target: Path) -> None:
    for uid in ("a", "b"):
        source.put(uid, card(uid, f"Person {uid.upper()}"))
    _connect(target, source, proxy, proxy.url + source.book_path)
    state_file = target / "collection-root" / USER / f"source-{NAME}" / \
        ".cardfile-source-state.json"
    state = json.loads(state_file.read_text())
    assert state["token"]
    state["token"] = state["token"] + "-expired"
    state_file.write_text(json.dumps(state))
    source.delete("b")
    proxy.log.clear()
    _, out = sync(target)
    assert "1 removed" in out and book_cards(target) == {"a": "Person A"}
    syncs = [r for r in proxy.requests("REPORT") if "sync-collection" in r.body]
    assert "expired" in syncs[0].body and "<D:sync-token></D:sync-token>" in syncs[-1].body
    assert "sync token" in " ".join(show(target)["problems"])  # type: ignore[arg-type]


# -- misbehaving sources: a clear status line, nothing changed -----------------------------
def _huge(method: str, path: str) -> tuple[int, dict[str, str], object]:
    chunk = b"<x>" + b"a" * 65536 + b"</x>"
    return 207, {"Content-Type": "application/xml"}, (chunk for _ in range(1000))


FAULTS = {
    "garbage": (lambda m, p: (207, {"Content-Type": "application/xml"}, b"\x00garbage<<"),
                "not readable XML"),
    "html": (lambda m, p: (200, {"Content-Type": "text/html"}, b"<html>hi</html>"),
             "not a WebDAV multistatus"),
    "redirect-loop": (lambda m, p: (302, {"Location": p}, b""), "redirected more than"),
    "huge": (_huge, "larger than 50 MB"),
    "server-error": (lambda m, p: (503, {}, b"down"), "unreachable"),
    "billion-laughs": (lambda m, p: (207, {"Content-Type": "application/xml"},
                                     b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">'
                                     b'<!ENTITY b "&a;&a;&a;">]><D:multistatus '
                                     b'xmlns:D="DAV:">&b;</D:multistatus>'),
                       "not readable XML"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_misbehaving_source_changes_nothing(tmp_path: Path, target: Path,
                                              fault: str) -> None:
    server = source_servers.start("radicale", tmp_path)
    proxy = RecordingProxy(server.url)
    try:
        server.put("one", card("one", "Person One"))
        _connect(target, server, proxy, proxy.url + server.book_path)
        server.put("two", card("two", "Person Two"))
        before = book_snapshot(target, f"source-{NAME}")
        proxy.fault, expected = FAULTS[fault]  # type: ignore[assignment]
        code, out = sync(target, check=False)
        assert code == 1 and expected in out, out
        assert len(out.strip().splitlines()) == 1  # one status line, no traceback
        after = book_snapshot(target, f"source-{NAME}")
        assert {k: v for k, v in after.items() if not k.startswith(".cardfile-source")} == \
            {k: v for k, v in before.items() if not k.startswith(".cardfile-source")}
        assert book_cards(target) == {"one": "Person One"}
        status = show(target)
        assert expected in f"{status['status']}: {status['message']}"
        proxy.fault = None
        sync(target)  # and it recovers once the source behaves
        assert book_cards(target) == {"one": "Person One", "two": "Person Two"}
    finally:
        proxy.close()
        server.stop()


def test_an_unreadable_card_is_skipped_and_reported(tmp_path: Path, target: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "good.vcf").write_text(card("good", "Good Person"))
    (folder / "bad.vcf").write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\n"
                                    "N:;;\r\nBDAY:\x00\x01\r\n")
    out = add_source(target, str(folder), "--interval", "60", check=False)
    assert "Traceback" not in out
    status = show(target)
    assert status["status"] == "ok"
    assert "good" in book_cards(target)


# -- a file at a URL and a local folder ------------------------------------------------
def test_a_vcard_file_at_a_url_stays_current(tmp_path: Path, target: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "team.vcf").write_text(card("t1", "Team One") + card("t2", "Team Two"))
    import functools
    import http.server

    from tests.conftest import loopback_site

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with loopback_site(handler) as url:  # type: ignore[arg-type]
        add_source(target, f"{url}/team.vcf")
        assert book_cards(target) == {"t1": "Team One", "t2": "Team Two"}
        assert show(target)["kind"] == "file"
        _, out = sync(target)
        assert "0 added, 0 updated, 0 removed" in out
        (site / "team.vcf").write_text(card("t1", "Team Uno") + card("t3", "Team Three"))
        os.utime(site / "team.vcf", (1e9 + 10, 2e9))  # a new Last-Modified for the GET
        _, out = sync(target)
        assert "1 added, 1 updated, 1 removed" in out
        assert book_cards(target) == {"t1": "Team Uno", "t3": "Team Three"}


def test_a_csv_file_at_a_url(tmp_path: Path, target: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "people.csv").write_text("First Name,Last Name,E-mail Address\n"
                                     "Ada,Lovelace,ada@example.org\n"
                                     "Alan,Turing,alan@example.org\n")
    import functools
    import http.server

    from tests.conftest import loopback_site

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with loopback_site(handler) as url:  # type: ignore[arg-type]
        add_source(target, f"{url}/people.csv")
    assert sorted(book_cards(target).values()) == ["Ada Lovelace", "Alan Turing"]


def test_a_local_folder_stays_current(tmp_path: Path, target: Path) -> None:
    folder = tmp_path / "vdir"
    folder.mkdir()
    for i in (1, 2):
        (folder / f"{i}.vcf").write_text(card(f"f{i}", f"Folder {i}"))
    add_source(target, str(folder))
    assert book_cards(target) == {"f1": "Folder 1", "f2": "Folder 2"}
    (folder / "2.vcf").unlink()
    (folder / "3.vcf").write_text(card("f3", "Folder 3"))
    _, out = sync(target)
    assert "1 added, 0 updated, 1 removed, 1 unchanged" in out
    assert book_cards(target) == {"f1": "Folder 1", "f3": "Folder 3"}


# -- credentials ----------------------------------------------------------------------
@pytest.mark.files_only(BACKS_UP_THE_FOLDER)
@pytest.mark.slow
def test_credentials_are_encrypted_outside_the_data_folder_and_never_shown(
        tmp_path: Path, target: Path, _key_file: Path) -> None:
    server = source_servers.start("radicale", tmp_path)
    try:
        server.put("x", card("x", "Person X"))
        add_source(target, server.url + server.book_path, "--login", server.user,
                   password=server.password)
    finally:
        server.stop()
    secret = target / "collection-root" / USER / f"source-{NAME}" / ".cardfile-source.secret"
    assert secret.is_file() and server.password.encode() not in secret.read_bytes()
    assert stat.S_IMODE(_key_file.stat().st_mode) == 0o600
    assert target not in _key_file.parents
    everything = b"".join(p.read_bytes() for p in target.rglob("*") if p.is_file())
    assert server.password.encode() not in everything
    for args in (["list", "--json"], ["show", NAME, "--json"], ["show", NAME]):
        out = run_cli("sources", *args, data_dir=target).stdout
        assert server.password not in out
    assert show(target)["has_password"] is True
    # A backup leaves the encrypted password out unless asked for.
    archive = tmp_path / "backup.tar.gz"
    run_cli("backup", str(archive), data_dir=target)
    import tarfile

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith(".cardfile-source.json") for n in names)
    assert not any(n.endswith(".cardfile-source.secret") for n in names)


def test_cli_mistakes_are_one_line(tmp_path: Path, target: Path) -> None:
    for args in (["sources", "show", "nope"], ["sources", "sync", "nope"],
                 ["sources", "add", str(tmp_path / "missing")],
                 ["sources", "add", "http://127.0.0.1:9/", "--name", "Bad Name"],
                 ["sources", "remove", "nope"]):
        result = run_cli(*args, data_dir=target, check=False)
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert "Traceback" not in result.stderr and last.startswith("Error: "), \
            (args, result.stderr)


def test_google_and_microsoft_are_designed_in_but_refused_with_the_reason(
        tmp_path: Path, target: Path) -> None:
    """OAuth-only kinds (docs/sources-oauth.md): one Error line naming the kind and the
    README, nothing probed over the network, nothing created."""
    for args in (["https://www.googleapis.com/carddav/v1/principals/me@gmail.com/lists/default/"],
                 ["https://www.google.com/.well-known/carddav"],
                 ["https://graph.microsoft.com/v1.0/me/contacts"],
                 ["https://dav.example.invalid/", "--kind", "google-carddav"],
                 ["https://contacts.example.invalid/", "--kind", "microsoft-graph"]):
        result = run_cli("sources", "add", *args, "--name", "planned", data_dir=target,
                         check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        kind = "microsoft-graph" if "microsoft" in " ".join(args) else "google-carddav"
        assert last.startswith("Error: ") and f"(kind '{kind}')" in last, last
        assert "not available in this build" in last and "README" in last, last
    assert not (target / "collection-root" / USER / "source-planned").exists()
    assert run_cli("sources", "list", "--json", data_dir=target).stdout.strip() == "[]"
    # An ordinary URL on the same hosts' neighbours is not caught by the check.
    result = run_cli("sources", "add", "http://127.0.0.1:9/google.com/carddav", "--name",
                     "planned", data_dir=target, check=False)
    assert "not available in this build" not in result.stderr, result.stderr


# -- inside 'cardfile serve': the refresher, the read-only book, the API -----------------
@pytest.mark.slow
def test_a_running_server_refreshes_serves_read_only_and_offers_the_api(
        tmp_path: Path, store_config: str) -> None:
    from tests.conftest import PASSWORD, start_server

    (tmp_path / "target").mkdir()
    target = start_server(tmp_path / "target", store_config=store_config)
    source = source_servers.start("radicale", tmp_path)
    try:
        source.put("s1", card("s1", "Source One"))
        add_source(target.data_dir, source.url + source.book_path, "--interval", "1",
                   "--login", source.user, password=source.password,
                   config=target.config_path)
        source.put("s2", card("s2", "Source Two"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "s2" not in served_cards(target):
            time.sleep(0.3)
        assert served_cards(target) == {"s1": "Source One", "s2": "Source Two"}

        dav = target.client()
        book = f"/{USER}/source-{NAME}/"
        status, _, body = dav.request("PROPFIND", book, headers={"Depth": "1"})
        assert status == 207 and "s1.vcf" in body and ".cardfile-source" not in body
        status, _, body = dav.request("PUT", book + "s1.vcf", card("s1", "Changed Here"),
                                      {"Content-Type": "text/vcard"})
        assert status == 403 and "read-only" in body, (status, body)
        status, _, body = dav.request("DELETE", book + "s1.vcf")
        assert status == 403 and "read-only" in body
        status, _, body = dav.request("DELETE", book)
        assert status == 403 and "sources remove" in body
        bob = target.client("bob", "x")  # not logged in: no hint that this is a source
        status, _, body = bob.request("PUT", book + "s9.vcf", card("s9", "X"),
                                      {"Content-Type": "text/vcard"})
        assert status == 401 and "source" not in body
        assert served_cards(target)["s1"] == "Source One"

        status, _, body = dav.request("GET", f"/api/books/source-{NAME}/contacts")
        assert status == 200 and "Source Two" in body
        status, _, body = dav.request("DELETE", f"/api/books/source-{NAME}/contacts/s1")
        assert status == 403 and "read-only" in body
        status, _, body = dav.request("GET", "/api/sources")
        listed = json.loads(body)
        assert status == 200 and listed["items"][0]["name"] == NAME
        assert source.password not in body and listed["items"][0]["has_password"]
        status, _, body = dav.request("POST", f"/api/sources/{NAME}/sync",
                                      headers={"Origin": target.url})
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, _, body = dav.request(
            "POST", "/api/sources", json.dumps({"url": "file:///etc"}),
            {"Content-Type": "application/json", "Origin": target.url})
        assert status == 422, body
        status, _, body = dav.request("DELETE", f"/api/sources/{NAME}",
                                      headers={"Origin": target.url})
        assert status == 204
        assert not (target.data_dir / "collection-root" / USER / f"source-{NAME}").exists()
        assert PASSWORD  # alice's own login was used throughout
    finally:
        target.stop()
        source.stop()


# -- --into main: consolidation with provenance ----------------------------------------
def _main_card(data: Path, fn: str) -> str | None:
    for path in (data / "collection-root" / USER / "contacts").glob("*.vcf"):
        text = path.read_text()
        if re.search(rf"^FN[^:\n]*:{re.escape(fn)}\r?$", text, re.M):
            return text
    return None


@pytest.mark.slow
def test_into_main_keeps_provenance_updates_only_its_values_and_survives_disconnect(
        tmp_path: Path, target: Path) -> None:
    own = tmp_path / "mine.vcf"
    own.write_text(card("my-ada", "Ada Lovelace", "EMAIL:ada@example.org",
                        "NOTE:met at the engine"))
    run_cli("import", str(own), data_dir=target)
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "ada.vcf").write_text(card("work-ada", "Ada Lovelace", "EMAIL:ada@example.org",
                                         "TEL:+1 555 0100", "TITLE:Analyst"))
    (folder / "bob.vcf").write_text(card("work-bob", "Bob Babbage", "TEL:+1 555 0199"))
    add_source(target, str(folder), "--into", "main")

    ada = _main_card(target, "Ada Lovelace")
    assert ada is not None and "UID:my-ada" in ada  # matched by the shared email
    assert "NOTE:met at the engine" in ada and ada.count("EMAIL") == 1
    assert f"TEL;X-CARDFILE-SOURCE={NAME}:+1 555 0100" in ada
    assert f"TITLE;X-CARDFILE-SOURCE={NAME}:Analyst" in ada
    bob = _main_card(target, "Bob Babbage")
    assert bob is not None and f"TEL;X-CARDFILE-SOURCE={NAME}:+1 555 0199" in bob
    assert book_cards(target)["work-ada"] == "Ada Lovelace"  # and its own book too

    # A change at the source replaces only its own values.
    (folder / "ada.vcf").write_text(card("work-ada", "Ada Lovelace", "EMAIL:ada@example.org",
                                         "TEL:+1 555 0111"))
    sync(target)
    ada = _main_card(target, "Ada Lovelace")
    assert ada is not None and "0100" not in ada and "Analyst" not in ada
    assert f"TEL;X-CARDFILE-SOURCE={NAME}:+1 555 0111" in ada
    assert "NOTE:met at the engine" in ada and "UID:my-ada" in ada

    # Disconnecting takes the source's values away, and nothing the user wrote.
    result = run_cli("sources", "remove", NAME, data_dir=target)
    assert result.returncode == 0
    ada = _main_card(target, "Ada Lovelace")
    assert ada is not None and "X-CARDFILE-SOURCE" not in ada and "TEL" not in ada
    assert "NOTE:met at the engine" in ada and "EMAIL:ada@example.org" in ada
    assert _main_card(target, "Bob Babbage") is None
    assert not (target / "collection-root" / USER / f"source-{NAME}").exists()
