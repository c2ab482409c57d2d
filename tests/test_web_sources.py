"""The Connected sources page in a real browser (issue 15).

A stock Radicale on another loopback port is the source. From the page: a
wrong password is said and connects nothing; the right one connects it and
shows its status and card count; a change at the source arrives with *Sync
now*; a source that stopped answering shows "Unreachable" with the reason;
*Remove* (after a confirmation) disconnects it. What the page did is checked
through the API and the data folder, not only on screen.

Screenshots (desktop width) go to ``tests/screenshots/`` like the other web tests.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import source_servers, test_web
from tests.conftest import USER, ServerProcess, loopback_site, start_server
from tests.davclient import card
from tests.source_servers import SourceServer
from tests.test_web import CHROMIUM, UNLABELLED, api, shoot, sign_in

# The browser and a fresh page per test, as test_web.py makes them (for this module's site).
page = test_web.page  # the browser itself is conftest.py's

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]
# Markup in a login: the page must show it as text, never run it.
HOSTILE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_config: str
         ) -> Iterator[ServerProcess]:
    # The key that encrypts source passwords, outside the data folder (the server inherits it).
    monkeypatch.setenv("CARDFILE_KEY_FILE", str(tmp_path / "config" / "sources.key"))
    (tmp_path / "target").mkdir()
    server = start_server(tmp_path / "target", store_config=store_config)
    try:
        assert server.client().put("own.vcf", card("own", "My Own Contact"))[0] == 201
        yield server
    finally:
        server.stop()


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SourceServer]:
    server = source_servers.start("radicale", tmp_path)
    try:
        server.put("s1", card("s1", "Source Person One"))
        server.put("s2", card("s2", "Source Person Two"))
        yield server
    finally:
        server.stop()


def sources(site: ServerProcess) -> dict[str, Any]:
    status, body = api(site, "GET", "/api/sources")
    assert status == 200, body
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def test_add_sync_failing_and_remove_a_source_from_the_page(
        page: Page, site: ServerProcess, source: SourceServer) -> None:
    sign_in(page, site)
    page.get_by_role("link", name="Connected sources").click()
    status = page.locator("#sources-status")
    expect(status).to_have_text("No sources yet: connect one below.")
    assert page.evaluate(UNLABELLED) == []

    # A wrong password is said where the form is, and nothing is connected.
    url = source.url + source.book_path
    page.get_by_label("Address (URL)").fill(url)
    page.get_by_label("Short name (optional)").fill("team")
    page.get_by_label("User name there").fill(source.user)
    page.get_by_label("Password or app password there").fill("not-the-password")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#source-add-error")).to_contain_text("Could not connect")
    expect(page.locator("#source-add-error")).to_contain_text("refused the login")
    expect(page.get_by_label("Address (URL)")).to_be_focused()
    assert sources(site)["total"] == 0

    # The right one connects it: status, card count, and focus on the new source.
    page.get_by_label("Password or app password there").fill(source.password)
    page.get_by_label("Refresh").select_option(label="Every 15 minutes")
    page.get_by_role("button", name="Connect").click()
    item = page.locator(".source[data-name='team']")
    expect(item.locator(".badge")).to_have_text("OK")
    expect(item).to_contain_text("2 cards")
    expect(item).to_contain_text("2 added, 0 updated, 0 removed")
    expect(item).to_contain_text("every 15 minutes")
    expect(item).to_contain_text(f"{source.user} (password stored, encrypted)")
    expect(item.get_by_role("heading", name="team")).to_be_focused()
    expect(status).to_have_text("1 source.")
    expect(page.get_by_label("Password or app password there")).to_have_value("")
    assert source.password not in page.content()
    listed = sources(site)["items"]
    assert [(s["name"], s["status"], s["cards"], s["interval"], s["into"], s["has_password"])
            for s in listed] == [("team", "ok", 2, 900, "own", True)]
    assert page.evaluate(UNLABELLED) == []
    shoot(page, "sources-desktop")

    # A change at the source arrives with "Sync now"; focus stays on the button.
    source.put("s1", card("s1", "Changed At Source"))
    source.put("s3", card("s3", "Source Person Three"))
    item.get_by_role("button", name="Sync now").click()
    expect(item).to_contain_text("1 added, 1 updated, 0 removed")
    expect(item).to_contain_text("3 cards")
    expect(item.get_by_role("button", name="Sync now")).to_be_focused()
    status_code, body = api(site, "GET", "/api/books/source-team/contacts")
    assert status_code == 200 and b"Changed At Source" in body
    assert b"Source Person One" not in body and b"Source Person Three" in body

    # The source stops answering: the status line says so, with the reason; cards stay.
    source.stop()
    item.get_by_role("button", name="Sync now").click()
    expect(item.locator(".badge")).to_have_text("Unreachable")
    expect(item.locator(".source-verdict")).to_contain_text("cannot reach 127.0.0.1")
    expect(item).to_contain_text("3 cards")
    expect(item).to_contain_text("last successful:")
    assert sources(site)["items"][0]["status"] == "unreachable"
    shoot(page, "sources-failing")

    # Remove asks first; Cancel keeps it, the confirmation removes it.
    item.get_by_role("button", name="Remove").click()
    expect(page.locator("#dialog-title")).to_have_text("Remove the source team?")
    page.locator("#dialog-cancel").click()
    expect(item.get_by_role("button", name="Remove")).to_be_focused()
    assert sources(site)["total"] == 1
    item.get_by_role("button", name="Remove").click()
    page.locator("#dialog-ok").click()
    expect(status).to_have_text("No sources yet: connect one below.")
    expect(page.locator("#sources-heading")).to_be_focused()
    assert sources(site)["total"] == 0
    assert not (site.data_dir / "collection-root" / USER / "source-team").exists()
    # The user's own book is untouched.
    assert site.client().get("own.vcf")[0] == 200


def test_google_and_microsoft_are_refused_and_hostile_text_stays_text(
        page: Page, site: ServerProcess, tmp_path: Path) -> None:
    sign_in(page, site)
    page.goto(site.url + "/#/sources")
    page.get_by_label("Address (URL)").fill(
        "https://www.googleapis.com/carddav/v1/principals/me@gmail.com/lists/default/")
    page.get_by_role("button", name="Connect").click()
    error = page.locator("#source-add-error")
    expect(error).to_contain_text("not available in this build")
    expect(error).to_contain_text("OAuth")
    assert sources(site)["total"] == 0

    # A vCard file on another loopback site, with markup for a login: shown as text.
    files = tmp_path / "site"
    files.mkdir()
    (files / "team.vcf").write_text(card("t1", "Team One"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(files))
    with loopback_site(handler) as url:  # type: ignore[arg-type]
        page.get_by_label("Address (URL)").fill(f"{url}/team.vcf")
        page.get_by_label("Short name (optional)").fill("file")
        page.get_by_label("User name there").fill(HOSTILE)
        page.get_by_label("Password or app password there").fill("x")
        page.get_by_role("button", name="Connect").click()
        item = page.locator(".source[data-name='file']")
        expect(item).to_contain_text("1 card")
    expect(item).to_contain_text(f"{HOSTILE} (password stored, encrypted)")
    expect(item).to_contain_text("file")  # the kind, as the API says it
    assert page.evaluate("window.pwned") is None
    assert page.locator("#page-sources img").count() == 0
    assert sources(site)["items"][0]["username"] == HOSTILE
    # Signing out empties the page: no source, login or typed password stays in the DOM.
    page.get_by_label("Password or app password there").fill("half-typed-secret")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("User name")).to_be_visible()
    assert page.locator("#page-sources").inner_html() == ""
    assert not page.evaluate("[...document.querySelectorAll('input')]"
                             ".some((i) => i.value === 'half-typed-secret')")
