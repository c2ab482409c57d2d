"""API tokens limited to some properties: nothing else shows, from any address.

Alice's token for an app that may read names and emails, never phones, notes,
addresses, categories or photos. Every route of the API is tried with it;
only the reading ones answer, and no answer (JSON, jCard, vCard, search,
counts, photo, errors) carries a hidden value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from cardfile.plugin.api.routes import ROUTES
from tests.conftest import ServerProcess
from tests.davclient import card
from tests.grants_helpers import BearerApi, api, cli, dav, new_token, trio_server

PNG = base64.b64encode(base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Erk"
    "Jggg==")).decode()
SECRET_CARD = card("tok-1", "Grace Hopper", "EMAIL:grace@navy.example",
                   "TEL;TYPE=CELL:+1 202 555 0147", "NOTE:hidden-note-words",
                   "ADR:;;7 Secret Street;Arlington;;22201;USA", "CATEGORIES:Hidden-Category",
                   "item1.TEL:+1 303 555 0199", "item1.X-ABLabel:hidden-label",
                   f"PHOTO;ENCODING=b;TYPE=PNG:{PNG}", "ORG:Hidden Org")
HIDDEN = ("555", "0147", "0199", "hidden-note", "Secret Street", "Hidden-Category",
          "hidden-label", "Hidden Org", PNG[:20], "22201")


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    yield from trio_server(tmp_path_factory, module_store_config)


def assert_nothing_hidden(answer: object) -> None:
    text = answer if isinstance(answer, str) else (
        answer.decode("utf-8", "replace") if isinstance(answer, bytes) else json.dumps(answer))
    for hidden in HIDDEN:
        assert hidden not in text, (hidden, text[:500])


def test_a_property_limited_token_never_shows_a_hidden_property(trio: ServerProcess) -> None:
    owner = dav(trio, "alice")
    assert owner.put("tok-1.vcf", SECRET_CARD)[0] in (201, 204)
    token = new_token(trio, "alice", "Mail app", "--properties", "email")
    assert token["properties"] == ["email", "name"] and token["read_only"]
    app = BearerApi(trio, token["token"])
    listing = app.ok("GET", "/api/books/contacts/contacts")
    assert listing["total"] == 1 and listing["items"][0]["emails"][0]["value"] == \
        "grace@navy.example"
    assert_nothing_hidden(listing)
    # search: a hidden value finds nothing; a visible one finds the card
    for q in ("202 555 0147", "2025550147", "hidden-note-words", "Secret", "Arlington",
              "Hidden Org", "hidden-label"):
        found = app.ok("GET", f"/api/books/contacts/contacts?q={q.replace(' ', '+')}")
        assert found["total"] == 0 and found["items"] == [], q
    assert app.ok("GET", "/api/books/contacts/contacts?q=navy.example")["total"] == 1
    assert app.ok("GET", "/api/books/contacts/contacts?q=grace")["total"] == 1
    for accept in ("application/json", "application/vcard+json", "text/vcard"):
        status, headers, body = app.call("GET", "/api/books/contacts/contacts/tok-1",
                                         headers={"Accept": accept})
        assert status == 200 and "grace@navy.example" in str(body)
        assert_nothing_hidden(body)
    status, _, body = app.call("GET", "/api/books/contacts/contacts/tok-1/photo")
    assert status == 404
    assert_nothing_hidden(body)
    status, _, body = app.call("GET", "/api/books/contacts/contacts?category=Hidden-Category")
    assert status == 400
    # an edit of a hidden property changes nothing the token sees, not even the ETag
    etag = app.call("GET", "/api/books/contacts/contacts/tok-1")[1]["etag"]
    changed = SECRET_CARD.replace("hidden-note-words", "other-hidden-note")
    assert owner.put("tok-1.vcf", changed)[0] in (201, 204)
    assert app.call("GET", "/api/books/contacts/contacts/tok-1")[1]["etag"] == etag
    assert app.call("GET", "/api/books/contacts/contacts/tok-1",
                    headers={"If-None-Match": etag})[0] == 304


def test_every_other_route_refuses_the_limited_token(trio: ServerProcess) -> None:
    owner = dav(trio, "alice")
    owner.put("tok-1.vcf", SECRET_CARD)
    token = new_token(trio, "alice", "Mail app 2", "--properties", "name,email")
    app = BearerApi(trio, token["token"])
    reachable = {("/api", "GET"), ("/api/books/{book}/contacts", "GET"),
                 ("/api/books/{book}/contacts/{id}", "GET"),
                 ("/api/books/{book}/contacts/{id}/photo", "GET"),
                 ("/api/openapi.json", "GET")}
    tried = 0
    for route in ROUTES:
        path = route.template.replace("{book}", "contacts").replace("{id}", "tok-1").replace(
            "{user}", "alice")
        if "categories/" in route.template:
            path = path.replace("categories/tok-1", "categories/Hidden-Category")
        for method in route.methods:
            status, _, body = app.call(method, path, {} if method in ("POST", "PUT", "PATCH")
                                       else None)
            tried += 1
            assert_nothing_hidden(body)
            if (route.template, method) in reachable:
                assert status in (200, 404), (method, path, status, body)
            else:
                assert status == 403, (method, path, status, body)
    assert tried > 30
    # the owner's card is untouched, and the token cannot use CardDAV
    assert "hidden-note" in owner.get("tok-1.vcf")[2]
    status, _, text = dav(trio, "alice", token["token"]).request(
        "PROPFIND", "/alice/contacts/", headers={"Depth": "1"})
    assert status == 403 and "JSON API" in text


@pytest.mark.slow  # several bcrypt checks (first logins) and CLI runs
def test_tokens_read_or_write_and_revoke(trio: ServerProcess) -> None:
    reader = BearerApi(trio, new_token(trio, "bob", "Reader")["token"])
    assert reader.ok("GET", "/api/")["user"] == "bob"
    status, _, body = reader.call("POST", "/api/books/contacts/contacts", {"name": "X Y"})
    assert status == 403 and "read-only" in body["detail"]
    writer_token = new_token(trio, "bob", "Writer", "--scope", "write")
    writer = BearerApi(trio, writer_token["token"])
    writer.ok("POST", "/api/books/contacts/contacts", {"name": "Wri Ter", "uid": "w-1"},
              status=201)
    # no token may make more tokens or devices
    status, _, body = writer.call("POST", "/api/tokens", {"name": "more"})
    assert status == 403
    # a limited token that could write is refused when made
    out = cli(trio, "tokens", "add", "Bad", "--user", "bob", "--scope", "write",
              "--properties", "email", check=False)
    assert out.returncode == 1 and "can only read" in out.stderr
    # the API makes and revokes them too (with the password)
    bob = api(trio, "bob")
    made = bob.ok("POST", "/api/tokens", {"name": "Via API", "properties": ["email"]},
                  status=201)
    assert made["secret"].startswith("cft-") and "hash" not in made
    via = BearerApi(trio, made["secret"])
    assert via.ok("GET", "/api/books/contacts/contacts")["total"] >= 1
    bob.ok("DELETE", f"/api/tokens/{made['id']}", status=204)
    assert via.call("GET", "/api/books/contacts/contacts")[0] == 401
    cli(trio, "tokens", "revoke", writer_token["id"], "--user", "bob")
    assert writer.call("GET", "/api/")[0] == 401
    assert BearerApi(trio, "cft-aaaaaaaa-" + "a" * 26).call("GET", "/api/")[0] == 401
