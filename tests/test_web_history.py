"""The web page's way back, in a real browser: the mass-change banner, a contact's
History panel and the Trash view. What the page did is checked over CardDAV.

Screenshots (desktop width) go to ``tests/screenshots/`` like the other web tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests import test_web
from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import DavClient, card
from tests.test_web import CHROMIUM, shoot, sign_in

# The browser and a fresh page per test, as test_web.py makes them (for this module's site).
page = test_web.page  # the browser itself is conftest.py's

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]
DAVX5 = "DAVx5/4.3.1-ose (2024/01/01; dav4jvm; okhttp/4.12.0) Android/14"


def person(i: int, phone: str = "") -> str:
    return card(f"p{i:02d}", f"Person Number{i:02d}", f"EMAIL:p{i}@example.org",
                f"TEL;TYPE=CELL:{phone or f'+49 30 5550{i:03d}'}")


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory, store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("web-history"), store_config=store_config)
    try:
        dav = server.client()
        assert dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
        for i in range(30):
            assert dav.put(f"p{i:02d}.vcf", person(i))[0] == 201
        yield server
    finally:
        server.stop()


def test_banner_restores_a_wiped_book_in_one_click(page: Page, site: ServerProcess) -> None:
    phone = DavClient(site.url, USER, PASSWORD, user_agent=DAVX5)
    for i in range(25):
        assert phone.delete(f"p{i:02d}.vcf") == 200
    sign_in(page, site)
    banner = page.locator("#alerts .alert")
    expect(banner).to_contain_text("deleted 25")
    expect(banner).to_contain_text("DAVx5/4.3.1-ose")
    shoot(page, "history-banner")
    banner.locator(".restore-alert").click()
    expect(page.locator("#dialog-text")).to_contain_text("added 25, changed 0, deleted 0")
    page.locator("#dialog-ok").click()
    expect(page.locator("#toast")).to_contain_text("Restored: added 25")
    expect(page.locator("#alerts")).to_be_hidden()
    assert len(site.client().etags()) == 30
    assert site.client().get("p00.vcf")[2] == person(0)


def test_history_panel_shows_the_change_and_restores_a_version(
        page: Page, site: ServerProcess) -> None:
    phone = DavClient(site.url, USER, PASSWORD, user_agent=DAVX5)
    assert phone.put("p03.vcf", person(3, "+49 170 999"))[0] == 204
    sign_in(page, site)
    page.goto(site.url + "/#/contacts/p03")
    expect(page.locator("#contact-name")).to_have_text("Person Number03")
    page.get_by_role("button", name="History").click()
    panel = page.locator("#history-panel")
    current = panel.locator(".version").first
    expect(current).to_contain_text("DAVx5/4.3.1-ose")
    expect(current).to_contain_text("+49 170 999")
    expect(current).to_contain_text("+49 30 5550003")
    shoot(page, "history-panel")
    panel.locator(".version").nth(1).get_by_role("button", name="Restore this version").click()
    expect(page.locator("#toast")).to_contain_text("current one again")
    assert site.client().get("p03.vcf")[2] == person(3)


def test_trash_view_previews_and_restores_a_deleted_contact(
        page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.goto(site.url + "/#/contacts/p07")
    expect(page.locator("#contact-name")).to_have_text("Person Number07")
    page.locator("#delete-contact").click()
    expect(page.locator("#toast")).to_contain_text("Deleted")
    assert site.client().get("p07.vcf")[0] == 404
    page.get_by_role("link", name="Trash & restore").click()
    item = page.locator(".trash-item", has_text="Person Number07")
    expect(item).to_contain_text("web page")
    item.get_by_role("button", name="Preview").click()
    expect(item.locator(".trash-preview")).to_contain_text("p7@example.org")
    shoot(page, "history-trash")
    item.get_by_role("button", name="Restore").click()
    expect(page.locator("#toast")).to_contain_text("is back")
    expect(page.locator("#trash-status")).to_contain_text("The trash is empty")
    status, _, text = site.client().get("p07.vcf")
    assert status == 200 and text == person(7)
