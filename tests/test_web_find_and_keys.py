"""The web page finds people however their names are typed and works without a mouse (issue 13).

In Debian's Chromium against a real ``cardfile serve``: accent-free search,
Unicode sort by first or last name, the A-Z index and a scrollbar for the
whole book; the list is one Tab stop, Enter opens a contact and moves the
focus there, Escape returns; focus is placed after sign-in and after every
dialog; the phone menu keeps the focus; the focus ring has 3:1 contrast;
axe-core (the npm package, installed by the fixture below) finds nothing on
any view; search, category and order live in the URL; several contacts can be
selected (all, or a shift-click range) and exported or deleted with undo.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import DavClient, card
from tests.test_web import CHROMIUM, DESKTOP, PHONE, shoot, sign_in
from tests.test_web_fields import png

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]

#: axe-core from the npm registry, pinned by tests/axe/package-lock.json, installed once
#: with `npm ci` into a cache folder (CARDFILE_TEST_CACHE, else ~/.cache/cardfile-tests).
AXE_SPEC = Path(__file__).with_name("axe")
CACHE = Path(os.environ.get("CARDFILE_TEST_CACHE") or Path.home() / ".cache" / "cardfile-tests")

NAMES = ["Zoë Müller", "Zoe Muller", "Jürgen Klopp", "Édouard Manet", "Łukasz Nowak",
         "Lars Larsen", "Mona Lisa", "Ada Lovelace", "Zack Zimmer", "Emil Nolde",
         "Øyvind Berg", "Ölaf Olsen"]


@pytest.fixture(scope="session")
def axe_source() -> str:
    lock = (AXE_SPEC / "package-lock.json").read_bytes()
    folder = CACHE / f"axe-{hashlib.sha256(lock).hexdigest()[:12]}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI"):
                pytest.fail("npm is needed to install axe-core for the accessibility tests")
            pytest.skip("npm is not installed: axe-core (tests/axe/package.json) cannot be "
                        "installed")
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(AXE_SPEC / name, folder / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder,
                       check=True, timeout=600, capture_output=True)
    return script.read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("web-find"), store_config=module_store_config)
    try:
        dav = server.client()
        assert dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
        for i, name in enumerate(NAMES):
            extra = ["CATEGORIES:Named" + (",Painters" if name in ("Édouard Manet", "Emil Nolde")
                                           else "")]
            assert dav.put(f"name-{i:02d}.vcf", card(f"name-{i:02d}", name,
                                                     f"EMAIL:person{i}@example.org",
                                                     *extra))[0] == 201
        for i in range(150):
            assert dav.put(f"bulk-{i:03d}.vcf", card(
                f"bulk-{i:03d}", f"{'BCDFGHKPRSTVW'[i % 13]}ulk Person{i:03d}",
                f"EMAIL:bulk{i}@example.org"))[0] == 201
        yield server
    finally:
        server.stop()


def new_page(browser: Browser, viewport: dict[str, int] = DESKTOP, **options: Any) -> Page:
    # bypass_csp: only so that the test can add axe-core's script to the page.
    context = browser.new_context(viewport=viewport, bypass_csp=True, accept_downloads=True,
                                  **options)
    tab = context.new_page()
    tab.set_default_timeout(15000)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors  # type: ignore[attr-defined]
    return tab


@pytest.fixture
def page(browser: Browser, site: ServerProcess) -> Iterator[Page]:
    tab = new_page(browser)
    yield tab
    errors = tab.errors  # type: ignore[attr-defined]
    tab.context.close()
    assert not errors, errors


@pytest.fixture
def dav(site: ServerProcess) -> DavClient:
    return site.client()


def row_names(page: Page) -> list[str]:
    """The names of the rendered rows, in list order."""
    return page.evaluate("""() => [...document.querySelectorAll('#list .row-link')]
        .sort((a, b) => a.dataset.index - b.dataset.index)
        .map((a) => a.querySelector('.row-name').textContent)""")


def sign_in_here(page: Page) -> None:
    """Sign in on the page as it is (its URL, with its state, kept)."""
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()


def search(page: Page, text: str) -> None:
    page.get_by_label("Search contacts by name, email or phone").fill(text)


# -- finding ----------------------------------------------------------------------------
def test_search_finds_names_however_they_are_typed(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    search(page, "Zoe Muller")
    expect(page.locator("#list-count")).to_have_text("2 contacts")
    assert sorted(row_names(page)) == ["Zoe Muller", "Zoë Müller"]
    search(page, "jurgen")
    expect(page.locator("#list .row-name")).to_have_text(["Jürgen Klopp"])
    search(page, "LUKASZ")
    expect(page.locator("#list .row-name")).to_have_text(["Łukasz Nowak"])
    search(page, "PERSON2@example.org")  # an email: its owner, not phone digits
    expect(page.locator("#list .row-name")).to_have_text(["Jürgen Klopp"])


def test_sorting_by_first_or_last_name_follows_the_unicode_collation(
        page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.locator(".category", has_text="Named").click()
    expect(page.locator("#list-count")).to_have_text(f"{len(NAMES)} contacts")
    expect(page.locator("#list .row-name").first).to_have_text("Ada Lovelace")
    names = row_names(page)
    assert names.index("Édouard Manet") < names.index("Emil Nolde") < names.index("Jürgen Klopp")
    assert names.index("Lars Larsen") < names.index("Łukasz Nowak") < names.index("Mona Lisa")
    assert names.index("Ölaf Olsen") < names.index("Øyvind Berg")
    page.get_by_label("Sort by").select_option("family")
    expect(page.locator("#list .row-name").first).to_have_text("Berg, Øyvind")
    names = row_names(page)
    assert names.index("Klopp, Jürgen") < names.index("Larsen, Lars")
    assert names.index("Lovelace, Ada") < names.index("Manet, Édouard")
    assert "sort=family" in page.url


def test_the_a_to_z_index_jumps_and_the_scrollbar_covers_the_book(
        page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    total = len(NAMES) + 150
    expect(page.locator("#list-count")).to_have_text(f"{total} contacts")
    assert page.locator("#list-spacer").evaluate("e => e.offsetHeight") == total * 60
    letters = page.get_by_role("navigation", name="Jump to a letter")
    expect(letters.get_by_role("button", name=re.compile(r"^L: \d+ contacts?$"))).to_have_count(1)
    letters.get_by_role("button", name=re.compile(r"^L: ")).click()
    focused = page.locator("#list .row-link:focus .row-name")
    expect(focused).to_have_text("Lars Larsen")
    page.keyboard.press("ArrowDown")
    expect(focused).to_have_text("Łukasz Nowak")  # Ł is under L, not after Z
    shoot(page, "letters-desktop")
    letters.get_by_role("button", name=re.compile(r"^Z: ")).click()
    expect(focused).to_have_text("Zack Zimmer")
    # Typing a letter in the list jumps there too (the keyboard's A-Z index).
    page.keyboard.press("e")
    expect(focused).to_have_text("Édouard Manet")


def test_search_category_and_order_are_in_the_url(browser: Browser, site: ServerProcess
                                                  ) -> None:
    page = new_page(browser)
    try:
        sign_in(page, site)
        page.locator(".category", has_text="Painters").click()
        page.get_by_label("Sort by").select_option("family")
        search(page, "emil")
        expect(page.locator("#list .row-name")).to_have_text(["Nolde, Emil"])
        page.locator("#list .row-link").first.click()
        expect(page.locator("#contact-name")).to_have_text("Emil Nolde")
        assert re.search(r"#/contacts/name-09\?.*q=emil", page.url)
        assert "category=Painters" in page.url and "sort=family" in page.url
        page.reload()
        sign_in_here(page)
        expect(page.locator("#list-title")).to_have_text("Painters")
        expect(page.get_by_label("Search contacts by name, email or phone")).to_have_value("emil")
        expect(page.locator("#list .row-name")).to_have_text(["Nolde, Emil"])
        expect(page.locator("#contact-name")).to_have_text("Emil Nolde")
    finally:
        page.context.close()


# -- keyboard and focus -----------------------------------------------------------------
def test_the_list_is_one_tab_stop_enter_opens_escape_returns(page: Page, site: ServerProcess
                                                              ) -> None:
    page.goto(site.url + "/")
    expect(page.get_by_label("User name")).to_be_focused()
    sign_in(page, site)
    expect(page.get_by_label("Search contacts by name, email or phone")).to_be_focused()
    search(page, "Lovelace")
    expect(page.locator("#list .row")).to_have_count(1)
    page.keyboard.press("ArrowDown")
    row = page.locator("#list .row-link", has_text="Ada Lovelace")
    expect(row).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#contact-name")).to_be_focused()
    expect(page.locator("#contact-name")).to_have_text("Ada Lovelace")
    page.keyboard.press("Escape")
    expect(row).to_be_focused()
    # One Tab stop: Tab leaves the list straight for the contact's Edit button.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Edit")).to_be_focused()
    search(page, "")
    expect(page.locator("#list-count")).to_have_text(re.compile("16[0-9] contacts"))
    page.locator("#list .row-link").first.focus()
    tabbable = page.evaluate("""() => [...document.querySelectorAll('#list a, #list input')]
        .filter((e) => e.tabIndex >= 0).length""")
    assert tabbable == 1
    for _ in range(3):
        page.keyboard.press("PageDown")
    page.keyboard.press("Tab")
    assert page.evaluate("document.getElementById('list').contains(document.activeElement)") \
        is False
    # Space selects the focused row; Shift+Down extends the selection.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    expect(page.locator("#selection-count")).to_have_text("3 selected")


def test_focus_is_placed_after_every_dialog_and_form(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.locator(".category", has_text="Painters").click()
    page.get_by_role("button", name="Delete category").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Delete category")).to_be_focused()
    page.get_by_role("button", name="Rename category").click()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="Rename category")).to_be_focused()
    page.locator("#list .row-link").first.click()
    page.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Display name")).to_be_focused()
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="Edit")).to_be_focused()
    page.get_by_role("button", name="New contact").click()
    page.keyboard.press("Escape")  # Escape in an untouched form cancels it
    expect(page.locator("#list .row-link[tabindex='0']")).to_be_focused()


def test_the_phone_menu_keeps_the_focus_until_closed(browser: Browser, site: ServerProcess
                                                     ) -> None:
    page = new_page(browser, PHONE, is_mobile=True, has_touch=True)
    try:
        sign_in(page, site)
        page.get_by_role("button", name="Show categories and pages").click()
        expect(page.get_by_role("button", name="Close menu")).to_be_focused()
        for _ in range(25):
            page.keyboard.press("Tab")
            assert page.evaluate("document.getElementById('sidebar')"
                                 ".contains(document.activeElement)")
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.getElementById('sidebar').contains(document.activeElement)")
        assert page.locator("#main").evaluate("e => e.inert") is True
        page.keyboard.press("Escape")
        expect(page.get_by_role("button", name="Show categories and pages")).to_be_focused()
        assert page.locator("#main").evaluate("e => e.inert") is False
    finally:
        page.context.close()


CONTRAST = """(element) => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const style = getComputedStyle(element);
  let node = element.parentElement, bg = 'rgb(255, 255, 255)';
  while (node) {
    const c = getComputedStyle(node).backgroundColor;
    if (c && !c.startsWith('rgba(0, 0, 0, 0)') && c !== 'transparent') { bg = c; break; }
    node = node.parentElement;
  }
  const [a, b] = [lum(rgb(style.outlineColor)), lum(rgb(bg))].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), width: parseFloat(style.outlineWidth),
          style: style.outlineStyle};
}"""


def test_the_focus_ring_has_3_to_1_contrast(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.keyboard.press("Tab")  # keyboard focus: :focus-visible applies
    for selector in ("#signout", "#new-contact", "#sort-order", "#list .row-link"):
        page.locator(selector).first.focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        ring = page.locator(selector).first.evaluate(CONTRAST)
        assert ring["style"] != "none" and ring["width"] >= 2, (selector, ring)
        assert ring["ratio"] >= 3, (selector, ring)


# -- several at once ------------------------------------------------------------------
def test_select_all_range_select_bulk_export_and_delete_with_undo(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    for i in range(4):
        dav.put(f"batch-{i}.vcf", card(f"batch-{i}", f"Batch Member{i}", f"EMAIL:b{i}@x.example"))
    sign_in(page, site)
    expect(page.locator("#selection-bar")).to_be_hidden()  # nothing selected: no bar
    search(page, "Batch Member")
    expect(page.locator("#list .row")).to_have_count(4)
    page.get_by_label("Select Batch Member0").click()
    page.get_by_label("Select Batch Member2").click(modifiers=["Shift"])  # a range
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    expect(page.get_by_label("Category for the selected contacts")).to_have_value("")
    with page.expect_download() as info:
        page.get_by_role("button", name="Export", exact=True).click()
    path = info.value.path()
    assert path is not None
    exported = Path(path).read_text()
    assert exported.count("BEGIN:VCARD") == 3 and "UID:batch-1" in exported
    shoot(page, "selection-desktop")
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_contain_text("Deleted 3 contacts")
    assert [dav.get(f"batch-{i}.vcf")[0] for i in range(4)] == [404, 404, 404, 200]
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(page.locator("#toast")).to_contain_text("3 contacts back")
    assert [dav.get(f"batch-{i}.vcf")[0] for i in range(4)] == [200, 200, 200, 200]
    search(page, "")
    expect(page.locator("#list-count")).to_have_text(f"{len(NAMES) + 154} contacts")
    page.get_by_role("button", name="Select all").click()
    expect(page.locator("#selection-count")).to_have_text(f"{len(NAMES) + 154} selected")
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#selection-bar")).to_be_hidden()


# -- axe-core on every view ------------------------------------------------------------
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' '))}));
}"""


def axe(page: Page, source: str, view: str) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=source)
    page.wait_for_timeout(300)  # transitions and photos settle
    return [{"view": view, **v} for v in page.evaluate(AXE_RUN)]


def test_axe_finds_no_violation_on_any_view(browser: Browser, site: ServerProcess,
                                            dav: DavClient, axe_source: str) -> None:
    dav.put("axe-1.vcf", card("axe-1", "Axel Access", "EMAIL:axel@example.org",
                              "TEL;TYPE=CELL:+1 555 0100", "ADR;TYPE=HOME:;;1 Road;Town;;1;X",
                              "NOTE:<b>not bold</b>", "CATEGORIES:Painters",
                              "IMPP;X-SERVICE-TYPE=Skype:skype:axel", "X-JABBER:axel@jabber.org",
                              "item1.X-ABRELATEDNAMES:Ada Access", "item1.X-ABLabel:_$!<Spouse>!$_",
                              "item2.X-ABDATE:2001-02-03", "item2.X-ABLabel:First met"))
    found: list[dict[str, Any]] = []
    page = new_page(browser)
    try:
        page.goto(site.url + "/")
        found += axe(page, axe_source, "sign-in")
        sign_in(page, site)
        found += axe(page, axe_source, "list")
        search(page, "Axel")
        expect(page.locator("#list .row")).to_have_count(1)
        page.locator("#list .row-link").first.click()
        expect(page.locator("#contact-name")).to_have_text("Axel Access")
        found += axe(page, axe_source, "contact")
        page.get_by_label("Select Axel Access").click()
        found += axe(page, axe_source, "selection")
        page.get_by_role("button", name="Edit").click()
        found += axe(page, axe_source, "edit form")
        # The new entries' empty rows and the photo cropper.
        for what in ("instant messaging", "related person", "date"):
            page.get_by_role("button", name=f"Add {what}").click()
        page.locator("form.contact-form input[type=file]").set_input_files(
            files=[{"name": "p.png", "mimeType": "image/png", "buffer": png(60, 40, 20)}])
        expect(page.get_by_label("Crop size (percent of the picture)")).to_be_visible()
        found += axe(page, axe_source, "edit form with new entries and the photo cropper")
        page.get_by_label("Job title").fill("changed")
        page.get_by_role("button", name="New contact").click()
        expect(page.locator("#leave-dialog")).to_be_visible()
        found += axe(page, axe_source, "leave dialog")
        page.get_by_role("button", name="Discard").click()
        for name, view in (("Duplicates", "duplicates"), ("Import & export", "transfer"),
                           ("Set up a device", "device")):
            page.get_by_role("link", name=name).click()
            found += axe(page, axe_source, view)
        # Devices & apps and Friends & sharing, once their lists are in (test_web_sharing.py
        # and test_web_shares.py check them filled: a new password shown, invitations, a
        # friend, shares offered and accepted, a shared book, the end dialogs).
        page.get_by_role("link", name="Devices & apps").click()
        expect(page.locator("#tokens-status")).to_have_text("No API tokens yet.")
        found += axe(page, axe_source, "devices")
        page.get_by_role("link", name="Friends & sharing").click()
        expect(page.locator("#friends")).to_contain_text("No friends yet")
        expect(page.locator("#shares-now")).to_contain_text("Nothing is shared yet.")
        expect(page.locator("#share-category option")).not_to_have_count(1)  # its categories in
        found += axe(page, axe_source, "friends and shares")
    finally:
        page.context.close()
    phone = new_page(browser, PHONE, is_mobile=True, has_touch=True)
    try:
        sign_in(phone, site)
        found += axe(phone, axe_source, "phone list")
        phone.get_by_role("button", name="Show categories and pages").click()
        found += axe(phone, axe_source, "phone menu")
    finally:
        phone.context.close()
    assert found == []
