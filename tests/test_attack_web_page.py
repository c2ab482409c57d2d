"""Attacks on the web page itself: a stored password, and mailto: header injection.

The page used to keep the Basic token in sessionStorage, where any script that
ever ran on the origin could read it back; it is now in memory only (a reload
asks to sign in again). An email value like ``a@b.c?bcc=evil@x.y`` used to
become a ``mailto:`` link with extra header fields (Bcc, Body, a
``%0a``-smuggled header); the link now carries the address alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.conftest import PASSWORD, ServerProcess
from tests.davclient import DavClient, card
from tests.test_web import CHROMIUM, CHROMIUM_ARGS, sign_in

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed")

EMAILS = {"a@b.c?bcc=evil@x.y": "mailto:a@b.c",
          "x@y.z%0aBcc:evil@x.y": "mailto:x@y.z%250aBcc%3Aevil@x.y",
          "p&q@r.s?body=hi&cc=evil@x.y": "mailto:p%26q@r.s",
          "plain@example.org": "mailto:plain@example.org"}


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_password_is_kept_in_memory_only(browser: Browser, server: ServerProcess,
                                             dav: DavClient) -> None:
    dav.put("m.vcf", card("m-1", "Memory Person"))
    page = browser.new_page()
    try:
        sign_in(page, server)
        stored = page.evaluate("JSON.stringify([Object.entries(sessionStorage), "
                               "Object.entries(localStorage)])")
        assert stored == "[[],[]]", stored
        assert PASSWORD not in stored
        page.reload()
        expect(page.get_by_label("Password")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
    finally:
        page.close()


def test_mailto_links_carry_the_address_only(browser: Browser, server: ServerProcess,
                                            dav: DavClient) -> None:
    lines = [f"EMAIL;TYPE=INTERNET:{value}" for value in EMAILS]
    assert dav.put("mail.vcf", card("mail-1", "Mail Person", *lines))[0] == 201
    page = browser.new_page()
    try:
        sign_in(page, server)
        page.evaluate("location.hash = '#/contacts/mail-1'")
        expect(page.locator("#contact-name")).to_have_text("Mail Person")
        links = page.locator('#detail a[href^="mailto:"]')
        expect(links).to_have_count(len(EMAILS))
        hrefs = [links.nth(i).get_attribute("href") for i in range(len(EMAILS))]
        assert hrefs == list(EMAILS.values())
        for href in hrefs:
            assert href is not None and "?" not in href and "&" not in href
            assert "%0a" not in href.lower()
        # What a person reads is still the value as stored.
        expect(page.locator("#detail")).to_contain_text("a@b.c?bcc=evil@x.y")
    finally:
        page.close()


PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
       "rkJggg==")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>document.title="ran"</script></svg>'


def test_the_page_makes_blobs_only_of_the_four_image_types(browser: Browser,
                                                            server: ServerProcess,
                                                            dav: DavClient) -> None:
    # A blob: URL is on the page's origin: an SVG blob opened in a tab would run
    # its script there. The page must refuse a non-image answer even if a server
    # (an older Cardfile, a proxy) sent one, so the answer is replaced in the browser.
    assert dav.put("pic.vcf", card("pic-1", "Picture Person",
                                   f"PHOTO;ENCODING=b;TYPE=PNG:{PNG}"))[0] == 201
    page = browser.new_page()
    try:
        sign_in(page, server)
        page.evaluate("location.hash = '#/contacts/pic-1'")
        image = page.locator("#detail .avatar.large img")
        expect(image).to_be_visible()
        assert (image.get_attribute("src") or "").startswith("blob:")
    finally:
        page.close()
    page = browser.new_page()
    try:
        page.route("**/photo", lambda route: route.fulfill(
            status=200, content_type="image/svg+xml", body=SVG))
        sign_in(page, server)
        page.evaluate("location.hash = '#/contacts/pic-1'")
        expect(page.locator("#contact-name")).to_have_text("Picture Person")
        page.wait_for_timeout(1000)  # time for the photo's answer to arrive
        expect(page.locator("#detail .avatar.large")).to_be_visible()
        assert page.locator("img[src^='blob:']").count() == 0
    finally:
        page.close()
