"""A published-category book shows a book of its own user, never another user's.

The marker that makes a folder a published book is a plain file naming its
source. Bob crafts one in his own book pointing at Alice's: whatever Bob
asks over CardDAV or the JSON API, nothing of Alice's comes back.
"""

from __future__ import annotations

import base64
import http.client
import json

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, run_cli
from tests.davclient import DavClient, card

BOB_PASSWORD = "bob's password"
SECRET = "Alice Secretkeeper"
MKCOL = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
         "<D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
         "</D:prop></D:set></D:mkcol>")
SYNC = ('<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:sync-token/><D:sync-level>1'
        "</D:sync-level><D:prop><D:getetag/><C:address-data/></D:prop></D:sync-collection>")
QUERY = ('<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
         'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
         "</D:prop></C:addressbook-query>")
MULTIGET = ('<?xml version="1.0"?><C:addressbook-multiget xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:address-data/></D:prop>'
            "<D:href>/bob/stolen/secret.vcf</D:href></C:addressbook-multiget>")


def _api(server: ServerProcess, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    auth = base64.b64encode(f"bob:{BOB_PASSWORD}".encode()).decode()
    try:
        conn.request("GET", path, headers={"Authorization": f"Basic {auth}"})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.mark.parametrize("source", ["/alice/contacts/", "/bob/../alice/contacts/", "/alice/"])
def test_a_marker_naming_another_users_book_serves_nothing_of_it(
        server: ServerProcess, dav: DavClient, source: str) -> None:
    assert dav.put("secret.vcf", card("alice-secret", SECRET, "CATEGORIES:Family",
                                      "EMAIL:alice.secret@example.com"))[0] == 201
    bob = server.client("bob", BOB_PASSWORD)
    assert bob.request("PROPFIND", "/bob/", headers={"Depth": "1"})[0] == 207
    assert bob.request("MKCOL", "/bob/stolen/", MKCOL,
                       {"Content-Type": "application/xml"})[0] == 201
    folder = server.data_dir / "collection-root" / "bob" / "stolen"
    (folder / ".cardfile-published.json").write_text(
        json.dumps({"source": source, "category": "Family"}))
    answers = [bob.request(method, "/bob/stolen/" + name, body, {
        "Depth": "1", "Content-Type": "application/xml"})[::2] for method, name, body in [
            ("PROPFIND", "", None), ("GET", "secret.vcf", None), ("REPORT", "", SYNC),
            ("REPORT", "", QUERY), ("REPORT", "", MULTIGET)]]
    assert answers[1][0] == 404
    answers += [_api(server, f"/api/books/stolen/{path}") for path in (
        "contacts", "categories", "export", "contacts/alice-secret")]
    assert answers[-1][0] == 404
    for status, body in answers:  # (ids are echoed in "not found" answers: look for data)
        assert "Secretkeeper" not in body and "alice.secret@" not in body, (status, body)
    # Bob's own attempt to write through it lands nowhere in Alice's book.
    bob.put("mine.vcf", card("bob-card", "Bob Own"), book="/bob/stolen/")
    assert not (server.book_dir() / "mine.vcf").exists()
    assert [p.name for p in server.book_dir().glob("*.vcf")] == ["secret.vcf"]


def test_publishing_your_own_category_still_works_and_names_are_checked(
        server: ServerProcess, dav: DavClient, cli_store: str) -> None:
    assert dav.put("fam.vcf", card("fam-1", "Fam Member", "CATEGORIES:Family"))[0] == 201
    published = run_cli("categories", "publish", "Family", "--user", USER,
                        data_dir=server.data_dir).stdout.strip()
    assert published == "/alice/contacts-family/"
    alice = server.client(USER, PASSWORD)
    status, _, body = alice.request("GET", "/alice/contacts-family/fam.vcf")
    assert status == 200 and "Fam Member" in body
    escape = run_cli("categories", "publish", "Family", "--as", "../bob/taken", "--user", USER,
                     data_dir=server.data_dir, check=False)
    assert escape.returncode != 0 and "Traceback" not in escape.stderr
    assert not (server.data_dir / "collection-root" / "bob" / "taken").exists()
