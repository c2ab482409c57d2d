"""Shared books and categories through the real server, three users, CardDAV and the API.

Alice shares the Family category of her book with Bob read-only, and her whole
book with Carol read-write. Bob sees Family's cards only, through every
route (PROPFIND, REPORT query and multiget, sync-collection, GET, the API's
list, search, counts and contact addresses), and every write method is
refused with the reason. Carol's writes land in Alice's book and history as
Carol's. Ending or revoking a share stops it at the next request; invitations
decline and expire as friendships do; handles (name@host) never tell whether
an account exists.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from cardfile.plugin.api import ids
from tests.conftest import BACKS_UP_THE_FOLDER, EDITS_A_GRANTS_FILE, ServerProcess
from tests.davclient import card, parse_multistatus
from tests.grants_helpers import api, cli, dav, trio_server

FAMILY = card("fam-1", "Fay Family", "EMAIL:fay@example.org", "CATEGORIES:Family")
WORK = card("work-1", "Walter Work", "EMAIL:walter-secret@example.org",
            "NOTE:unshared-note", "CATEGORIES:Work")
SECRET = ("work-1", "Walter", "walter-secret", "unshared-note")
ALL_PROPS = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/>'
             '</D:propfind>')


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    for server in trio_server(tmp_path_factory, module_store_config):
        alice = dav(server, "alice")
        assert alice.put("fam-1.vcf", FAMILY)[0] == 201
        assert alice.put("work-1.vcf", WORK)[0] == 201
        yield server


def no_secret(text: str, asked: str = "") -> None:
    """None of the unshared card's values in ``text`` (but the UID the client asked for)."""
    for word in SECRET:
        if word == asked:
            continue
        assert word not in text, f"{word!r} leaked: {text[:400]}"


def offer(server: ServerProcess, to: str, **body: object) -> dict[str, object]:
    found: dict[str, object] = api(server, "alice").ok(
        "POST", "/api/shares", {"user": to, "book": "contacts", **body}, status=201)
    assert found["status"] == "pending" and found["direction"] == "sent"
    return found


@pytest.fixture(scope="module")
def family_share(trio: ServerProcess) -> dict[str, object]:
    """Family, read-only, offered to Bob and accepted: the shared book's path."""
    sent = offer(trio, "bob", category="Family")
    bob = api(trio, "bob")
    received = bob.ok("GET", "/api/shares")["items"]
    assert [(s["id"], s["status"], s["owner"]) for s in received] == [
        (sent["id"], "invited you", "alice")]
    accepted = bob.ok("POST", f"/api/shares/{sent['id']}/accept")
    assert accepted["status"] == "shared" and accepted["access"] == "r"
    assert accepted["path"] == "/bob/shared-alice-contacts-family/"
    return accepted


def test_category_share_shows_only_its_cards_on_every_route(
        trio: ServerProcess, family_share: dict[str, object]) -> None:
    path = str(family_share["path"])
    bob = dav(trio, "bob")
    status, home = bob.propfind("/bob/", ALL_PROPS)
    assert status == 207 and path in home
    status, listing = bob.propfind(path, ALL_PROPS)
    assert status == 207 and "fam-1.vcf" in listing
    no_secret(listing)
    status, text = bob.report(
        '<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
        '</D:prop></C:addressbook-query>', path)
    assert status == 207 and "Fay Family" in text
    no_secret(text)
    status, text = bob.report(
        '<?xml version="1.0"?><C:addressbook-multiget xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data/></D:prop>'
        f'<D:href>{path}fam-1.vcf</D:href><D:href>{path}work-1.vcf</D:href>'
        '</C:addressbook-multiget>', path)
    assert status == 207
    no_secret(text.replace(f"{path}work-1.vcf", ""))  # asked for by name: 404 only
    assert {e.href.rsplit("/", 1)[1]: e.status for e in parse_multistatus(text)[1]} == {
        "fam-1.vcf": 200, "work-1.vcf": 404}
    assert bob.get("work-1.vcf", book=path)[0] == 404
    status, token, entries = bob.sync("", path)
    assert status == 207 and [e.href.rsplit("/", 1)[1] for e in entries] == ["fam-1.vcf"]
    # a card outside the category changes: the next sync names nothing of it
    alice = dav(trio, "alice")
    assert alice.put("work-1.vcf", WORK.replace("NOTE:", "NOTE:more "))[0] == 204
    status, _, text = bob.request("REPORT", path, (
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
        f'<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
        '<D:prop><D:getetag/></D:prop></D:sync-collection>'),
        {"Content-Type": "application/xml", "Depth": "1"})
    assert status in (207, 403)  # 403: valid-sync-token, the client starts over
    no_secret(text)
    # the API: list, search, counts, contact addresses
    book = path.strip("/").split("/")[1]
    bob_api = api(trio, "bob")
    listed = bob_api.ok("GET", f"/api/books/{book}/contacts")
    assert listed["total"] == 1 and [c["uid"] for c in listed["items"]] == ["fam-1"]
    no_secret(json.dumps(listed))
    assert bob_api.ok("GET", f"/api/books/{book}/contacts?q=walter")["total"] == 0
    assert bob_api.ok("GET", f"/api/books/{book}")["contact_count"] == 1
    assert bob_api.ok("GET", f"/api/books/{book}/letters")["total"] == 1
    status, _, _ = bob_api.call("GET", f"/api/books/{book}/contacts?category=Work")
    assert status == 400
    work_id = ids.encode("work-1")
    for route in (f"/api/books/{book}/contacts/{work_id}",
                  f"/api/books/{book}/contacts/{work_id}/photo"):
        status, _, problem = bob_api.call("GET", route)
        assert status == 404
        no_secret(json.dumps(problem), asked="work-1")
    for route in ("categories", "export", "trash", "duplicates", "alerts"):
        status, _, problem = bob_api.call("GET", f"/api/books/{book}/{route}")
        assert status == 403, (route, problem)
        no_secret(json.dumps(problem))
    got = bob_api.ok("GET", f"/api/books/{book}/contacts/{ids.encode('fam-1')}")
    assert got["uid"] == "fam-1" and "fay@example.org" in json.dumps(got)


def test_read_only_share_refuses_every_write(trio: ServerProcess,
                                             family_share: dict[str, object]) -> None:
    path = str(family_share["path"])
    bob = dav(trio, "bob")
    before = sorted(p.name for p in trio.book_dir("alice").glob("*.vcf"))
    xml = {"Content-Type": "application/xml"}
    attempts = [
        ("PUT", path + "new.vcf", card("new", "New Person"), {"Content-Type": "text/vcard"}),
        ("PUT", path + "fam-1.vcf", FAMILY.replace("Fay", "Changed"),
         {"Content-Type": "text/vcard"}),
        ("DELETE", path + "fam-1.vcf", None, {}),
        ("DELETE", path, None, {}),
        ("MKCOL", path + "sub/", None, {}),
        ("PROPPATCH", path, '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set>'
         '<D:prop><D:displayname>Mine</D:displayname></D:prop></D:set></D:propertyupdate>', xml),
        ("MOVE", path + "fam-1.vcf", None, {"Destination": "/bob/contacts/fam-1.vcf"}),
        ("COPY", path + "fam-1.vcf", None, {"Destination": "/bob/contacts/fam-1.vcf"}),
        ("MOVE", "/bob/contacts/x.vcf", None, {"Destination": path + "x.vcf"}),
        ("POST", path, "{}", {"Content-Type": "application/json"}),
    ]
    for method, where, body, headers in attempts:
        status, _, text = bob.request(method, where, body, headers)
        assert status == 403 and "read-only" in text, (method, where, status, text)
    book = path.strip("/").split("/")[1]
    bob_api = api(trio, "bob")
    fam_id = bob_api.ok("GET", f"/api/books/{book}/contacts")["items"][0]["id"]
    for method, route, body in (
            ("POST", "contacts", {"name": "New Person"}),
            ("PUT", f"contacts/{fam_id}", {"name": "Changed"}),
            ("PATCH", f"contacts/{fam_id}", {"name": "Changed"}),
            ("DELETE", f"contacts/{fam_id}", None)):
        status, _, problem = bob_api.call(method, f"/api/books/{book}/{route}", body)
        assert status == 403 and "read-only" in problem["detail"], (method, problem)
    assert sorted(p.name for p in trio.book_dir("alice").glob("*.vcf")) == before
    assert "Changed" not in (trio.book_dir("alice") / "fam-1.vcf").read_text()


def test_read_write_share_writes_to_the_owner_book_and_history(trio: ServerProcess) -> None:
    out = cli(trio, "shares", "invite", "carol", "--book", "contacts", "--read-write",
              "--user", "alice")
    ident = out.stderr.split("(")[1].split(")")[0]
    cli(trio, "shares", "accept", ident, "--user", "carol")
    listed = json.loads(cli(trio, "shares", "list", "--json", "--user", "carol").stdout)
    path = next(s["path"] for s in listed if s["id"] == ident)
    assert path == "/carol/shared-alice-contacts/" and listed[0]["access"] == "rw"
    carol = dav(trio, "carol")
    assert carol.put("carol-added.vcf", card("carol-added", "Added ByCarol"),
                     book=path)[0] == 201
    assert (trio.book_dir("alice") / "carol-added.vcf").is_file()
    assert not (trio.data_dir / "collection-root" / "carol" / path.split("/")[2]
                / "carol-added.vcf").exists()
    alice_api = api(trio, "alice")
    cid = quote(alice_api.ok("GET", "/api/books/contacts/contacts?q=ByCarol")["items"][0]["id"])
    history = alice_api.ok("GET", f"/api/books/contacts/contacts/{cid}/history")
    assert "carol" in json.dumps(history)
    # the API writes too, and a whole-book share shows every card
    carol_api = api(trio, "carol")
    book = path.strip("/").split("/")[1]
    assert carol_api.ok("GET", f"/api/books/{book}/contacts")["total"] >= 3
    carol_api.ok("PATCH", f"/api/books/{book}/contacts/{cid}", {"notes": "Patched ByCarol"})
    assert "Patched ByCarol" in (trio.book_dir("alice") / "carol-added.vcf").read_text()
    # its name, properties and existence stay Alice's
    status, _, text = carol.request("MKCOL", path + "sub/")
    assert status == 403 and "alice" in text
    status, _, text = carol.request("DELETE", path)
    assert status == 403
    # ending it (Alice) stops it at Carol's next request, and the folder goes
    cli(trio, "shares", "end", ident, "--user", "alice")
    assert carol.get("carol-added.vcf", book=path)[0] == 404
    assert carol.propfind(path, ALL_PROPS)[0] == 404
    assert path not in carol.propfind("/carol/", ALL_PROPS)[1]
    assert carol.put("x.vcf", card("x", "X Y"), book=path)[0] in (403, 404, 409)
    assert carol_api.call("GET", f"/api/books/{book}/contacts")[0] == 404
    assert (trio.book_dir("alice") / "carol-added.vcf").is_file()  # Alice's card stays


def test_revoke_by_admin_cli_stops_the_next_request(trio: ServerProcess) -> None:
    sent = offer(trio, "carol", category="Work")
    accepted = api(trio, "carol").ok("POST", f"/api/shares/{sent['id']}/accept")
    path = accepted["path"]
    carol = dav(trio, "carol")
    assert carol.get("work-1.vcf", book=path)[0] == 200
    listed = json.loads(cli(trio, "grants", "list", "--json").stdout)
    assert any(g["kind"] == "share" and g["id"] == sent["id"] for g in listed)
    cli(trio, "grants", "revoke", "alice", str(sent["id"]))
    assert carol.get("work-1.vcf", book=path)[0] == 404


@pytest.mark.files_only(EDITS_A_GRANTS_FILE)
def test_a_stale_folder_without_its_grant_serves_nothing(trio: ServerProcess) -> None:
    """The grant, not the folder, decides: a share removed from the file behind the
    server's back (the folder left) answers 404 at once."""
    sent = offer(trio, "carol", category="Family")
    path = api(trio, "carol").ok("POST", f"/api/shares/{sent['id']}/accept")["path"]
    carol = dav(trio, "carol")
    assert carol.get("fam-1.vcf", book=path)[0] == 200
    grants_file = trio.data_dir / "grants" / "alice.json"
    data = json.loads(grants_file.read_text())
    data["grants"] = [g for g in data["grants"] if g["id"] != sent["id"]]
    grants_file.write_text(json.dumps(data))
    assert carol.get("fam-1.vcf", book=path)[0] == 404
    assert path not in carol.propfind("/carol/", ALL_PROPS)[1]


@pytest.mark.files_only(EDITS_A_GRANTS_FILE)
def test_decline_expire_and_handles(trio: ServerProcess) -> None:
    carol_api = api(trio, "carol")
    sent = offer(trio, "carol", category="Work", access="rw")
    carol_api.ok("POST", f"/api/shares/{sent['id']}/decline")
    mine = api(trio, "alice").ok("GET", "/api/shares")["items"]
    assert next(s for s in mine if s["id"] == sent["id"])["status"] == "not accepted"
    # expiry: the deadline moved into the past
    sent = offer(trio, "bob")
    grants_file = trio.data_dir / "grants" / "alice.json"
    data = json.loads(grants_file.read_text())
    for record in data["grants"]:
        if record["id"] == sent["id"]:
            record["expires"] = "2000-01-01T00:00:00Z"
    grants_file.write_text(json.dumps(data))
    status, _, problem = api(trio, "bob").call("POST", f"/api/shares/{sent['id']}/accept")
    assert status == 409 and "expired" in problem["detail"]
    # handles: a user of this server by name@host; an unknown one looks the same
    alice = api(trio, "alice")
    known = alice.ok("POST", "/api/friends", {"user": "carol@localhost"}, status=201)
    unknown = alice.ok("POST", "/api/friends", {"user": "mallory@localhost"}, status=201)
    foreign = alice.ok("POST", "/api/friends", {"user": "carol@elsewhere.example"},
                       status=201)
    assert {k for k in known} == {k for k in unknown} == {k for k in foreign}
    assert (known["status"], unknown["status"], foreign["status"]) == ("pending",) * 3
    assert (known["friend"], unknown["friend"]) == ("carol@localhost", "mallory@localhost")
    received = carol_api.ok("GET", "/api/friends")["items"]
    assert [(f["id"], f["friend"]) for f in received
            if f["status"] == "invited you"] == [(known["id"], "alice")]
    carol_api.ok("POST", f"/api/friends/{known['id']}/decline")
    shown = {f["id"]: f["status"] for f in alice.ok("GET", "/api/friends")["items"]}
    assert shown[known["id"]] == "not accepted"
    shown_unknown = {**unknown, "status": "not accepted"}  # once it expires: the same
    assert set(shown_unknown) == set(known)
    # a share by handle through the CLI
    out = cli(trio, "shares", "invite", "bob@127.0.0.1", "--book", "contacts", "--category",
              "Work", "--user", "alice")
    assert "Offered" in out.stderr
    assert any(s["status"] == "invited you" and s["category"] == "Work"
               for s in api(trio, "bob").ok("GET", "/api/shares")["items"])
    out = cli(trio, "shares", "invite", "nobody@127.0.0.1", "--book", "contacts",
              "--user", "alice")
    assert "Offered" in out.stderr
    # mistakes: a clear error, nothing changed
    bad = cli(trio, "shares", "invite", "bob", "--book", "nosuchbook", "--user", "alice",
              check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    bad = cli(trio, "shares", "invite", "bob", "--book", "contacts", "--category", "Nope",
              "--user", "alice", check=False)
    assert bad.returncode != 0 and "Nope" in bad.stderr and "Traceback" not in bad.stderr


def test_openapi_document_has_the_share_routes(trio: ServerProcess) -> None:
    paths = api(trio, "alice").ok("GET", "/api/openapi.json")["paths"]
    for route in ("/api/shares", "/api/shares/{id}", "/api/shares/{id}/accept",
                  "/api/shares/{id}/decline", "/api/friends/{id}/copy"):
        assert route in paths


@pytest.mark.files_only(BACKS_UP_THE_FOLDER)
def test_backup_without_users_leaves_out_grants(trio: ServerProcess, tmp_path: Path) -> None:
    assert (trio.data_dir / "grants").is_dir()
    with_users = tmp_path / "all.tar.gz"
    without = tmp_path / "no-users.tar.gz"
    cli(trio, "backup", str(with_users))
    cli(trio, "backup", str(without), "--no-users")
    with tarfile.open(with_users) as tar:
        assert any(n.startswith("grants/") for n in tar.getnames())
    with tarfile.open(without) as tar:
        names = tar.getnames()
    assert not any(n == "grants" or n.startswith("grants/") for n in names)
    assert "htpasswd" not in names and any(n.endswith("fam-1.vcf") for n in names)



def test_a_friend_who_deletes_the_copy_does_not_get_it_back(trio: ServerProcess) -> None:
    """Deleting the copy of a friend's me card means "no more copies" (recorded on the
    friendship); the owner's next edit leaves it deleted; 'friends copy' undoes it."""
    bob, carol = dav(trio, "bob"), dav(trio, "carol")
    me_card = card("bob-me", "Bob Builder", "EMAIL:bob@example.org")
    assert bob.put("bob-me.vcf", me_card)[0] == 201
    cli(trio, "me", "set", "bob-me", "--user", "bob")
    invited = api(trio, "carol").ok("POST", "/api/friends", {"user": "bob"}, status=201)
    api(trio, "bob").ok("POST", f"/api/friends/{invited['id']}/accept")
    copy = f"friend-{invited['id']}-bob.vcf"
    assert carol.get(copy)[0] == 200
    assert carol.delete(copy) in (200, 204)
    assert bob.put("bob-me.vcf", me_card.replace("Builder", "Rebuilt"))[0] == 204
    assert carol.get(copy)[0] == 404
    assert not (trio.book_dir("carol") / copy).exists()
    cli(trio, "friends", "copy", invited["id"], "--user", "carol")
    status, _, text = carol.get(copy)
    assert status == 200 and "Rebuilt" in text
