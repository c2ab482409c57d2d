"""Attack: another web site changes your contacts through your browser (CSRF).

A browser that holds the user's Basic credentials for Cardfile sends them
with a form another site submits. ``POST .../import`` used to take
``text/plain``, form-encoded and multipart bodies from any Origin, so a plain
auto-submitting HTML form planted a card, or replaced a contact by reusing its
UID. Now every POST, PUT, PATCH and DELETE of the API is refused with 403 (a
problem document) when ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``
or an ``Origin`` other than the server's own (``null`` included) is sent, and
import takes only a contacts file's media type (415 otherwise). Requests with
neither header (curl, scripts) still work. CardDAV's only form-sendable
method, POST, writes nothing.
"""

from __future__ import annotations

import http.server
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import PASSWORD, USER, ServerProcess, loopback_site
from tests.davclient import DavClient, card
from tests.test_api import BOOK, Api, assert_problem
from tests.test_web import CHROMIUM, CHROMIUM_ARGS

VICTIM = card("victim-1", "Original Person", "EMAIL:original@example.org")
FORGED = (card("victim-1", "Replaced Person", "EMAIL:attacker@evil.example")
          + card("planted-1", "Planted Person", "EMAIL:planted@evil.example"))


@pytest.fixture
def api(server: ServerProcess, dav: DavClient) -> Api:
    assert dav.put("victim-1.vcf", VICTIM)[0] == 201
    return Api(server)


def assert_untouched(api: Api) -> None:
    contact = api.ok("GET", f"{BOOK}/contacts/victim-1")
    assert contact["name"] == "Original Person"
    assert [e["value"] for e in contact["emails"]] == ["original@example.org"]
    assert api.ok("GET", f"{BOOK}/contacts?q=planted")["total"] == 0
    assert api.call("GET", f"{BOOK}/contacts/planted-1")[0] == 404


# -- plain HTTP: the refusals ------------------------------------------------------------
FOREIGN = [{"Origin": "http://evil.example"}, {"Origin": "null"},
           {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
           {"Origin": "http://127.0.0.1:1"}, {"Origin": "https://127.0.0.1"},
           {"Origin": "http://127.0.0.1.evil.example"}]


def test_every_kind_of_write_from_another_origin_is_refused(api: Api,
                                                            server: ServerProcess) -> None:
    contact = f"{BOOK}/contacts/victim-1"
    writes = [("POST", f"{BOOK}/import", FORGED, {"Content-Type": "text/vcard"}),
              ("POST", f"{BOOK}/contacts", {"uid": "planted-1", "name": "Planted"}, {}),
              ("PUT", contact, {"name": "Replaced Person"}, {}),
              ("PATCH", contact, {"name": "Replaced Person"},
               {"Content-Type": "application/merge-patch+json"}),
              ("DELETE", contact, None, {}),
              ("POST", f"{BOOK}/categories", {"name": "Planted"}, {})]
    for foreign in FOREIGN:
        for method, url, body, headers in writes:
            got = assert_problem(api.call(method, url, body, {**headers, **foreign}), 403)
            assert "another" in got["detail"] or "origin" in got["detail"], got
    assert_untouched(api)
    assert api.ok("GET", f"{BOOK}/categories")["total"] == 0
    # Reading is not a change: a cross-origin page cannot read the answer anyway (no CORS).
    assert api.call("GET", contact, headers={"Origin": "http://evil.example"})[0] == 200


def test_own_origin_and_header_free_clients_still_write(api: Api,
                                                        server: ServerProcess) -> None:
    own = [{}, {"Origin": server.url}, {"Origin": server.url, "Sec-Fetch-Site": "same-origin"},
           {"Sec-Fetch-Site": "none"}, {"Origin": f"http://localhost:{server.port}",
                                        "Host": f"localhost:{server.port}"}]
    for n, headers in enumerate(own):
        created = api.ok("POST", f"{BOOK}/contacts", {"uid": f"mine-{n}", "name": f"Mine {n}"},
                         headers=headers, status=201)
        assert created["uid"] == f"mine-{n}"
        assert api.call("DELETE", created["url"], headers=headers)[0] == 204
    # Behind a TLS proxy the origin is https (X-Forwarded-Proto), the Host the public one.
    proxied = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", "Origin": "https://127.0.0.1"}
    assert api.ok("POST", f"{BOOK}/import", card("mine-proxy", "Proxied Person"),
                  headers={"Content-Type": "text/vcard", **proxied})["added"] == 1


def test_import_takes_only_a_contacts_media_type(api: Api) -> None:
    for media_type in ("text/plain", "application/x-www-form-urlencoded",
                       "multipart/form-data; boundary=x", "application/octet-stream", ""):
        headers = {"Content-Type": media_type} if media_type else {}
        got = assert_problem(api.call("POST", f"{BOOK}/import", FORGED, headers), 415)
        assert "text/vcard" in got["accepted"] and "text/csv" in got["accepted"]
        assert "text/plain" not in got["accepted"]
    assert_untouched(api)
    csv = "Name,E-mail 1 - Value\r\nMary Jackson,mary@nasa.example\r\n"
    for media_type, body in [("text/x-vcard", card("ok-1", "Vcard Person")),
                             ("text/vcard; charset=utf-8", card("ok-2", "Charset Person")),
                             ("text/comma-separated-values", csv),
                             ("application/json", '[["vcard",[["version",{},"text","4.0"],'
                              '["fn",{},"text","Json Person"]]]]'),
                             ("text/x-ldif", "dn: cn=Ldif Person\ncn: Ldif Person\n"
                              "mail: ldif@example.org\n")]:
        result = api.ok("POST", f"{BOOK}/import", body, {"Content-Type": media_type})
        assert result["added"] + result["merged"] + result["unchanged"] >= 1, media_type


def test_carddav_post_writes_nothing(api: Api, server: ServerProcess, dav: DavClient) -> None:
    # The only CardDAV method an HTML form can send is POST; Radicale's POST
    # is not a write for address books.
    before = sorted(p.name for p in server.book_dir().iterdir() if p.suffix == ".vcf")
    for path in (f"/{USER}/contacts/", f"/{USER}/contacts/planted-1.vcf", f"/{USER}/"):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/vcard"):
            status, _, _ = dav.request("POST", path, FORGED, {
                "Content-Type": content_type, "Origin": "http://evil.example",
                "Sec-Fetch-Site": "cross-site"})
            assert status >= 400, (path, content_type, status)
    after = sorted(p.name for p in server.book_dir().iterdir() if p.suffix == ".vcf")
    assert after == before
    assert_untouched(api)


# -- a real browser: an auto-submitting form on another loopback origin -----------------
def form_page(target: str) -> bytes:
    """An HTML form that posts FORGED as text/plain the moment it loads."""
    # text/plain sends "name=value\r\n": the cards are the name, "=" a stray last line.
    escaped = FORGED.replace("&", "&amp;").replace('"', "&quot;").replace("\r\n", "&#13;&#10;")
    return (f'<!doctype html><html><body><form method="POST" action="{target}" '
            f'enctype="text/plain"><input type="hidden" name="{escaped}" value="">'
            f'</form><script>document.forms[0].submit()</script></body></html>').encode()


@pytest.fixture
def attacker_site(server: ServerProcess) -> Iterator[str]:
    pages = {"/import": form_page(f"{server.url}/api/books/contacts/import"),
             "/import-vcard": form_page(f"{server.url}/api/books/contacts/import?format=vcard"),
             "/carddav": form_page(f"{server.url}/{USER}/contacts/")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_site(Handler) as url:
        yield url


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                    reason="Debian's chromium is not installed")
def test_a_form_on_another_site_plants_and_replaces_nothing(
        api: Api, server: ServerProcess, attacker_site: str) -> None:
    book_files = sorted(Path(server.book_dir()).glob("*.vcf"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": USER, "password": PASSWORD})
            page = context.new_page()
            assert page.goto(server.url + "/api/").status == 200  # credentials cached
            for path in ("/import", "/import-vcard", "/carddav"):
                with page.expect_response(lambda r: r.request.method == "POST") as answer:
                    page.goto(attacker_site + path)
                page.wait_for_load_state()
                assert answer.value.status >= 400, (path, answer.value.status)
            context.close()
        finally:
            browser.close()
    assert_untouched(api)
    assert sorted(Path(server.book_dir()).glob("*.vcf")) == book_files
