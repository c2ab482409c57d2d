"""The JSON API over real HTTP against a real ``cardfile serve``.

Everything a client of ``/api/`` relies on: the service document, the
contacts collection (paging, sorting, search), single contacts in three
representations with ETags, categories and their members, export and import,
errors as problem+json, and that API and CardDAV see each other's changes.
"""

from __future__ import annotations

import base64
import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import DavClient, card
from tests.test_real_clients import SOURCES

BOOK = "/api/books/contacts"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


class Api:
    """A small JSON client: every call returns (status, headers, decoded body)."""

    def __init__(self, server: ServerProcess, user: str = USER,
                 password: str | None = PASSWORD) -> None:
        self.port = server.port
        self.auth = ("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
                     if password is not None else None)

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        hdrs = {"Authorization": self.auth} if self.auth else {}
        data: bytes | None = None
        if isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        got = {k.lower(): v for k, v in resp.getheaders()}
        kind = got.get("content-type", "")
        decoded: Any = raw
        if "json" in kind and raw:
            decoded = json.loads(raw)
        elif kind.startswith("text/"):
            decoded = raw.decode()
        return resp.status, got, decoded

    def ok(self, method: str, path: str, body: Any = None,
           headers: dict[str, str] | None = None, status: int = 200) -> Any:
        got, hdrs, data = self.call(method, path, body, headers)
        assert got == status, (got, data)
        return data

    def all_ids(self, query: str) -> list[str]:
        """Every id of a listing, following next_cursor to the end."""
        found, url = [], f"{BOOK}/contacts?{query}"
        while url:
            page = self.ok("GET", url)
            found += [item["id"] for item in page["items"]]
            url = page["next"]
        return found


@pytest.fixture
def api(server: ServerProcess, dav: DavClient) -> Api:
    return Api(server)


def assert_problem(response: tuple[int, dict[str, str], Any], status: int) -> dict[str, Any]:
    got, headers, body = response
    assert got == status, body
    assert headers["content-type"].startswith("application/problem+json")
    assert body["status"] == status and body["title"] and body["detail"].endswith(".")
    return dict(body)


# -- service document, auth, rights ------------------------------------------------
def test_service_document_lists_books_and_openapi_is_public(api: Api, server: ServerProcess
                                                            ) -> None:
    doc = api.ok("GET", "/api/")
    assert doc["user"] == USER
    assert [b["name"] for b in doc["books"]] == ["contacts"]
    assert doc["books"][0]["contacts"] == f"{BOOK}/contacts"
    assert api.ok("GET", "/api")["user"] == USER
    book = api.ok("GET", BOOK)
    assert book["contact_count"] == 0 and book["categories"] == f"{BOOK}/categories"
    spec = Api(server, password=None).ok("GET", "/api/openapi.json")
    assert spec["openapi"].startswith("3.1")
    from cardfile.plugin.api.routes import ROUTES
    assert sorted(spec["paths"]) == sorted(r.template for r in ROUTES)
    for route in ROUTES:
        documented = {m.upper() for m in spec["paths"][route.template] if m != "parameters"}
        assert documented == set(route.methods), route.template


def test_login_required_and_wrong_password_refused(server: ServerProcess) -> None:
    response = Api(server, password=None).call("GET", f"{BOOK}/contacts")
    assert_problem(response, 401)
    assert response[1]["www-authenticate"].startswith('Basic realm="Cardfile"')
    assert_problem(Api(server, password="wrong").call("GET", "/api/"), 401)


def test_a_first_api_login_creates_the_predefined_book(server: ServerProcess) -> None:
    bob = Api(server, "bob", "bob's password")
    assert [b["name"] for b in bob.ok("GET", "/api/")["books"]] == ["contacts"]


def test_another_users_book_and_contacts_are_not_found(api: Api, server: ServerProcess
                                                       ) -> None:
    bob = server.client("bob", "bob's password")
    status, _, _ = bob.request("MKCOL", "/bob/private/", (
        '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        "<D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
        "</D:prop></D:set></D:mkcol>"), {"Content-Type": "application/xml"})
    assert status == 201
    assert bob.put("b.vcf", card("bob-secret", "Bob Secret"), book="/bob/private/")[0] == 201
    assert "private" in [b["name"] for b in Api(server, "bob", "bob's password")
                         .ok("GET", "/api/")["books"]]
    assert_problem(api.call("GET", "/api/books/private/contacts"), 404)
    assert_problem(api.call("GET", "/api/books/private/contacts/bob-secret"), 404)
    assert_problem(api.call("GET", f"{BOOK}/contacts/bob-secret"), 404)
    assert_problem(api.call("GET", "/api/books/..%2Fbob/contacts"), 404)


# -- one contact ---------------------------------------------------------------------
NEW = {"name": "Ada Lovelace", "given": "Ada", "family": "Lovelace",
       "emails": [{"value": "ada@example.org", "type": ["work"], "pref": True}],
       "phones": [{"value": "+44 20 7946 0018", "type": ["cell"]}],
       "addresses": [{"street": "12 St James's Square", "city": "London",
                      "postal_code": "SW1Y 4JH", "country": "UK", "type": ["home"]}],
       "organization": "Analytical Engines", "title": "Programmer",
       "birthday": "1815-12-10", "notes": "Wrote the first program, 1843\nwith notes",
       "urls": [{"value": "https://example.org/ada,1"}], "categories": ["Science"]}


def test_contact_lifecycle_in_three_representations(api: Api) -> None:
    status, headers, created = api.call("POST", f"{BOOK}/contacts", NEW)
    assert status == 201, created
    url = headers["location"]
    assert url == created["url"] == f"{BOOK}/contacts/{created['id']}"
    assert headers["etag"] == created["etag"]
    for key, value in NEW.items():
        if key in ("emails", "phones", "urls", "addresses"):
            assert [{k: v for k, v in e.items() if k in value[i]}
                    for i, e in enumerate(created[key])] == value
        else:
            assert created[key] == value, key
    assert created["photo"] is None and created["updated"].endswith("Z")

    _, vheaders, vcard = api.call("GET", url, headers={"Accept": "text/vcard"})
    assert vheaders["content-type"].startswith("text/vcard")
    assert "NOTE:Wrote the first program\\, 1843\\nwith notes" in vcard.replace("\r\n ", "")
    assert vheaders["etag"] == created["etag"]
    _, jheaders, jcard = api.call("GET", url, headers={"Accept": "application/vcard+json"})
    assert jheaders["content-type"].startswith("application/vcard+json")
    assert jcard[0] == "vcard" and ["fn", {}, "text", "Ada Lovelace"] in jcard[1]
    assert api.call("GET", url, headers={"If-None-Match": created["etag"]})[0] == 304
    assert api.call("HEAD", url)[0] == 200
    assert api.ok("GET", url + "?fields=name,emails") == {
        "id": created["id"], "name": "Ada Lovelace", "emails": created["emails"]}

    replaced = api.ok("PUT", url, {"name": "Ada King", "emails": created["emails"]},
                      headers={"If-Match": created["etag"]})
    assert replaced["name"] == "Ada King" and replaced["phones"] == []
    assert replaced["organization"] is None and replaced["categories"] == []
    assert replaced["given"] == "" and replaced["emails"] == created["emails"]

    patched = api.ok("PATCH", url, {"title": "Countess", "notes": None,
                                    "phones": [{"value": "020 7946 0018"}]},
                     headers={"Content-Type": "application/merge-patch+json"})
    assert patched["title"] == "Countess" and patched["name"] == "Ada King"
    assert patched["phones"] == [{"value": "020 7946 0018", "type": [], "pref": False,
                                  "label": ""}]

    vbody = card(created["uid"], "Ada Byron", "EMAIL:ada@byron.example")
    as_vcard = api.ok("PUT", url, vbody, headers={"Content-Type": "text/vcard"})
    assert as_vcard["name"] == "Ada Byron" and as_vcard["title"] is None
    jbody = ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Ada J"],
                       ["uid", {}, "text", created["uid"]]]]
    assert api.ok("PUT", url, jbody,
                  headers={"Content-Type": "application/vcard+json"})["name"] == "Ada J"

    assert api.call("DELETE", url)[0] == 204
    assert_problem(api.call("GET", url), 404)
    assert_problem(api.call("DELETE", url), 404)


def test_put_creates_at_its_id_and_post_refuses_a_known_uid(api: Api) -> None:
    status, headers, body = api.call("PUT", f"{BOOK}/contacts/chosen-1", {"name": "Chosen"})
    assert status == 201 and body["uid"] == "chosen-1" and "location" in headers
    assert_problem(api.call("POST", f"{BOOK}/contacts", {"uid": "chosen-1", "name": "X"}), 409)
    assert_problem(api.call("PUT", f"{BOOK}/contacts/chosen-1", {"name": "Y"},
                            headers={"If-None-Match": "*"}), 412)
    assert_problem(api.call("PUT", f"{BOOK}/contacts/chosen-1", {"uid": "other"}), 409)


def test_stale_if_match_is_refused_with_412(api: Api) -> None:
    first = api.ok("POST", f"{BOOK}/contacts", {"name": "Grace Hopper"}, status=201)
    second = api.ok("PATCH", first["url"], {"title": "Rear Admiral"},
                    headers={"If-Match": first["etag"]})
    assert second["etag"] != first["etag"]
    for method, body in (("PUT", {"name": "Stale"}), ("PATCH", {"name": "Stale"}),
                         ("DELETE", None)):
        problem = assert_problem(api.call(method, first["url"], body,
                                          headers={"If-Match": first["etag"]}), 412)
        assert "changed since you last read it" in problem["detail"]
    assert api.ok("GET", first["url"])["name"] == "Grace Hopper"
    assert api.call("DELETE", first["url"], headers={"If-Match": second["etag"]})[0] == 204


def test_fields_the_json_does_not_model_are_kept(api: Api, dav: DavClient) -> None:
    photo = base64.b64encode(PNG).decode()
    text = card("keep-1", "Kept Person", "NICKNAME:Kee", "item1.EMAIL;TYPE=INTERNET:k@a.example",
                "item1.X-ABLabel:_$!<Other>!$_", "item2.EMAIL;TYPE=INTERNET:k@b.example",
                "item2.X-ABLabel:school", "X-CUSTOM;X-PARAM=1:keep me",
                f"PHOTO;ENCODING=b;TYPE=PNG:{photo}", "CATEGORIES:A,B")
    assert dav.put("keep-1.vcf", text)[0] == 201
    before = dav.get("keep-1.vcf")[2]
    url = f"{BOOK}/contacts/keep-1"
    contact = api.ok("GET", url)
    assert contact["photo"] == url + "/photo"
    assert [e["value"] for e in contact["emails"]] == ["k@a.example", "k@b.example"]
    again = api.ok("PUT", url, contact)
    assert again["etag"] == contact["etag"] and dav.get("keep-1.vcf")[2] == before

    changed = api.ok("PATCH", url, {"emails": [contact["emails"][1],
                                               {"value": "new@c.example"}],
                                    "categories": ["B", "C"]})
    assert [e["value"] for e in changed["emails"]] == ["k@b.example", "new@c.example"]
    # (the model stores vobject's serialisation, which upper-cases property names)
    after = dav.get("keep-1.vcf")[2].replace("\r\n ", "").lower()
    for kept in ("NICKNAME:Kee", "X-CUSTOM;X-PARAM=1:keep me", "item2.X-ABLabel:school",
                 "PHOTO;"):
        assert kept.lower() in after, kept
    assert "k@a.example" not in after and "_$!<other>!$_" not in after
    status, headers, data = api.call("GET", url + "/photo")
    assert status == 200 and headers["content-type"] == "image/png" and data == PNG
    assert api.ok("PATCH", url, {"photo": None})["photo"] is None
    assert "PHOTO" not in dav.get("keep-1.vcf")[2]
    assert_problem(api.call("GET", url + "/photo"), 404)


def test_unsafe_uids_get_base64url_ids(api: Api, dav: DavClient) -> None:
    for uid in ("urn:uuid:5f1e-aa", "a/b c", "~tilde"):
        created = api.ok("POST", f"{BOOK}/contacts", {"uid": uid, "name": uid}, status=201)
        assert created["id"].startswith("~") and created["uid"] == uid
        assert api.ok("GET", created["url"])["uid"] == uid
    assert api.ok("GET", f"{BOOK}/contacts/plain-uid_1.2", status=404)
    assert_problem(api.call("GET", f"{BOOK}/contacts/~%21%21"), 404)


@pytest.mark.slow  # vdirsyncer: ~8 s
@pytest.mark.parametrize("source", SOURCES)
def test_a_real_client_fills_the_book_and_the_api_reads_every_card(
        tmp_path: Path, server: ServerProcess, dav: DavClient, source: str) -> None:
    from cardfile.plugin.api.ids import encode
    from tests.test_real_clients import read_vdir, sync_corpus_up_and_down, vdirsyncer

    synced = sync_corpus_up_and_down(tmp_path, server, source)
    api = Api(server)
    page = api.ok("GET", f"{BOOK}/contacts?limit=1000")
    assert {item["uid"] for item in page["items"]} == {c.uid for c in synced.cards}
    for corpus_card in synced.cards:
        url = f"{BOOK}/contacts/{encode(corpus_card.uid)}"
        contact = api.ok("GET", url)
        assert contact["uid"] == corpus_card.uid and contact["url"] == url
        assert api.ok("GET", url, headers={"Accept": "application/vcard+json"})[0] == "vcard"
        assert "BEGIN:VCARD" in api.ok("GET", url, headers={"Accept": "text/vcard"}).upper()
        if contact["photo"]:
            assert api.call("GET", contact["photo"])[0] in (200, 302), corpus_card.source
        # Reading and writing back the same JSON changes nothing on the card.
        assert api.ok("PUT", url, contact)["etag"] == contact["etag"], corpus_card.source

    first = synced.cards[0]
    api.ok("PATCH", f"{BOOK}/contacts/{encode(first.uid)}", {"name": "Renamed Through API"})
    vdirsyncer(synced.config, "sync", "down", server=server)
    _, props = read_vdir(synced.down)[first.uid]
    assert [p.value for p in props if p.name == "FN"] == ["Renamed Through API"]


# -- the collection: paging, sorting, search ------------------------------------------------
def test_paging_through_1000_contacts_has_no_gaps_or_repeats(api: Api, server: ServerProcess
                                                             ) -> None:
    uids, cards = set(), []
    for n in range(1000):
        uid = f"bulk-{n:04d}"
        family = ["Smith", "Jones", "Brown", "Zed"][n % 4]
        # Many equal names on purpose: the order must still be total.
        cards.append(card(uid, f"Person{n % 37} {family}", f"EMAIL:p{n}@bulk.example"))
        uids.add(uid)
    # One import through the server's store (on PostgreSQL the folder is only its cache).
    server.cli("import", "-", "--format", "vcard", "--user", USER, stdin="".join(cards))
    for query in ("limit=97", "limit=97&sort=family", "limit=333&sort=-modified",
                  "limit=1000&sort=-name", "sort=modified"):
        ids = api.all_ids(query)
        assert len(ids) == 1000 and set(ids) == uids, query
    page = api.ok("GET", f"{BOOK}/contacts?limit=10&sort=family&fields=name")
    assert page["total"] == 1000 and page["count"] == 10 and page["next_cursor"]
    assert all(set(item) == {"id", "name"} for item in page["items"])
    names = [i["name"] for i in api.ok("GET", f"{BOOK}/contacts?limit=1000")["items"]]
    assert names == sorted(names, key=str.lower)
    families = [i["family"] for i in api.ok("GET", f"{BOOK}/contacts?limit=300&sort=family"
                                            "&fields=family")["items"]]
    assert families == sorted(families)
    # A contact deleted between pages makes no other contact skip or repeat.
    first = api.ok("GET", f"{BOOK}/contacts?limit=500")
    api.ok("DELETE", f"{BOOK}/contacts/{first['items'][0]['id']}", status=204)
    rest = api.all_ids(f"limit=500&cursor={first['next_cursor']}")
    assert len({i["id"] for i in first["items"]} | set(rest)) == 1000


def test_bad_paging_parameters_are_400(api: Api) -> None:
    for query in ("limit=0", "limit=1001", "limit=x", "sort=age", "cursor=nonsense",
                  "fields=name,shoe_size", "limit=1&limit=2"):
        assert_problem(api.call("GET", f"{BOOK}/contacts?{query}"), 400)
    cursor = api.ok("GET", f"{BOOK}/contacts?limit=1")["next_cursor"]
    assert cursor is None


def test_search_by_name_email_and_phone_in_any_format(api: Api, dav: DavClient) -> None:
    dav.put("s1.vcf", card("s1", "Hedy Lamarr", "EMAIL:hedy@films.example",
                           "TEL;TYPE=CELL:+49 (30) 1234-5678"))
    dav.put("s2.vcf", card("s2", "Alan Turing", "EMAIL:alan@bletchley.example",
                           "TEL:+44 1908 640404"))
    dav.put("s3.vcf", card("s3", "Émilie du Châtelet", "EMAIL:emilie@cirey.example"))

    def found(q: str) -> set[str]:
        from urllib.parse import quote
        return {i["uid"] for i in api.ok("GET", f"{BOOK}/contacts?q={quote(q)}")["items"]}

    assert found("hedy") == {"s1"}
    assert found("lamarr hedy") == {"s1"}
    assert found("TURING") == {"s2"}
    assert found("châtelet") == {"s3"}
    assert found("bletchley.example") == {"s2"}
    assert found("@") == {"s1", "s2", "s3"}
    for phone in ("+4930 12345678", "030 1234 5678", "(030) 1234-5678", "12345678",
                  "+49-30-1234-5678"):
        assert found(phone) == {"s1"}, phone
    assert found("01908 640404") == {"s2"}
    assert found("99999999") == set()
    assert found("100%_") == set()


# -- categories -----------------------------------------------------------------------
def test_category_membership_edits_reach_carddav_sync(api: Api, dav: DavClient) -> None:
    dav.put("m1.vcf", card("m1", "Marie Curie"))
    dav.put("m2.vcf", card("m2", "Pierre Curie"))
    _, token, _ = dav.sync()
    created = api.ok("PUT", f"{BOOK}/categories/Nobel", {"color": "#ffcc00"}, status=201)
    assert created["name"] == "Nobel" and created["count"] == 0
    added = api.ok("POST", f"{BOOK}/categories/Nobel/members", {"ids": ["m1", "m2", "zz"]})
    assert added == {"added": ["m1", "m2"], "not_found": ["zz"]}
    status, token2, entries = dav.sync(token)
    assert status == 207
    assert sorted(e.href.rsplit("/", 1)[1] for e in entries) == ["m1.vcf", "m2.vcf"]
    assert "CATEGORIES:Nobel" in dav.get("m1.vcf")[2]

    removed = api.ok("DELETE", f"{BOOK}/categories/Nobel/members?id=m2")
    assert removed == {"removed": ["m2"]}
    _, token3, entries = dav.sync(token2)
    assert [e.href.rsplit("/", 1)[1] for e in entries] == ["m2.vcf"]
    assert "CATEGORIES" not in dav.get("m2.vcf")[2]

    renamed = api.ok("PUT", f"{BOOK}/categories/Nobel", {"name": "Nobel Prize"})
    assert renamed["id"].startswith("~") and renamed["color"] == "#ffcc00"
    assert "CATEGORIES:Nobel Prize" in dav.get("m1.vcf")[2]
    members = api.ok("GET", renamed["members"])
    assert [m["id"] for m in members["items"]] == ["m1"]
    assert api.ok("GET", f"{BOOK}/contacts?category=nobel%20prize")["total"] == 1
    assert api.call("DELETE", renamed["url"])[0] == 204
    assert "CATEGORIES" not in dav.get("m1.vcf")[2]
    assert api.ok("GET", f"{BOOK}/contacts/m1")["name"] == "Marie Curie"
    _, _, entries = dav.sync(token3)
    assert [e.href.rsplit("/", 1)[1] for e in entries] == ["m1.vcf"]
    assert_problem(api.call("GET", renamed["url"]), 404)


def test_carddav_changes_show_in_the_api(api: Api, dav: DavClient) -> None:
    dav.put("c1.vcf", card("c1", "Lise Meitner", "CATEGORIES:Physics,Vienna"))
    cats = api.ok("GET", f"{BOOK}/categories")
    assert {c["name"]: c["count"] for c in cats["items"]} == {"Physics": 1, "Vienna": 1}
    assert [m["id"] for m in api.ok("GET", f"{BOOK}/categories/Physics/members")["items"]] \
        == ["c1"]
    contact = api.ok("GET", f"{BOOK}/contacts/c1")
    _, headers, _ = dav.get("c1.vcf")
    assert contact["etag"] == headers["etag"]
    dav.put("c1.vcf", card("c1", "Lise Meitner", "CATEGORIES:Physics"),
            if_match=headers["etag"])
    assert api.ok("GET", f"{BOOK}/contacts/c1")["categories"] == ["Physics"]
    assert_problem(api.call("GET", f"{BOOK}/categories/Vienna"), 404)
    assert dav.delete("c1.vcf") in (200, 204)
    assert_problem(api.call("GET", f"{BOOK}/contacts/c1"), 404)


def test_category_create_conflicts_and_metadata(api: Api) -> None:
    made = api.ok("POST", f"{BOOK}/categories", {"name": "Work", "description": "Office"},
                  status=201)
    assert made["description"] == "Office" and made["count"] == 0
    assert_problem(api.call("POST", f"{BOOK}/categories", {"name": "work"}), 409)
    api.ok("PUT", f"{BOOK}/categories/Home", {}, status=201)
    assert_problem(api.call("PUT", f"{BOOK}/categories/Home", {"name": "Work"}), 409)
    kept = api.ok("PUT", f"{BOOK}/categories/Work", {"color": "blue"})
    assert kept["description"] == "Office" and kept["color"] == "blue"
    assert [c["name"] for c in api.ok("GET", f"{BOOK}/categories")["items"]] == ["Home", "Work"]
    assert_problem(api.call("POST", f"{BOOK}/categories/Nope/members", {"ids": ["x"]}), 404)
    assert api.ok("DELETE", f"{BOOK}/categories/Work/members") == {"removed": []}
    assert_problem(api.call("GET", f"{BOOK}/categories?sort=name"), 400)
    assert_problem(api.call("POST", f"{BOOK}/categories", {"name": "   "}), 422)


# -- export and import -------------------------------------------------------------------
def test_import_then_export(api: Api) -> None:
    vcf = (card("i1", "Katherine Johnson", "CATEGORIES:NASA")
           + card("i2", "Dorothy Vaughan", "CATEGORIES:NASA") + "BEGIN:VCARD\r\nnonsense\r\n")
    result = api.ok("POST", f"{BOOK}/import", vcf, headers={"Content-Type": "text/vcard"})
    assert result["added"] == 2 and result["format"].startswith("vcard")
    again = api.ok("POST", f"{BOOK}/import", vcf, headers={"Content-Type": "text/vcard"})
    assert again["added"] == 0 and again["unchanged"] == 2  # as the CLI says
    csv = "Name,E-mail 1 - Value\r\nMary Jackson,mary@nasa.example\r\n"
    assert api.ok("POST", f"{BOOK}/import", csv,
                  headers={"Content-Type": "text/csv"})["added"] == 1
    assert api.ok("GET", f"{BOOK}/contacts?q=mary@nasa")["total"] == 1

    status, headers, text = api.call("GET", f"{BOOK}/export?category=NASA")
    assert status == 200 and headers["content-type"].startswith("text/vcard")
    assert "attachment" in headers["content-disposition"]
    assert text.count("BEGIN:VCARD") == 2 and "Mary" not in text
    assert api.call("GET", f"{BOOK}/export")[2].count("BEGIN:VCARD") == 3
    cards = api.ok("GET", f"{BOOK}/export?format=jcard")
    assert len(cards) == 3 and all(c[0] == "vcard" for c in cards)
    assert "Katherine Johnson" in api.call("GET", f"{BOOK}/export?format=csv")[2]
    assert_problem(api.call("GET", f"{BOOK}/export?category=Nope"), 404)
    assert_problem(api.call("GET", f"{BOOK}/export?format=pdf"), 400)
    assert_problem(api.call("POST", f"{BOOK}/import", b"", {"Content-Type": "text/vcard"}),
                   400)


# -- errors ----------------------------------------------------------------------------------
def test_errors_are_problem_documents(api: Api) -> None:
    url = f"{BOOK}/contacts"
    assert_problem(api.call("POST", url, "{not json", {"Content-Type": "application/json"}),
                   400)
    assert_problem(api.call("POST", url, "name=x", {"Content-Type": "text/plain"}), 415)
    assert_problem(api.call("POST", url, {"name": 5}), 422)
    assert_problem(api.call("POST", url, {"nmae": "typo"}), 422)
    assert_problem(api.call("POST", url, {"birthday": "yesterday"}), 422)
    assert_problem(api.call("POST", url, {"name": "a\u0000b"}), 422)
    assert_problem(api.call("POST", url, "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n",
                            {"Content-Type": "text/vcard"}), 400)
    group = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g1\r\nFN:G\r\nKIND:group\r\nEND:VCARD\r\n")
    assert_problem(api.call("POST", url, group, {"Content-Type": "text/vcard"}), 422)
    assert_problem(api.call("GET", "/api/nowhere"), 404)
    response = api.call("DELETE", url)
    assert_problem(response, 405)
    assert "GET" in response[1]["allow"]
    status, headers, _ = api.call("OPTIONS", f"{url}/x")
    assert status == 204 and "PATCH" in headers["allow"]


def test_bodies_over_max_content_length_are_413(tmp_path: Path, store_config: str) -> None:
    srv = start_server(tmp_path, extra_config="[server]\nmax_content_length = 2000\n"
                                              "max_resource_size = 1500\n",
                       store_config=store_config)
    try:
        small = Api(srv)
        srv.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})
        assert_problem(small.call("POST", f"{BOOK}/contacts", {"notes": "x" * 3000}), 413)
        assert_problem(small.call("POST", f"{BOOK}/contacts", {"notes": "x" * 1700}), 413)
        assert small.call("POST", f"{BOOK}/contacts", {"notes": "x" * 100})[0] == 201
    finally:
        srv.stop()
