"""Shared books and categories from the web page, in a real browser (issue 16).

Alice offers her Family category to Bob read-only in her page; Bob accepts in
his, chooses the shared book in the page's book chooser and sees Family's
contacts only, with no way to edit or delete and a note that says read-only.
Alice ends the share (after a confirmation) and Bob's next sign-in has no such
book. Carol declines an offer and Alice's page says only "not accepted". A
read-write share lets Bob change a contact in his page, and the change is in
Alice's card over CardDAV. Names with markup stay text; axe-core finds nothing
on these views; the focus is placed after every action and dialog.

Screenshots (desktop width) go to ``tests/screenshots/`` like the other web tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ServerProcess
from tests.davclient import card
from tests.grants_helpers import api, dav, three_user_server
from tests.test_web import PHONE, UNLABELLED, shoot
from tests.test_web_find_and_keys import axe, new_page
from tests.test_web_sharing import (  # the same page, sign-in and markup checks
    HOSTILE_IMG,
    axe_source,
    no_markup_ran,
    pytestmark,
    sign_in_as,
)

__all__ = ["axe_source", "pytestmark"]

FAY = f"Fay {HOSTILE_IMG} Family"
FAMILY_BOOK = "Family (alice, read-only)"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = three_user_server(tmp_path_factory.mktemp("web-shares"),
                               store_config=module_store_config)
    try:
        alice = dav(server, "alice")
        assert alice.put("fam-1.vcf", card("fam-1", FAY, "CATEGORIES:Family"))[0] == 201
        assert alice.put("work-1.vcf", card("work-1", "Walter Work", "CATEGORIES:Work"))[0] == 201
        yield server
    finally:
        server.stop()


@pytest.fixture
def tabs(browser: Browser, site: ServerProcess) -> Iterator[dict[str, Page]]:
    pages = {user: new_page(browser) for user in ("alice", "bob", "carol")}
    try:
        yield pages
        for tab in pages.values():
            no_markup_ran(tab)
            assert not tab.errors  # type: ignore[attr-defined]
    finally:
        for tab in pages.values():
            tab.context.close()


def open_sharing(page: Page, site: ServerProcess, user: str) -> None:
    sign_in_as(page, site.url, user)
    page.get_by_role("link", name="Friends & sharing").click()
    expect(page.locator("#shares-now-heading")).to_be_visible()


def offer(page: Page, user: str, category: str | None, read_write: bool = False) -> None:
    form = page.locator("#share-offer-form")
    form.get_by_label("Book to share").select_option("contacts")
    if category:
        expect(form.get_by_label("Contacts").locator(f"option[value='{category}']")).to_have_count(1)
        form.get_by_label("Contacts").select_option(category)
    form.get_by_label("With (a user name").fill(user)
    form.get_by_label("Read and change" if read_write else "Read only").check()
    form.get_by_role("button", name="Offer to share").click()
    expect(page.locator(f"#shares-sent .friend:has-text('{user}')")).to_contain_text("waiting")
    expect(form.get_by_label("With (a user name")).to_be_focused()


def accept(page: Page, what: str, access: str) -> None:
    offered = page.locator("#shares-offered .friend")
    expect(offered).to_contain_text(f"alice offers you {what}, {access}")
    offered.get_by_role("button", name="Accept").click()
    expect(page.locator("#shares-now-heading")).to_be_focused()
    expect(page.locator("#shares-now .friend")).to_contain_text(
        f"alice shares {what} with you, {access}")


def choose_book(page: Page, label: str) -> None:
    page.get_by_role("link", name="Contacts", exact=True).click()
    page.get_by_label("Address book", exact=True).select_option(label=label)


def test_a_category_shared_read_only_then_ended_and_an_offer_declined(
        tabs: dict[str, Page], site: ServerProcess, axe_source: str) -> None:
    alice, bob, carol = tabs["alice"], tabs["bob"], tabs["carol"]
    open_sharing(alice, site, "alice")
    expect(alice.locator("#shares-now")).to_contain_text("Nothing is shared yet.")
    assert alice.evaluate(UNLABELLED) == []
    found = axe(alice, axe_source, "shares, empty")
    offer(alice, "bob", "Family")
    expect(alice.locator("#shares-sent .friend")).to_contain_text(
        "bob: Family (a category of contacts), read-only: waiting (until")
    offer(alice, "carol", None)

    # Bob accepts: the shared book is in his chooser, with Family's contact only, not editable.
    open_sharing(bob, site, "bob")
    found += axe(bob, axe_source, "shares, offered to you")
    bob.locator("#shares-part").scroll_into_view_if_needed()
    shoot(bob, "shares-offered-desktop")
    accept(bob, "Family (a category of contacts)", "read-only")
    choose_book(bob, FAMILY_BOOK)
    expect(bob.locator("#list-count")).to_have_text("1 contact")
    expect(bob.locator("#book-note")).to_contain_text(
        "alice shares Family (a category of contacts) with you read-only")
    expect(bob.get_by_role("button", name="New contact")).to_be_hidden()
    expect(bob.locator("#new-category")).to_be_hidden()
    bob.locator("#list .row-link").first.click()
    expect(bob.locator("#contact-name")).to_have_text(FAY)
    expect(bob.locator("#detail")).to_contain_text("Read-only: shared by alice.")
    expect(bob.locator("#edit-contact")).to_have_count(0)
    expect(bob.locator("#delete-contact")).to_have_count(0)
    expect(bob.locator("#detail .chip-remove, #detail .add-category")).to_have_count(0)
    found += axe(bob, axe_source, "a book shared read-only")
    shoot(bob, "shares-read-only-book-desktop")
    bob.set_viewport_size(PHONE)
    shoot(bob, "shares-read-only-book-phone")

    # Carol declines: Alice's page says "not accepted", never "declined".
    open_sharing(carol, site, "carol")
    carol.locator("#shares-offered .friend").get_by_role("button", name="Decline").click()
    expect(carol.locator("#shares-offered")).to_contain_text("None waiting.")
    expect(carol.locator("#shares-offered-heading")).to_be_focused()
    alice.reload()
    open_sharing(alice, site, "alice")
    expect(alice.locator("#shares-sent .friend-text")).to_have_text(
        "carol: the book contacts, read-only: not accepted")
    assert "declin" not in alice.locator("#main").inner_text().lower()

    # Alice ends Bob's share: the dialog asks, Escape gives the focus back, then it ends.
    now = alice.locator("#shares-now .friend")
    expect(now.locator(".friend-text")).to_have_text(
        "bob sees Family (a category of contacts) of yours, read-only")
    found += axe(alice, axe_source, "shares, one shared now")
    alice.locator("#shares-part").scroll_into_view_if_needed()
    shoot(alice, "shares-desktop")
    end = now.get_by_role("button", name="End share")
    end.click()
    expect(alice.locator("#dialog-title")).to_have_text(
        "Stop sharing Family (a category of contacts) with bob?")
    found += axe(alice, axe_source, "end share dialog")
    alice.keyboard.press("Escape")
    expect(end).to_be_focused()
    end.click()
    alice.locator("#dialog-ok").click()
    expect(alice.locator("#shares-now")).to_contain_text("Nothing is shared yet.")
    expect(alice.locator("#shares-now-heading")).to_be_focused()

    # Bob's next load has no such book; the API agrees.
    bob.reload()
    sign_in_as(bob, site.url, "bob")
    chooser = bob.get_by_label("Address book", exact=True)
    expect(chooser.locator("option")).to_have_text(["contacts"])
    assert api(site, "bob").call("GET", "/api/books/shared-alice-contacts-family")[0] == 404
    assert found == []


def test_the_page_routed_again_while_loading_shows_each_part_once(
        tabs: dict[str, Page], site: ServerProcess) -> None:
    """A reload or a second click on the link routes the page again while the first
    drawing still waits for its answers: the friends page still has one card form,
    not one per drawing (two such forms shared an id and a label)."""
    alice = tabs["alice"]
    open_sharing(alice, site, "alice")
    alice.evaluate("for (let i = 0; i < 3; i++) "
                   "window.dispatchEvent(new HashChangeEvent('hashchange'))")
    expect(alice.locator("#me-share-save")).to_be_visible()
    alice.wait_for_load_state("networkidle")
    expect(alice.locator("#me-part form#me-share-form")).to_have_count(1)
    expect(alice.locator("#me-part details")).to_have_count(1)


def test_the_book_to_share_chosen_again_while_loading_lists_its_categories_once(
        tabs: dict[str, Page], site: ServerProcess) -> None:
    """Changing the book to share quickly starts several loads of its categories;
    the list then offers each category once, not once per load."""
    alice = tabs["alice"]
    open_sharing(alice, site, "alice")
    chooser = alice.locator("#share-offer-form").get_by_label("Contacts")
    expect(chooser.locator("option")).to_have_text(["The whole book", "Family", "Work"])
    alice.locator("#share-book").evaluate(
        "select => { for (let i = 0; i < 3; i++) select.dispatchEvent(new Event('change')) }")
    alice.wait_for_load_state("networkidle")
    expect(chooser.locator("option")).to_have_text(["The whole book", "Family", "Work"])


def test_a_book_shared_read_write_is_edited_in_the_page(
        tabs: dict[str, Page], site: ServerProcess) -> None:
    alice, bob = tabs["alice"], tabs["bob"]
    open_sharing(alice, site, "alice")
    offer(alice, "bob", None, read_write=True)
    open_sharing(bob, site, "bob")
    accept(bob, "the book contacts", "read and write")
    choose_book(bob, "contacts (alice)")
    expect(bob.locator("#book-note")).to_contain_text("to read and change")
    expect(bob.locator("#list-count")).to_have_text("2 contacts")
    bob.locator("#list .row-link", has_text="Walter Work").click()
    expect(bob.locator("#detail")).to_contain_text("Shared by alice: changes go to their book.")
    bob.locator("#edit-contact").click()
    bob.get_by_label("Job title").fill("Chief Tester")
    bob.get_by_role("button", name="Save").click()
    expect(bob.locator("#contact-name")).to_be_focused()
    expect(bob.locator("#detail")).to_contain_text("Chief Tester")
    status, _, text = dav(site, "alice").get("work-1.vcf")
    assert status == 200 and "TITLE:Chief Tester" in text
    # Alice's own page shows it too (her book, the same card).
    sign_in_as(alice, site.url, "alice")
    alice.locator("#list .row-link", has_text="Walter Work").click()
    expect(alice.locator("#detail")).to_contain_text("Chief Tester")
