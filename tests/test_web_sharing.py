"""Devices, API tokens and friends from the web page, in a real browser (issue 16).

Three users on one server. What the page makes is then used the way a phone
or an application would use it: a device password over CardDAV (read-only
refused a PUT; revoked in the page, refused at the next request), the Apple
profile's password over CardDAV, a token limited to name and email over the
API (no phone). Alice invites Bob in her page and Bob accepts in his: her me
card is in his book, cut to what she ticked; Carol declines and Alice's page
says only "not accepted". Names with markup stay text; axe-core finds nothing
on any of these views; the focus is placed after every dialog.

Screenshots (desktop width) go to ``tests/screenshots/`` like the other web tests.
"""

from __future__ import annotations

import os
import plistlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import test_web_find_and_keys
from tests.conftest import ServerProcess
from tests.davclient import DavClient, card
from tests.grants_helpers import USERS, BearerApi, api, dav, three_user_server
from tests.test_web import CHROMIUM, CHROMIUM_ARGS, PHONE, UNLABELLED, shoot
from tests.test_web_find_and_keys import axe, new_page

axe_source = test_web_find_and_keys.axe_source  # the session's axe-core (npm), as there

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]

HOSTILE = "<script>window.pwned=1</script>"
HOSTILE_IMG = "<img src=x onerror=window.pwned=1>"
#: A name the page is opened at that is not loopback (mapped to 127.0.0.1 for the test), so
#: the page shows the QR code a phone could use.
HOST = "cardfile.test"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = three_user_server(tmp_path_factory.mktemp("web-sharing"),
                               f"[server]\nallowed_hosts = {HOST}\n", module_store_config)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Browser, site: ServerProcess) -> Iterator[Page]:
    tab = new_page(browser)
    yield tab
    errors = tab.errors  # type: ignore[attr-defined]
    tab.context.close()
    assert not errors, errors


def sign_in_as(page: Page, base: str, user: str) -> None:
    page.goto(base + "/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(USERS[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(user)


def no_markup_ran(page: Page) -> None:
    assert page.evaluate("window.pwned") is None
    assert page.locator("#main script, #main img[src='x']").count() == 0


# -- devices ----------------------------------------------------------------------------
def test_add_a_device_use_its_password_and_revoke_it(browser: Browser, site: ServerProcess,
                                                     axe_source: str) -> None:
    # A second Chromium of the same Playwright that takes cardfile.test for this machine,
    # as test_web.py's QR test does: only there does the page draw the code.
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"])
    try:
        page = new_page(chromium)
        base = f"http://{HOST}:{site.port}"
        sign_in_as(page, base, "alice")
        page.get_by_role("link", name="Devices & apps").click()
        expect(page.locator("#devices-status")).to_have_text("No device passwords yet.")
        assert page.evaluate(UNLABELLED) == []
        found = axe(page, axe_source, "devices")

        # Add a read-only device for CardDAV: its password is shown once, with the code.
        name = f"{HOSTILE} phone"
        form = page.locator("#device-add-form")
        form.get_by_label("Name of the device").fill(name)
        form.get_by_label("Read only").check()
        form.get_by_label("CardDAV (contacts apps").check()
        form.get_by_role("button", name="Add device").click()
        box = page.locator("#new-device")
        expect(box.get_by_role("heading", name=f"{name} can now sign in")).to_be_focused()
        password = page.locator("#new-device-secret").inner_text()
        assert password.startswith("cfd-")
        expect(box.get_by_role("img", name=f"QR code of {base}/")).to_be_visible()
        expect(box).to_contain_text(f"{base}/")
        item = page.locator("#device-list .grant")
        expect(item).to_have_count(1)
        expect(item.locator("h4")).to_have_text(name)
        expect(item.locator(".grant-access")).to_have_text("Read-only · all books · CardDAV")
        expect(item.locator(".grant-last-use")).to_have_text("never used")
        no_markup_ran(page)
        found += axe(page, axe_source, "device added")
        shoot(page, "devices-added-desktop")

        # The password works over CardDAV, reads, and is refused a write.
        phone = DavClient(site.url, "alice", password, user_agent="DAVx5/4.4 (test)")
        assert phone.request("PROPFIND", "/alice/contacts/", headers={"Depth": "1"})[0] == 207
        assert phone.put("from-phone.vcf", card("from-phone", "Written By Phone"))[0] == 403
        assert dav(site, "alice").get("from-phone.vcf")[0] == 404

        # Done takes the password out of the page; the list shows the last use.
        box.get_by_role("button", name="Done").click()
        expect(page.get_by_label("Name of the device")).to_be_focused()
        assert password not in page.content()
        expect(item.locator(".grant-last-use")).to_contain_text("with davx5")

        # Revoke asks first; Cancel keeps it (focus back on the button), OK revokes it.
        item.get_by_role("button", name="Revoke").click()
        expect(page.locator("#dialog-title")).to_have_text(f"Revoke the device {name}?")
        page.locator("#dialog-cancel").click()
        expect(item.get_by_role("button", name="Revoke")).to_be_focused()
        assert phone.request("PROPFIND", "/alice/contacts/", headers={"Depth": "0"})[0] == 207
        item.get_by_role("button", name="Revoke").click()
        page.locator("#dialog-ok").click()
        expect(page.locator("#devices-status")).to_have_text("No device passwords yet.")
        expect(page.locator("#devices-status")).to_be_focused()
        assert phone.request("PROPFIND", "/alice/contacts/", headers={"Depth": "0"})[0] == 401

        # The Apple profile: a download with a fresh CardDAV password inside.
        form.get_by_label("Name of the device").fill("iPad")
        form.get_by_label("An Apple configuration profile").check()
        expect(form.get_by_label("The JSON API")).to_be_disabled()
        with page.expect_download() as waiting:
            form.get_by_role("button", name="Add device").click()
        download = waiting.value
        assert download.suggested_filename == "cardfile-iPad.mobileconfig"
        profile = plistlib.loads(Path(download.path()).read_bytes())
        account = profile["PayloadContent"][0]
        assert (account["CardDAVHostName"], account["CardDAVUsername"]) == (HOST, "alice")
        expect(page.locator("#new-device h4")).to_be_focused()
        expect(page.locator("#new-device")).to_contain_text("cardfile-iPad.mobileconfig")
        expect(item.locator(".grant-access")).to_have_text("Read and write · all books · CardDAV")
        ipad = DavClient(site.url, "alice", account["CardDAVPassword"])
        assert ipad.request("PROPFIND", "/alice/contacts/", headers={"Depth": "0"})[0] == 207
        found += axe(page, axe_source, "profile downloaded")
        page.set_viewport_size(PHONE)
        shoot(page, "devices-phone")
        assert found == []
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        chromium.close()


# -- API tokens -------------------------------------------------------------------------
def test_a_token_made_in_the_page_sees_only_its_properties(page: Page, site: ServerProcess,
                                                           axe_source: str) -> None:
    assert dav(site, "bob").put("tok-web.vcf", card(
        "tok-web", "Grace Hopper", "EMAIL:grace@navy.example", "TEL;TYPE=CELL:+1 202 555 0147",
        "NOTE:hidden words"))[0] in (201, 204)
    sign_in_as(page, site.url, "bob")
    page.get_by_role("link", name="Devices & apps").click()
    expect(page.locator("#tokens-status")).to_have_text("No API tokens yet.")
    form = page.locator("#token-add-form")
    # the boxes are the server's scopes (name is always in)
    boxes = form.locator("input[name=properties]")
    expect(boxes).to_have_count(11)
    form.get_by_label("Name of the application").fill(HOSTILE_IMG)
    form.get_by_label("Read and write").check()
    form.get_by_label("email").check()
    expect(form.get_by_label("Read and write")).to_be_disabled()
    expect(form.get_by_label("Read only")).to_be_checked()
    form.get_by_role("button", name="Create token").click()
    box = page.locator("#new-token")
    expect(box.locator("h4")).to_be_focused()
    token = page.locator("#new-token-secret").inner_text()
    assert token.startswith("cft-")
    item = page.locator("#token-list .grant")
    expect(item.locator("h4")).to_have_text(HOSTILE_IMG)
    expect(item.locator(".grant-access")).to_have_text("Read-only · all books · only email, name")
    no_markup_ran(page)
    assert axe(page, axe_source, "token created") == []
    shoot(page, "tokens-created-desktop")

    app = BearerApi(site, token)
    got = app.ok("GET", "/api/books/contacts/contacts/tok-web")
    assert got["emails"][0]["value"] == "grace@navy.example" and got["name"] == "Grace Hopper"
    assert not got.get("phones") and "555" not in str(got) and "hidden" not in str(got)

    box.get_by_role("button", name="Done").click()
    assert token not in page.content()
    expect(page.get_by_label("Name of the application")).to_be_focused()
    item.get_by_role("button", name="Revoke").click()
    page.locator("#dialog-ok").click()
    expect(page.locator("#tokens-status")).to_have_text("No API tokens yet.")
    expect(page.locator("#tokens-status")).to_be_focused()
    assert app.call("GET", "/api/books/contacts/contacts/tok-web")[0] == 401


# -- friends ----------------------------------------------------------------------------
def friend_copies(site: ServerProcess, user: str) -> list[dict[str, Any]]:
    """The friends' cards in ``user``'s book, as the API gives them."""
    items = api(site, user).ok("GET", "/api/books/contacts/contacts?category=Friends")["items"]
    return list(items)


def test_invite_accept_decline_and_end_a_friendship_in_the_page(
        browser: Browser, site: ServerProcess, axe_source: str) -> None:
    me_name = f"Alice {HOSTILE_IMG} Liddell"
    assert dav(site, "alice").put("alice-me.vcf", card(
        "alice-me", me_name, "EMAIL:alice@example.org", "TEL:+44 1865 000111"))[0] in (201, 204)
    alice = new_page(browser)
    bob = new_page(browser)
    carol = new_page(browser)
    try:
        sign_in_as(alice, site.url, "alice")
        alice.get_by_role("link", name="Friends & sharing").click()
        expect(alice.locator("#me-status")).to_contain_text("Choose which of your contacts is you")
        expect(alice.get_by_role("button", name="Save what friends see")).to_be_disabled()
        found = axe(alice, axe_source, "friends, empty")

        # Alice names her own card and shares her email (name and photo always).
        alice.get_by_label("Find your own contact").fill("Liddell")
        alice.get_by_label("Find your own contact").press("Enter")
        choice = alice.get_by_role("button", name=f"This is me: {me_name}")
        expect(choice).to_be_focused()
        choice.press("Enter")
        expect(alice.locator("#me-name")).to_have_text(me_name)
        expect(alice.locator("#me-status")).to_be_focused()
        expect(alice.get_by_role("checkbox", name="name (always)")).to_be_disabled()
        alice.get_by_role("checkbox", name="email").check()
        alice.get_by_role("button", name="Save what friends see").click()
        expect(alice.locator("#me-status")).to_be_focused()
        assert api(site, "alice").ok("GET", "/api/me")["shared"] == ["email", "name", "photo"]

        # Alice invites Bob and Carol; an unknown user is said, as text.
        invite = alice.get_by_label("Invite a user of this server")
        invite.fill(HOSTILE)
        invite.press("Enter")
        expect(alice.locator("#invite-error")).to_contain_text(f"no user '{HOSTILE}'")
        for friend in ("bob", "carol"):
            invite.fill(friend)
            alice.get_by_role("button", name="Invite").click()
            expect(alice.locator(f"#invitations-sent .friend:has-text('{friend}')")
                   ).to_contain_text("waiting")
        expect(invite).to_be_focused()
        no_markup_ran(alice)

        # Bob accepts in his page: Alice's card is in his book, with her email, no phone.
        sign_in_as(bob, site.url, "bob")
        bob.get_by_role("link", name="Friends & sharing").click()
        received = bob.locator("#invitations-received .friend")
        expect(received).to_contain_text("alice invited you (until")
        found += axe(bob, axe_source, "friends, invitation received")
        shoot(bob, "friends-invited-desktop")
        received.get_by_role("button", name="Accept").click()
        expect(bob.locator("#friends-heading")).to_be_focused()
        expect(bob.locator("#friends .friend")).to_contain_text("alice since")
        copies = friend_copies(site, "bob")
        assert [c["name"] for c in copies] == [me_name]
        assert [e["value"] for e in copies[0]["emails"]] == ["alice@example.org"]
        assert not copies[0].get("phones")

        # Carol declines; Alice's page says only "not accepted".
        sign_in_as(carol, site.url, "carol")
        carol.get_by_role("link", name="Friends & sharing").click()
        carol.locator("#invitations-received .friend").get_by_role("button", name="Decline").click()
        expect(carol.locator("#invitations-received")).to_contain_text("None waiting.")
        expect(carol.locator("#invitations-received-heading")).to_be_focused()
        alice.reload()
        sign_in_as(alice, site.url, "alice")
        alice.get_by_role("link", name="Friends & sharing").click()
        sent = alice.locator("#invitations-sent .friend")
        expect(sent).to_have_count(1)
        expect(sent).to_contain_text("carol: not accepted")
        assert "declin" not in alice.locator("#main").inner_text().lower()
        expect(alice.locator("#friends .friend")).to_contain_text("bob since")
        found += axe(alice, axe_source, "friends, with a friend")
        shoot(alice, "friends-desktop")
        alice.set_viewport_size(PHONE)
        shoot(alice, "friends-phone")

        # Bob ends it and removes her card: the dialog asks, Cancel returns the focus.
        end = bob.locator("#friends .friend").get_by_role("button", name="End friendship")
        end.click()
        expect(bob.locator("#end-friend-title")).to_have_text("End the friendship with alice?")
        expect(bob.get_by_label("Keep it as a plain contact")).to_be_focused()
        found += axe(bob, axe_source, "end friendship dialog")
        bob.keyboard.press("Escape")
        expect(end).to_be_focused()
        end.click()
        bob.get_by_label("Remove it").check()
        bob.locator("#end-friend-ok").click()
        expect(bob.locator("#friends")).to_contain_text("No friends yet")
        expect(bob.locator("#friends-heading")).to_be_focused()
        assert friend_copies(site, "bob") == []
        assert api(site, "bob").ok("GET", "/api/books/contacts/contacts?q=Liddell")["total"] == 0
        assert found == []
        for tab in (alice, bob, carol):
            no_markup_ran(tab)
            assert not tab.errors  # type: ignore[attr-defined]
    finally:
        for tab in (alice, bob, carol):
            tab.context.close()
