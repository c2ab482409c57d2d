"""Per-device passwords through the real server: CardDAV and the JSON API.

Each device password works only for what it was made for (protocol, book,
read-only); the owner's password keeps working; a revoke stops the device at
its very next request; the list shows last use and client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import ServerProcess
from tests.davclient import card
from tests.grants_helpers import USERS, api, cli, dav, new_device, trio_server


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    yield from trio_server(tmp_path_factory, module_store_config)


CARD = card("dev-1", "Ada Lovelace", "EMAIL:ada@example.org", "TEL:+44 20 1234 5678")
MKCOL = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:'
         'carddav"><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/>'
         '</D:resourcetype></D:prop></D:set></D:mkcol>')
PROPPATCH = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
             '<D:displayname>Renamed</D:displayname></D:prop></D:set></D:propertyupdate>')


def test_read_only_device_reads_but_every_write_method_is_refused(trio: ServerProcess
                                                                  ) -> None:
    owner = dav(trio, "alice")
    assert owner.put("dev-1.vcf", CARD)[0] in (201, 204)
    device = new_device(trio, "alice", "Old phone", "--read-only")
    phone = dav(trio, "alice", device["password"], agent="DAVx5/4.4.3-ose (Android 14)")
    assert phone.request("PROPFIND", "/alice/contacts/", headers={"Depth": "1"})[0] == 207
    status, _, text = phone.get("dev-1.vcf")
    assert status == 200 and "ada@example.org" in text
    attempts = [
        ("PUT", "/alice/contacts/dev-2.vcf", card("dev-2", "Bo Peep"),
         {"Content-Type": "text/vcard"}),
        ("PUT", "/alice/contacts/dev-1.vcf", CARD.replace("Ada", "Eve"),
         {"Content-Type": "text/vcard"}),
        ("DELETE", "/alice/contacts/dev-1.vcf", None, {}),
        ("MKCOL", "/alice/newbook/", MKCOL, {"Content-Type": "application/xml"}),
        ("PROPPATCH", "/alice/contacts/", PROPPATCH, {"Content-Type": "application/xml"}),
        ("MOVE", "/alice/contacts/dev-1.vcf", None,
         {"Destination": f"{trio.url}/alice/contacts/moved.vcf"}),
        ("COPY", "/alice/contacts/dev-1.vcf", None,
         {"Destination": f"{trio.url}/alice/contacts/copy.vcf"}),
        ("POST", "/alice/contacts/", "x", {"Content-Type": "text/plain"}),
    ]
    for method, path, body, headers in attempts:
        status, _, text = phone.request(method, path, body, headers=headers)
        assert status == 403, (method, status, text)
        assert "read-only" in text and method in text, text
    # nothing changed
    status, _, text = owner.get("dev-1.vcf")
    assert status == 200 and "Ada Lovelace" in text
    assert owner.get("dev-2.vcf")[0] == 404
    assert owner.request("PROPFIND", "/alice/newbook/", headers={"Depth": "0"})[0] == 404
    # the same password on the API: reads yes, writes no
    device_api = api(trio, "alice", device["password"])
    assert device_api.call("GET", "/api/books/contacts/contacts/dev-1")[0] == 200
    for method, path, body in [
            ("POST", "/api/books/contacts/contacts", {"name": "New One"}),
            ("PUT", "/api/books/contacts/contacts/dev-1", {"name": "Changed"}),
            ("PATCH", "/api/books/contacts/contacts/dev-1", {"title": "Countess"}),
            ("DELETE", "/api/books/contacts/contacts/dev-1", None),
            ("POST", "/api/books/contacts/categories", {"name": "Work"}),
            ("POST", "/api/books/contacts/import", "BEGIN:VCARD\r\nEND:VCARD\r\n")]:
        status, _, body_got = device_api.call(method, path, body)
        assert status == 403, (method, path, status, body_got)
        assert "read-only" in body_got["detail"]
    # the owner's main password keeps working, for reads and writes
    assert owner.put("dev-3.vcf", card("dev-3", "Cy Twombly"))[0] in (201, 204)
    listed = json.loads(cli(trio, "devices", "list", "--user", "alice", "--json").stdout)
    mine = next(d for d in listed if d["id"] == device["id"])
    assert mine["client"] == "davx5" and mine["last_used"]
    assert "hash" not in mine


@pytest.mark.slow  # several bcrypt checks (first logins) and CLI runs
def test_revoked_device_stops_at_the_next_request(trio: ServerProcess) -> None:
    device = new_device(trio, "bob", "Tablet")
    tablet = dav(trio, "bob", device["password"])
    tablet_api = api(trio, "bob", device["password"])
    for _ in range(3):  # logged in and remembered
        assert tablet.request("PROPFIND", "/bob/contacts/", headers={"Depth": "1"})[0] == 207
        assert tablet_api.call("GET", "/api/")[0] == 200
    assert tablet.put("t.vcf", card("t-1", "Tab Let"))[0] in (201, 204)  # read-write device
    out = cli(trio, "devices", "revoke", device["id"], "--user", "bob")
    assert "Revoked" in out.stderr
    assert tablet.request("PROPFIND", "/bob/contacts/", headers={"Depth": "1"})[0] == 401
    assert tablet_api.call("GET", "/api/")[0] == 401
    # bob's password is untouched
    assert dav(trio, "bob").request("PROPFIND", "/bob/contacts/",
                                    headers={"Depth": "1"})[0] == 207
    # revoking again says what to do, no traceback
    again = cli(trio, "devices", "revoke", device["id"], "--user", "bob", check=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "devices list" in again.stderr


@pytest.mark.slow  # several bcrypt checks (first logins) and CLI runs
def test_device_password_is_for_its_user_protocol_and_book_only(trio: ServerProcess) -> None:
    owner = dav(trio, "carol")
    status, _, _ = owner.request("MKCOL", "/carol/work/", MKCOL,
                                 headers={"Content-Type": "application/xml"})
    assert status == 201
    limited = new_device(trio, "carol", "Work phone", "--book", "work", "--carddav")
    phone = dav(trio, "carol", limited["password"])
    assert phone.put("w.vcf", card("w-1", "Wo Rk"), book="/carol/work/")[0] in (201, 204)
    status, _, text = phone.request("PROPFIND", "/carol/contacts/", headers={"Depth": "1"})
    assert status == 403 and "only the address book 'work'" in text
    assert phone.put("x.vcf", card("x-1", "Ex Tra"))[0] == 403
    # nor through an address with dot segments that reaches another book
    assert owner.put("secret.vcf", card("s-1", "Se Cret"))[0] == 201
    status, _, text = phone.request("GET", "/carol/work/../contacts/secret.vcf")
    assert status in (400, 403) and "Se Cret" not in text
    # the home lists only the book it may use
    status, _, text = phone.request("PROPFIND", "/carol/", headers={"Depth": "1"})
    assert status == 207 and "/carol/work/" in text and "/carol/contacts/" not in text
    # CardDAV only: the API refuses it with the reason
    status, _, body = api(trio, "carol", limited["password"]).call("GET", "/api/")
    assert status == 403 and "carddav only" in body["detail"]
    # another user's name with this password is no login at all
    assert dav(trio, "alice", limited["password"]).request(
        "PROPFIND", "/alice/", headers={"Depth": "0"})[0] == 401
    # a wrong secret of the right shape is a wrong password
    wrong = limited["password"][:-4] + "aaaa"
    assert dav(trio, "carol", wrong).request("PROPFIND", "/carol/",
                                             headers={"Depth": "0"})[0] == 401
    # an API-only device cannot use CardDAV
    api_only = new_device(trio, "carol", "Script", "--api", "--read-only")
    status, _, text = dav(trio, "carol", api_only["password"]).request(
        "PROPFIND", "/carol/work/", headers={"Depth": "1"})
    assert status == 403 and "api only" in text
    status, _, doc = api(trio, "carol", api_only["password"]).call("GET", "/api/")
    assert status == 200 and doc["user"] == "carol"
    assert sorted(b["name"] for b in doc["books"]) == ["contacts", "work"]
    # a book-limited API device sees only its book's name, and no other book
    work_api = new_device(trio, "carol", "Work script", "--api", "--book", "work")
    work = api(trio, "carol", work_api["password"])
    assert [b["name"] for b in work.ok("GET", "/api/")["books"]] == ["work"]
    status, _, body = work.call("GET", "/api/books/contacts/contacts")
    assert status == 403 and "only the address book 'work'" in body["detail"]
    assert work.call("GET", "/api/books/work/contacts")[0] == 200
    # a book whose name is the allowed one %-encoded ("%77ork"): decoded only once
    assert owner.request("MKCOL", "/carol/%2577ork/", MKCOL,
                         headers={"Content-Type": "application/xml"})[0] == 201
    assert owner.put("y.vcf", card("y-1", "Wy Zed"), book="/carol/%2577ork/")[0] == 201
    assert phone.request("GET", "/carol/%2577ork/y.vcf")[0] == 403
    assert phone.put("z.vcf", card("z-1", "Zed"), book="/carol/%2577ork/")[0] == 403
    # nor by moving a card of its book into another (the Destination is another book)
    status, _, text = phone.request("MOVE", "/carol/work/w.vcf", headers={
        "Destination": f"{trio.url}/carol/contacts/moved.vcf"})
    assert status == 403 and "only the address book 'work'" in text
    assert owner.get("moved.vcf")[0] == 404 and phone.get("w.vcf", book="/carol/work/")[0] == 200
    # and the home lists its book only, whatever base prefix the client asks hrefs under
    status, _, text = phone.request("PROPFIND", "/carol/", headers={"Depth": "1",
                                                                   "X-Script-Name": "/x"})
    assert status == 207 and "/x/carol/work/" in text
    assert "/x/carol/contacts/" not in text and "ork/" not in text.replace("/x/carol/work/", "")


@pytest.mark.parametrize("args", [["devices", "add", "X", "--user", "nobody"],
                                  ["devices", "add", "   ", "--user", "alice"],
                                  ["tokens", "add", "T", "--user", "alice",
                                   "--properties", "email,shoesize"],
                                  ["grants", "revoke", "alice", "zzzzzzzz"]])
def test_cli_mistakes_are_one_line(trio: ServerProcess, args: list[str]) -> None:
    out = cli(trio, *args, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Error:"), out.stderr
    assert USERS  # the fixture's users exist
