"""The web page's session token, the Apple profile, admins, and grants in backups."""

from __future__ import annotations

import plistlib
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKS_UP_THE_FOLDER, ServerProcess
from tests.davclient import card
from tests.grants_helpers import BearerApi, api, cli, dav, new_device, three_user_server


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory,
                 module_store_config: str) -> Iterator[ServerProcess]:
    server = three_user_server(tmp_path_factory.mktemp("admins"),
                               "[auth]\nadmins = carol\n", module_store_config)
    try:
        yield server
    finally:
        server.stop()


def test_session_token_replaces_the_password_and_ends(admin_server: ServerProcess) -> None:
    made = api(admin_server, "alice").ok("POST", "/api/session", status=201)
    assert made["secret"].startswith("cfs-") and made["expires"]
    session = BearerApi(admin_server, made["secret"])
    assert session.ok("GET", "/api/")["user"] == "alice"
    session.ok("POST", "/api/books/contacts/contacts", {"name": "Web Made", "uid": "web-1"},
               status=201)
    device = session.ok("POST", "/api/devices", {"name": "From the page"}, status=201)
    assert device["secret"].startswith("cfd-")
    # a session is for the API only
    status, _, text = dav(admin_server, "alice", made["secret"]).request(
        "PROPFIND", "/alice/", headers={"Depth": "0"})
    assert status == 403
    session.ok("DELETE", "/api/session", status=204)
    assert session.call("GET", "/api/")[0] == 401
    listed = cli(admin_server, "grants", "list").stdout
    assert "From the page" in listed and "web page" not in listed


def test_apple_profile_carries_a_fresh_carddav_device_password(admin_server: ServerProcess
                                                               ) -> None:
    status, headers, body = api(admin_server, "bob").call(
        "POST", "/api/devices/profile", {"name": "iPhone", "read_only": True})
    assert status == 201 and headers["content-type"].startswith(
        "application/x-apple-aspen-config")
    profile = plistlib.loads(body)
    account = profile["PayloadContent"][0]
    assert account["PayloadType"] == "com.apple.carddav.account"
    assert account["CardDAVUsername"] == "bob" and account["CardDAVPrincipalURL"] == "/bob/"
    assert account["CardDAVPort"] == admin_server.port and not account["CardDAVUseSSL"]
    phone = dav(admin_server, "bob", account["CardDAVPassword"], agent="iOS/17.4 (21E219)")
    assert phone.request("PROPFIND", "/bob/contacts/", headers={"Depth": "1"})[0] == 207
    assert phone.request("DELETE", "/bob/contacts/x.vcf")[0] == 403  # read-only
    status, _, _ = api(admin_server, "bob", account["CardDAVPassword"]).call("GET", "/api/")
    assert status == 403  # CardDAV only
    devices = api(admin_server, "bob").ok("GET", "/api/devices")["items"]
    assert [(d["name"], d["client"]) for d in devices] == [("iPhone", "ios")]


def test_admins_list_and_revoke_every_grant(admin_server: ServerProcess) -> None:
    device = new_device(admin_server, "alice", "Alice's laptop")
    laptop = dav(admin_server, "alice", device["password"])
    assert laptop.request("PROPFIND", "/alice/", headers={"Depth": "0"})[0] == 207
    bob, carol = api(admin_server, "bob"), api(admin_server, "carol")
    assert all(g["user"] == "bob" for g in bob.ok("GET", "/api/grants")["items"])
    assert bob.call("DELETE", f"/api/grants/alice/{device['id']}")[0] == 404
    everyone = carol.ok("GET", "/api/grants")["items"]
    assert any(g["id"] == device["id"] and g["user"] == "alice" for g in everyone)
    assert all("hash" not in g for g in everyone)
    carol.ok("DELETE", f"/api/grants/alice/{device['id']}", status=204)
    assert laptop.request("PROPFIND", "/alice/", headers={"Depth": "0"})[0] == 401


@pytest.mark.files_only(BACKS_UP_THE_FOLDER)
def test_backup_holds_the_grants_with_hashes_only(admin_server: ServerProcess,
                                                  tmp_path: Path) -> None:
    device = new_device(admin_server, "carol", "Backup phone")
    archive = tmp_path / "b.tar.gz"
    cli(admin_server, "backup", str(archive))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert "grants/carol.json" in names
        data = b"".join(tar.extractfile(n).read() for n in names  # type: ignore[union-attr]
                        if n.startswith("grants/"))
    secret = device["password"].rsplit("-", 1)[1]
    assert secret.encode() not in data and b"$2b$" in data


def test_the_page_reads_the_scopes_and_the_me_cards_api_id(admin_server: ServerProcess
                                                           ) -> None:
    """What the web page's sharing views need: the scopes for its boxes, the me card's id."""
    alice = api(admin_server, "alice")
    scopes = alice.ok("GET", "/api/scopes")
    by_name = {s["name"]: s["properties"] for s in scopes["items"]}
    assert by_name["email"] == ["EMAIL"] and by_name["phone"] == ["TEL"]
    assert by_name["name"] == ["FN", "N"] and scopes["friends_always"] == ["name", "photo"]
    # like every grants address: not with a device password
    device = new_device(admin_server, "alice", "Scopes phone")
    assert api(admin_server, "alice", device["password"]).call("GET", "/api/scopes")[0] == 403
    # a UID that is not URL-safe: the me card says the id the contact has in the API
    uid = "urn:uuid:5e1f-me/alice"
    assert dav(admin_server, "alice").put("alice-me-id.vcf", card(uid, "Alice Myself"))[0] \
        in (201, 204)
    assert alice.ok("GET", "/api/me") is None
    listed = alice.ok("GET", "/api/books/contacts/contacts?q=Myself")["items"]
    me = alice.ok("PUT", "/api/me", {"id": listed[0]["id"], "share": ["email"]})
    assert me["uid"] == uid and me["id"] == listed[0]["id"] and me["id"].startswith("~")
    assert alice.ok("GET", "/api/me")["id"] == me["id"]
    assert alice.ok("GET", f"/api/books/contacts/contacts/{me['id']}")["name"] == "Alice Myself"
