"""Trash, history and restore-to, over real HTTP, the real CLI and real vdirsyncer.

Every way a contact can be deleted or changed (a CardDAV DELETE, the API, the
CLI) lands in the trash or the history with who did it and with which
client, and comes back through the normal write path, so clients see it at
their next sync. History is the owner's: other users, published categories
and read-only logins never see it. It survives a restart and a backup.
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, run_cli, start_server
from tests.davclient import DavClient, card
from tests.test_api import Api, assert_problem

BOOK = "/api/books/contacts"
DAVX5 = "DAVx5/4.3.1-ose (2024/01/01; dav4jvm; okhttp/4.12.0) Android/14"


def iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, tz=datetime.UTC).isoformat()


def local(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment).isoformat(sep=" ", timespec="milliseconds")


def a_moment() -> float:
    """Now, with a little room either side, so changes fall clearly before or after it."""
    time.sleep(0.05)
    moment = time.time()
    time.sleep(0.05)
    return moment


def cli(server: ServerProcess, *args: str, check: bool = True) -> Any:
    """The CLI on the server's data, with its configuration (its store, on PostgreSQL)."""
    return server.cli(*args, "--user", USER, check=check)


def phone_card(uid: str, name: str, phone: str, *extra: str) -> str:
    return card(uid, name, f"TEL;TYPE=CELL:{phone}", f"EMAIL:{uid}@example.org", *extra)


# -- trash: delete from every door, restore from every door -------------------------------
def test_carddav_delete_lands_in_the_trash_and_comes_back_at_the_same_href(
        server: ServerProcess, dav: DavClient) -> None:
    phone = DavClient(server.url, USER, PASSWORD, user_agent=DAVX5)
    text = phone_card("ada", "Ada Lovelace", "+44 20 7946 0000")
    assert phone.put("ada-href.vcf", text)[0] == 201
    _, token, _ = phone.sync()
    assert phone.delete("ada-href.vcf") == 200
    assert phone.get("ada-href.vcf")[0] == 404

    api = Api(server)
    trash = api.ok("GET", f"{BOOK}/trash")
    assert trash["total"] == 1
    item = trash["items"][0]
    assert item["uid"] == "ada" and item["name"] == "Ada Lovelace"
    assert item["href"] == "ada-href.vcf"
    assert item["deleted"]["user"] == USER
    assert item["deleted"]["client"] == "DAVx5/4.3.1-ose"
    preview = api.ok("GET", item["url"])
    assert preview["vcard"] == text
    assert preview["contact"]["phones"][0]["value"] == "+44 20 7946 0000"

    restored = api.call("POST", item["restore"])
    assert restored[0] == 201, restored[2]
    status, headers, body = phone.get("ada-href.vcf")
    assert status == 200 and body == text  # same href, same bytes
    # The phone's next sync sees it as a card at that href.
    status, _, entries = phone.sync(token)
    assert status == 207 and [e.href.rsplit("/", 1)[1] for e in entries] == ["ada-href.vcf"]
    assert entries[0].etag == headers["etag"]
    assert api.ok("GET", f"{BOOK}/trash")["total"] == 0
    # The restore is a change in the history too, by the web/API, as a restore.
    history = api.ok("GET", f"{BOOK}/contacts/ada/history")
    assert history["items"][0]["made"]["via"] == "restore from trash"


def test_api_delete_restored_by_the_cli_and_cli_delete_restored_by_the_api(
        server: ServerProcess, dav: DavClient) -> None:
    api = Api(server)
    for uid, name in (("grace", "Grace Hopper"), ("alan", "Alan Turing")):
        assert dav.put(f"{uid}.vcf", phone_card(uid, name, "+1 555 0100"))[0] == 201
    assert api.call("DELETE", f"{BOOK}/contacts/grace")[0] == 204
    listed = cli(server, "trash", "list", "--json")
    [entry] = json.loads(listed.stdout)
    assert entry["uid"] == "grace" and entry["deleted"]["client"].startswith("API")
    shown = cli(server, "trash", "show", "grace")
    assert "Grace Hopper" in shown.stdout and "+1 555 0100" in shown.stdout
    cli(server, "trash", "restore", "grace")
    assert dav.get("grace.vcf")[0] == 200

    removed = cli(server, "contacts", "remove", "alan")
    assert "trash restore alan" in removed.stdout
    assert dav.get("alan.vcf")[0] == 404
    item = api.ok("GET", f"{BOOK}/trash")["items"][0]
    assert item["uid"] == "alan" and item["deleted"]["client"] == "cardfile CLI"
    assert api.call("POST", item["restore"])[0] == 201
    assert dav.get("alan.vcf")[0] == 200


@pytest.mark.slow
def test_purge_and_the_mistakes_a_user_can_make(server: ServerProcess, dav: DavClient) -> None:
    api = Api(server)
    assert dav.put("x.vcf", phone_card("x", "Xavier Example", "+1 555 0101"))[0] == 201
    assert dav.put("y.vcf", phone_card("y", "Yvonne Example", "+1 555 0102"))[0] == 201
    assert dav.delete("x.vcf") == 200 and dav.delete("y.vcf") == 200

    # Restoring over a card that came back meanwhile (same UID) is refused; nothing changes.
    again = phone_card("x", "Xavier Again", "+1 555 0199")
    assert dav.put("x.vcf", again)[0] == 201
    assert api.ok("GET", f"{BOOK}/trash")["total"] == 1  # x is back, so not in the trash
    assert_problem(api.call("POST", f"{BOOK}/trash/x/restore"), 404)
    assert dav.get("x.vcf")[2] == again
    # Another contact now at y's href: refused with the reason, nothing written.
    assert dav.put("y.vcf", phone_card("other", "Other Person", "+1 555 0103"))[0] == 201
    problem = assert_problem(api.call("POST", f"{BOOK}/trash/y/restore"), 409)
    assert "used by another contact" in problem["detail"]
    result = cli(server, "trash", "restore", "y", check=False)
    assert result.returncode == 1 and "used by another contact" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Other Person" in dav.get("y.vcf")[2]

    # Purge: gone from the trash, and a second purge or restore is a clear 404.
    assert api.call("DELETE", f"{BOOK}/trash/y")[0] == 204
    assert api.ok("GET", f"{BOOK}/trash")["total"] == 0
    assert_problem(api.call("POST", f"{BOOK}/trash/y/restore"), 404)
    result = cli(server, "trash", "restore", "y", check=False)
    assert result.returncode == 1 and "not in the trash" in result.stderr
    result = cli(server, "trash", "purge", "nobody", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert_problem(api.call("GET", f"{BOOK}/contacts/nobody/history"), 404)
    result = cli(server, "history", "nobody", check=False)
    assert result.returncode == 1 and "no contact 'nobody'" in result.stderr
    result = cli(server, "history", "x", "--restore", "999999", check=False)
    assert result.returncode == 1 and "no version 999999" in result.stderr
    assert dav.get("x.vcf")[2] == again

    # A card the server refuses leaves no trace in the history.
    versions = api.ok("GET", f"{BOOK}/contacts/x/history")["total"]
    assert dav.put("x.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:Broken\r\n")[0] == 400
    assert api.ok("GET", f"{BOOK}/contacts/x/history")["total"] == versions

    # A TIME that cannot be read, or one in the future: refused, nothing changes.
    before = dav.etags()
    for bad in ("next tuesday", "25:99", "in 2 hours", "2999-01-01 00:00"):
        result = cli(server, "restore-to", bad, "--yes", check=False)
        assert result.returncode == 2 and "TIME" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert_problem(api.call("POST", f"{BOOK}/restore-to", {"time": bad}), 422)
    assert dav.etags() == before


# -- history of a contact ------------------------------------------------------------------
def test_history_shows_each_version_with_its_author_and_a_field_diff(
        server: ServerProcess, dav: DavClient) -> None:
    phone = DavClient(server.url, USER, PASSWORD, user_agent=DAVX5)
    first = phone_card("ada", "Ada Lovelace", "+44 20 7946 0000", "NOTE:Analyst")
    assert phone.put("ada.vcf", first)[0] == 201
    second = phone_card("ada", "Ada Lovelace", "+44 20 7946 1111", "NOTE:Analyst")
    assert phone.put("ada.vcf", second)[0] == 204
    api = Api(server)
    etag = dav.get("ada.vcf")[1]["etag"]
    api.ok("PATCH", f"{BOOK}/contacts/ada", {"title": "Countess", "notes": None},
           headers={"If-Match": etag, "Content-Type": "application/merge-patch+json"})

    history = api.ok("GET", f"{BOOK}/contacts/ada/history")
    assert history["exists"] and history["total"] == 3
    current, middle, oldest = history["items"]
    assert current["current"] and current["made"]["client"].startswith("API")
    assert {"field": "Title", "old": None, "new": "Countess"} in current["changes"]
    assert {"field": "Note", "old": "Analyst", "new": None} in current["changes"]
    assert middle["made"]["client"] == "DAVx5/4.3.1-ose"
    assert middle["made"]["user"] == USER and middle["made"]["action"] == "changed"
    assert {"field": "Phone", "old": "+44 20 7946 0000 (cell)", "new": None} in middle["changes"]
    assert {"field": "Phone", "old": None, "new": "+44 20 7946 1111 (cell)"} in middle["changes"]
    assert oldest["made"]["action"] == "added"
    assert oldest["replaced"]["client"] == "DAVx5/4.3.1-ose"

    # The CLI says the same, in lines a person reads (no vCard lines).
    shown = cli(server, "history", "ada").stdout
    assert "~ Title" not in shown and "+ Title: Countess" in shown
    assert "- Phone: +44 20 7946 0000 (cell)" in shown and "DAVx5/4.3.1-ose" in shown
    assert "TEL;" not in shown

    # Restoring the first version is a new change; the card is those bytes again.
    restored = api.call("POST", oldest["restore"])
    assert restored[0] == 200, restored[2]
    assert phone.get("ada.vcf")[2] == first
    after = api.ok("GET", f"{BOOK}/contacts/ada/history")
    assert after["total"] == 4 and after["items"][0]["made"]["via"].startswith("restore")
    # ... and from the CLI: back to the PATCHed version.
    patched = next(v for v in after["items"] if v["changes"] and any(
        c["field"] == "Title" for c in v["changes"]) and not v["current"])
    cli(server, "history", "ada", "--restore", str(patched["version"]))
    assert "TITLE:Countess" in phone.get("ada.vcf")[2]


@pytest.mark.slow
def test_history_survives_a_restart_and_a_backup_round_trip(tmp_path: Path,
                                                            store_config: str) -> None:
    (tmp_path / "one").mkdir()
    server = start_server(tmp_path / "one", store_config=store_config)
    try:
        dav = server.client()
        dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        assert dav.put("ada.vcf", phone_card("ada", "Ada Lovelace", "+44 1"))[0] == 201
        assert dav.put("ada.vcf", phone_card("ada", "Ada Lovelace", "+44 2"))[0] == 204
        assert dav.put("bob.vcf", phone_card("bob", "Bob Example", "+1 3"))[0] == 201
        assert dav.delete("bob.vcf") == 200
        server = server.restarted()
        api = Api(server)
        assert api.ok("GET", f"{BOOK}/contacts/ada/history")["total"] == 2
        assert [i["uid"] for i in api.ok("GET", f"{BOOK}/trash")["items"]] == ["bob"]
        # Deleting the derived index loses no history either.
        server.stop()
        for index in server.data_dir.glob("cardfile-index.sqlite3*"):
            index.unlink()
        server = server.restarted()
        api = Api(server)
        assert api.ok("GET", f"{BOOK}/contacts/ada/history")["total"] == 2
        archive = tmp_path / "backup.tar.gz"
        if store_config:  # PostgreSQL: backups are the database's (test_postgres)
            return
        run_cli("backup", str(archive), data_dir=server.data_dir)
    finally:
        server.stop()
    fresh = tmp_path / "two" / "data"
    fresh.mkdir(parents=True)
    run_cli("restore", str(archive), data_dir=fresh)
    assert (fresh / "history" / USER / "contacts" / "history.sqlite3").is_file()
    restored = ServerProcess(fresh, server.port)
    try:
        api = Api(restored)
        versions = api.ok("GET", f"{BOOK}/contacts/ada/history")["items"]
        assert len(versions) == 2 and versions[0]["made"]["client"] == "cardfile-tests/1.0"
        item = api.ok("GET", f"{BOOK}/trash")["items"][0]
        assert item["uid"] == "bob"
        assert api.call("POST", item["restore"])[0] == 201
        assert restored.client().get("bob.vcf")[0] == 200
    finally:
        restored.stop()


# -- restore the book to a time --------------------------------------------------------------
def test_wipe_by_raw_requests_then_restore_to_the_moment_before(
        server: ServerProcess, dav: DavClient) -> None:
    api = Api(server)
    cards = {f"c{i}.vcf": phone_card(f"c{i}", f"Person Number{i}", f"+1 555 01{i:02}",
                                     "CATEGORIES:Family" if i % 2 else "CATEGORIES:Work")
             for i in range(30)}
    for name, text in cards.items():
        assert dav.put(name, text)[0] == 201
    before = a_moment()
    _, token, _ = dav.sync()
    # A phone goes wrong: deletes most, empties some, changes one, adds one.
    wiper = DavClient(server.url, USER, PASSWORD, user_agent=DAVX5)
    for i in range(20):
        assert wiper.delete(f"c{i}.vcf") == 200
    for i in range(20, 25):
        assert wiper.put(f"c{i}.vcf", card(f"c{i}", f"Person Number{i}"))[0] == 204
    assert wiper.put("new.vcf", phone_card("new", "Newly Added", "+1 555 0199"))[0] == 201

    # The guard saw it: an alert, with the time to go back to, and a log line.
    alerts = api.ok("GET", f"{BOOK}/alerts")["items"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["client"] == "DAVx5/4.3.1-ose" and alert["deleted"] == 20
    assert alert["emptied"] == 5 and alert["book_size"] == 30
    assert "Mass change" in server.log() and "restore-to" in server.log()

    # One category first: only its contacts, dry run first (nothing changes).
    dry = api.ok("POST", f"{BOOK}/restore-to", {"time": iso(before), "category": "Family",
                                                 "dry_run": True})
    assert (dry["added"], dry["changed"], dry["deleted"]) == (10, 2, 0)
    assert len(dav.etags()) == 11
    done = api.ok("POST", f"{BOOK}/restore-to", {"time": iso(before), "category": "Family"})
    assert (done["added"], done["changed"], done["deleted"]) == (10, 2, 0)
    # Then the whole book, from the alert's own restore point, through the CLI.
    summary = cli(server, "restore-to", alert["restore_to_local"], "--dry-run").stdout
    assert "added 10, changed 3, deleted 1" in summary
    cli(server, "restore-to", alert["restore_to_local"], "--yes")
    now = {href.rsplit("/", 1)[1]: etag for href, etag in dav.etags().items()}
    assert set(now) == set(cards)
    for name, text in cards.items():
        assert dav.get(name)[2] == text, name
    # Every client syncs it as ordinary changes.
    status, _, entries = dav.sync(token)
    assert status == 207
    changed = {e.href.rsplit("/", 1)[1] for e in entries if e.status == 200}
    assert changed == {f"c{i}.vcf" for i in range(25)}
    assert {e.href.rsplit("/", 1)[1] for e in entries if e.status == 404} == {"new.vcf"}
    # Restoring again changes nothing; the alert can be dismissed.
    again = api.ok("POST", f"{BOOK}/restore-to", {"time": iso(before), "dry_run": True})
    assert (again["added"], again["changed"], again["deleted"]) == (0, 0, 0)
    assert api.call("DELETE", alert["url"])[0] == 204
    assert api.ok("GET", f"{BOOK}/alerts")["total"] == 0


def test_deleting_a_quarter_of_a_book_is_no_mass_change_and_one_more_is(
        server: ServerProcess, dav: DavClient) -> None:
    """The guard's line is a share of the book (25 %): a phone that deletes 25 of 100
    contacts is doing ordinary work; the 26th deletion makes it a mass change, and the
    alert gives the book's whole size before the run."""
    api = Api(server)
    for i in range(100):
        assert dav.put(f"q{i}.vcf", card(f"q{i}", f"Person Q{i}"))[0] == 201
    phone = DavClient(server.url, USER, PASSWORD, user_agent=DAVX5)
    for i in range(25):
        assert phone.delete(f"q{i}.vcf") == 200
    assert api.ok("GET", f"{BOOK}/alerts")["total"] == 0
    assert phone.delete("q25.vcf") == 200
    alerts = api.ok("GET", f"{BOOK}/alerts")["items"]
    assert [(a["deleted"], a["book_size"]) for a in alerts] == [(26, 100)]


def _vdirsyncer(tmp_path: Path, server: ServerProcess) -> tuple[Path, Any]:
    if shutil.which("vdirsyncer") is None:
        pytest.skip("vdirsyncer is not installed (it is in the test extra)")
    from tests.test_real_clients import vdirsyncer, vdirsyncer_config

    (tmp_path / "up").mkdir()
    (tmp_path / "down").mkdir()
    config = vdirsyncer_config(tmp_path, server)

    def run(*args: str) -> Any:
        return vdirsyncer(config, *args, server=server)

    run("discover", "up")
    return tmp_path / "up", run


@pytest.mark.slow
def test_vdirsyncer_wipes_the_book_and_gets_it_back_after_restore_to(
        server: ServerProcess, dav: DavClient, tmp_path: Path) -> None:
    up, vdirsyncer = _vdirsyncer(tmp_path, server)
    cards = {f"v{i}": phone_card(f"v{i}", f"Synced Person{i}", f"+49 30 1234 {i:04}")
             for i in range(25)}
    for uid, text in cards.items():
        (up / f"{uid}.vcf").write_text(text, newline="")
    vdirsyncer("sync", "up")
    assert len(dav.etags()) == 25
    before = a_moment()
    # The wipe: every local file gone, and vdirsyncer told to carry that to the server.
    for path in up.glob("*.vcf"):
        path.unlink()
    vdirsyncer("sync", "--force-delete", "up")
    assert dav.etags() == {}
    alert = Api(server).ok("GET", f"{BOOK}/alerts")["items"][0]
    assert alert["deleted"] == 25 and alert["client"].startswith("vdirsyncer/")
    trash = Api(server).ok("GET", f"{BOOK}/trash")
    assert trash["total"] == 25
    assert {i["deleted"]["client"].split("/")[0] for i in trash["items"]} == {"vdirsyncer"}

    cli(server, "restore-to", local(before), "--yes")
    assert len(dav.etags()) == 25
    vdirsyncer("sync", "up")  # the restored cards reach vdirsyncer at its next sync
    back = {p.stem: p.read_text() for p in up.glob("*.vcf")}
    assert set(back) == set(cards)
    for uid, text in cards.items():
        assert back[uid].replace("\r\n", "\n") == text.replace("\r\n", "\n")


@pytest.mark.slow
def test_vdirsyncer_delete_restored_from_the_trash_reaches_vdirsyncer(
        server: ServerProcess, dav: DavClient, tmp_path: Path) -> None:
    up, vdirsyncer = _vdirsyncer(tmp_path, server)
    (up / "kept.vcf").write_text(phone_card("kept", "Kept Person", "+1 1"), newline="")
    (up / "gone.vcf").write_text(phone_card("gone", "Gone Person", "+1 2"), newline="")
    vdirsyncer("sync", "up")
    (up / "gone.vcf").unlink()
    vdirsyncer("sync", "up")
    [item] = Api(server).ok("GET", f"{BOOK}/trash")["items"]
    assert item["uid"] == "gone" and item["deleted"]["client"].startswith("vdirsyncer/")
    cli(server, "trash", "restore", "gone")
    vdirsyncer("sync", "up")
    assert sorted(p.name for p in up.glob("*.vcf")) == ["gone.vcf", "kept.vcf"]
    assert "Gone Person" in (up / "gone.vcf").read_text()


# -- whose history it is ------------------------------------------------------------------------
def test_history_and_trash_belong_to_the_owner_only(server: ServerProcess,
                                                      dav: DavClient) -> None:
    assert dav.put("ada.vcf", phone_card("ada", "Ada Lovelace", "+44 1",
                                         "CATEGORIES:Family"))[0] == 201
    assert dav.put("ada.vcf", phone_card("ada", "Ada Lovelace", "+44 2",
                                         "CATEGORIES:Family"))[0] == 204
    assert dav.put("bob.vcf", phone_card("secret", "Secret Person", "+44 3"))[0] == 201
    assert dav.delete("bob.vcf") == 200
    bob = Api(server, "bob", "bob's password")
    bob.ok("GET", "/api/")  # bob's own book exists
    assert bob.ok("GET", f"{BOOK}/trash")["total"] == 0
    assert_problem(bob.call("GET", f"{BOOK}/contacts/ada/history"), 404)
    assert_problem(bob.call("POST", f"{BOOK}/trash/secret/restore"), 404)
    assert_problem(bob.call("GET", "/api/books/contacts/trash/secret"), 404)
    assert bob.ok("GET", f"{BOOK}/alerts")["total"] == 0
    bob_dav = server.client("bob", "bob's password")
    assert bob_dav.request("GET", f"/{USER}/contacts/bob.vcf")[0] in (403, 404)
    # The history is not in the book's folder: no client can list or fetch it.
    assert not any(p.name.startswith("history") for p in server.book_dir().iterdir())
    listed = dav.etags()
    assert [h.rsplit("/", 1)[1] for h in listed] == ["ada.vcf"]
    # A published category is a view: it has no trash or history of its own.
    cli(server, "categories", "publish", "Family")
    api = Api(server)
    assert_problem(api.call("GET", "/api/books/contacts-family/trash"), 404)
    assert_problem(api.call("GET", "/api/books/contacts-family/contacts/ada/history"), 404)
    assert api.ok("GET", f"{BOOK}/contacts/ada/history")["total"] == 2


def test_a_read_only_login_never_sees_history_or_trash(tmp_path: Path,
                                                       store_config: str) -> None:
    rights = tmp_path / "rights"
    rights.write_text(
        "[reader]\nuser: reader\ncollection: reader(/.*)?\npermissions: Rr\n\n"
        "[owner]\nuser: .+\ncollection: {user}(/.*)?\npermissions: RrWw\n\n"
        "[root]\nuser: .+\ncollection:\npermissions: R\n")
    server = start_server(tmp_path, {USER: PASSWORD, "reader": "reader password"},
                          extra_config=f"[rights]\ntype = from_file\nfile = {rights}\n",
                          store_config=store_config)
    try:
        stored = tmp_path / "card.vcf"
        stored.write_text(phone_card("r1", "Read Only", "+1 1"))
        server.cli("import", str(stored), "--user", "reader")
        server.cli("contacts", "remove", "r1", "--user", "reader")
        reader = Api(server, "reader", "reader password")
        assert reader.ok("GET", f"{BOOK}/contacts")["total"] == 0
        for path in ("trash", "trash/r1", "contacts/r1/history", "alerts"):
            problem = assert_problem(reader.call("GET", f"{BOOK}/{path}"), 403)
            assert "only read" in problem["detail"]
        assert_problem(reader.call("POST", f"{BOOK}/trash/r1/restore"), 403)
        assert_problem(reader.call("POST", f"{BOOK}/restore-to",
                                   {"time": "1 hour ago", "dry_run": True}), 403)
    finally:
        server.stop()


def test_the_trash_keeps_deleted_contacts_for_the_configured_time(tmp_path: Path,
                                                                  store_config: str) -> None:
    server = start_server(tmp_path, extra_config="[storage]\nhistory_days = 0.00002\n",
                          store_config=store_config)
    try:  # 0.00002 days: 1.7 seconds
        dav = server.client()
        dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        assert dav.put("t.vcf", phone_card("t", "Short Lived", "+1 1"))[0] == 201
        assert dav.delete("t.vcf") == 200
        api = Api(server)
        assert api.ok("GET", f"{BOOK}/trash")["total"] == 1
        time.sleep(2)
        assert api.ok("GET", f"{BOOK}/trash")["total"] == 0
        assert_problem(api.call("POST", f"{BOOK}/trash/t/restore"), 404)
        problem = assert_problem(api.call("POST", f"{BOOK}/restore-to",
                                          {"time": "1 hour ago"}), 422)
        assert "reaches back to" in problem["detail"]
    finally:
        server.stop()
