"""The contacts web page in a real browser (Debian's Chromium via Playwright).

One ``cardfile serve`` per module holds a book of a couple of thousand
contacts written over CardDAV, as a phone would have synced them; each test
signs in on a fresh page and does what a person does: search, open, edit and
save, meet a change made over CardDAV meanwhile, create and delete, group,
import a contacts file, export, merge duplicates and undo. What the page did
is checked over CardDAV (or the API), not only on screen.

Screenshots of the main views, at desktop (1280x800) and phone (390x844)
widths, are written to ``tests/screenshots/``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import FIXTURES, PASSWORD, USER, ServerProcess, start_server
from tests.davclient import DavClient, card

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).with_name("screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BULK = 2000
FIRST = ["Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Edsger",
         "Frances", "Donald", "Radia", "John", "Katherine", "Tim", "Hedy", "Sophie", "Emmy"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
        "Dijkstra", "Allen", "Knuth", "Perlman", "McCarthy", "Johnson", "Wilson", "Noether"]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
       "rkJggg==")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]


# -- the server, its data and the browser -----------------------------------------------
def bulk_card(i: int) -> str:
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    lines = [f"EMAIL;TYPE=INTERNET,WORK:{first.lower()}.{last.lower()}.{i}@example.org",
             f"TEL;TYPE=CELL:+49 30 {5550000 + i}"]
    if i % 40 == 0:
        lines.append("CATEGORIES:Family")
    return card(f"bulk-{i:05d}", f"{first} {last}{i:05d}", *lines)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("web"), store_config=module_store_config)
    try:
        dav = server.client()
        assert dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207

        def put(i: int) -> int:
            return DavClient(server.url, USER, PASSWORD).put(f"bulk-{i:05d}.vcf",
                                                             bulk_card(i))[0]

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(put, range(BULK))) == {201}
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Browser, site: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.set_default_timeout(15000)
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture
def dav(site: ServerProcess) -> DavClient:
    return site.client()


def sign_in(page: Page, site: ServerProcess, password: str = PASSWORD) -> None:
    page.goto(site.url + "/")
    page.get_by_label("User name").fill(USER)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if password == PASSWORD:
        expect(page.locator("#list .row").first).to_be_visible()


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(250)  # let photos and fonts settle
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def api(site: ServerProcess, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=60)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn.request(method, path, body=body, headers={"Authorization": f"Basic {token}",
                                                   **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((e) => e.offsetParent !== null && e.type !== 'hidden')
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !(e.tagName === 'BUTTON' && e.textContent.trim()))
  .map((e) => e.outerHTML.slice(0, 120))"""


def open_contact(page: Page, query: str, name: str) -> None:
    page.get_by_label("Search contacts by name, email or phone").fill(query)
    page.locator("#list .row-link", has_text=name).first.click()
    expect(page.locator("#contact-name")).to_have_text(name)


# -- the tests --------------------------------------------------------------------------
def test_sign_in_says_wrong_password_and_sign_out_forgets(page: Page, site: ServerProcess
                                                          ) -> None:
    page.goto(site.url + "/")
    shoot(page, "signin-desktop")
    sign_in(page, site, password="not the password")
    expect(page.locator("#signin-error")).to_have_text("The user name or password is wrong.")
    sign_in(page, site)
    expect(page.locator("#list-count")).to_have_text(re.compile(r"[\d,.]+ contacts"))
    assert USER not in page.url and PASSWORD not in page.url
    assert PASSWORD not in site.log()
    assert page.evaluate(UNLABELLED) == []
    # Category sidebar with counts; the virtual list keeps the DOM small.
    expect(page.locator(".category", has_text="Family")).to_contain_text("50")
    assert page.locator("#list .row").count() < 80
    shoot(page, "list-desktop")
    # The password is kept in memory only: nothing in the browser's storage, and a
    # reload asks to sign in again.
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0
    page.reload()
    expect(page.get_by_label("Password")).to_be_visible()
    sign_in(page, site)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("User name")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()


def test_search_as_you_type_scroll_and_keyboard(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    rows = page.locator("#list .row")
    # The scrollbar covers the whole book from the first answer: dragging it to the
    # end loads just the last rows (by position), not every page before them.
    total = int(re.sub(r"\D", "", page.locator("#list-count").inner_text()))
    assert total >= BULK
    assert page.locator("#list-spacer").evaluate("e => e.offsetHeight") == total * 60
    loads: list[str] = []
    page.on("request", lambda r: loads.append(r.url) if "/contacts?" in r.url else None)
    page.locator("#list").evaluate("el => el.scrollTop = el.scrollHeight")
    expect(page.locator(f"#list .row-link[data-index='{total - 1}']")).to_have_count(1)
    assert len(loads) <= 2, loads
    assert rows.count() < 80
    search = page.get_by_label("Search contacts by name, email or phone")
    search.fill("Hopper01")
    expect(page.locator("#list-count")).to_have_text(re.compile(r"^\d{1,2} contacts?$"))
    for text in rows.all_inner_texts():
        assert "hopper" in text.lower()
    search.fill("030 5550123")  # a phone number, formatted differently
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+49 30 5550123")
    search.fill("nobody-by-this-name")
    expect(page.locator(".list-empty")).to_be_visible()
    # Keyboard only: / focuses search, Down reaches the list, Enter opens a contact.
    search.fill("")
    page.locator("body").click(position={"x": 900, "y": 700})
    page.keyboard.press("/")
    page.keyboard.type("Liskov")
    expect(page.locator("#list-count")).to_have_text(re.compile(r"^1\d\d contacts$"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = rows.nth(1).locator(".row-name").inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#contact-name")).to_have_text(second)
    assert "Liskov" in second


def test_open_edit_and_save_keeps_what_the_form_does_not_show(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("edit-me.vcf", card(
        "edit-me", "Grace Brewster", "EMAIL;TYPE=WORK:grace@navy.example",
        "EMAIL;TYPE=HOME:grace@home.example", "TEL;TYPE=CELL:+1 202 555 0101",
        f"PHOTO;ENCODING=b;TYPE=PNG:{PNG}", "X-SPOUSE:Vincent",
        "item1.X-ABLABEL:_$!<Anniversary>!$_", "ADR;TYPE=HOME:;;1 Main St;Arlington;VA;22201;USA"))
    sign_in(page, site)
    open_contact(page, "Grace Brewster", "Grace Brewster")
    detail = page.locator("#detail")
    expect(detail.get_by_role("link", name="grace@navy.example")).to_have_attribute(
        "href", "mailto:grace@navy.example")
    expect(detail.get_by_role("link", name="+1 202 555 0101")).to_have_attribute(
        "href", "tel:+12025550101")
    expect(detail.locator(".avatar.large img")).to_be_visible()
    expect(detail).to_contain_text("Arlington")
    shoot(page, "contact-desktop")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    form.get_by_label("Organisation").fill("US Navy")
    form.get_by_label("Birthday", exact=True).fill("1906-12-09")  # the date picker
    form.get_by_label("Notes").fill("Found a moth, 1947.\nKept it.")
    form.get_by_role("button", name="Remove email grace@home.example").click()
    form.get_by_role("button", name="Add phone").click()
    form.get_by_label("Phone", exact=True).last.fill("+1 202 555 0199")
    form.get_by_label("Kind of phone").last.select_option("work")
    form.get_by_label("City").fill("Washington")
    form.get_by_label("New category for this contact").fill("Navy")
    assert page.evaluate(UNLABELLED) == []
    shoot(page, "edit-desktop")
    form.get_by_role("button", name="Save").click()
    expect(detail.locator("#contact-name")).to_have_text("Grace Brewster")
    expect(detail).to_contain_text("US Navy")
    expect(detail.get_by_role("link", name="+1 202 555 0199")).to_be_visible()
    _, _, text = dav.get("edit-me.vcf")
    assert "ORG:US Navy" in text and "BDAY:1906-12-09" in text
    assert "grace@home.example" not in text and "grace@navy.example" in text
    assert "+1 202 555 0199" in text and "Washington" in text
    assert "CATEGORIES:Navy" in text
    assert "Found a moth" in text and "Kept it." in text
    # Not shown in the form, kept on the card:
    assert "X-SPOUSE:Vincent" in text and "X-ABLABEL" in text and "PHOTO" in text


def test_saving_a_field_changed_over_carddav_meanwhile_shows_the_clash(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    original = card("conflict-me", "Dennis Conflict", "TITLE:Engineer")
    dav.put("conflict-me.vcf", original)
    sign_in(page, site)
    open_contact(page, "Dennis Conflict", "Dennis Conflict")
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Job title").fill("Page title")
    # Meanwhile a phone syncs a change.
    _, headers, _ = dav.get("conflict-me.vcf")
    status, _, _ = dav.put("conflict-me.vcf", original.replace("Engineer", "Phone title"),
                           if_match=headers["etag"])
    assert status in (201, 204)
    page.get_by_role("button", name="Save").click()
    alert = page.locator(".conflict")
    expect(alert).to_contain_text("Changed here and elsewhere")
    expect(alert.locator(".clash-side").first).to_contain_text("Page title")
    expect(alert.locator(".clash-side").last).to_contain_text("Phone title")
    shoot(page, "conflict-desktop")
    assert "TITLE:Phone title" in dav.get("conflict-me.vcf")[2]  # not overwritten
    # Keeping mine: saved against the current version.
    alert.get_by_role("button", name="Save my choice").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("Page title")
    assert "TITLE:Page title" in dav.get("conflict-me.vcf")[2]


def test_create_with_a_photo_and_delete_with_undo(page: Page, site: ServerProcess,
                                                  dav: DavClient, tmp_path: Path) -> None:
    picture = tmp_path / "hedy.png"
    picture.write_bytes(base64.b64decode(PNG))
    sign_in(page, site)
    page.get_by_role("button", name="New contact").click()
    form = page.locator("form.contact-form")
    form.get_by_label("Display name").fill("Hedy Newcontact")
    form.get_by_label("Given name").fill("Hedy")
    form.get_by_label("Family name").fill("Newcontact")
    form.get_by_role("button", name="Add email").click()
    form.get_by_label("Email", exact=True).fill("hedy@new.example")
    form.get_by_label("Add a picture").set_input_files(str(picture))
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#contact-name")).to_have_text("Hedy Newcontact")
    expect(page.locator("#detail .avatar.large img")).to_be_visible()
    uid = page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    status, _, stored = dav.get(f"{uid}.vcf")
    assert status == 200 and "hedy@new.example" in stored and "PHOTO" in stored
    page.get_by_role("button", name="Delete").click()
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Deleted Hedy Newcontact")
    assert dav.get(f"{uid}.vcf")[0] == 404
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator("#contact-name")).to_have_text("Hedy Newcontact")
    status, _, restored = dav.get(f"{uid}.vcf")
    assert status == 200 and "hedy@new.example" in restored and f"UID:{uid}" in restored
    page.get_by_role("button", name="Delete").click()
    expect(toast).to_contain_text("Deleted")
    toast.get_by_role("button", name="Dismiss").click()
    assert dav.get(f"{uid}.vcf")[0] == 404


def categories_of(dav: DavClient, name: str) -> str:
    match = re.search(r"^CATEGORIES:(.*)$", dav.get(name)[2], re.M)
    return match.group(1).strip() if match else ""


def test_categories_create_rename_delete_and_membership(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    for i in range(3):
        dav.put(f"club-{i}.vcf", card(f"club-{i}", f"Emmy Club{i}", f"EMAIL:emmy{i}@club.example"))
    sign_in(page, site)
    page.get_by_label("New category", exact=True).fill("Book Club")
    page.get_by_role("button", name="Add", exact=True).click()
    category = page.locator(".category", has_text="Book Club")
    expect(category).to_contain_text("0")  # an empty category is listed
    # Several at once from the list.
    page.get_by_label("Search contacts by name, email or phone").fill("Emmy Club")
    expect(page.locator("#list .row")).to_have_count(3)
    page.get_by_label("Select Emmy Club0").check()
    page.get_by_label("Select Emmy Club1").check()
    expect(page.locator("#selection-count")).to_have_text("2 selected")
    page.get_by_label("Category for the selected contacts").select_option("Book Club")
    shoot(page, "selection-desktop")
    page.get_by_role("button", name="Add to").click()
    expect(category).to_contain_text("2")
    assert categories_of(dav, "club-0.vcf") == "Book Club"
    # Click to filter.
    page.get_by_label("Search contacts by name, email or phone").fill("")
    category.click()
    expect(page.locator("#list-count")).to_have_text("2 contacts")
    # From the contact: add the third, take the first out.
    page.locator(".category", has_text="All contacts").click()
    page.get_by_label("Search contacts by name, email or phone").fill("Emmy Club2")
    page.locator("#list .row-link", has_text="Emmy Club2").click()
    page.get_by_label("Category to add this contact to").select_option("Book Club")
    page.locator("#detail").get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#detail .chip")).to_contain_text("Book Club")
    assert categories_of(dav, "club-2.vcf") == "Book Club"
    page.get_by_label("Search contacts by name, email or phone").fill("Emmy Club0")
    page.locator("#list .row-link", has_text="Emmy Club0").click()
    page.get_by_role("button", name="Remove from Book Club").click()
    expect(page.locator("#detail")).to_contain_text("In no category.")
    assert categories_of(dav, "club-0.vcf") == ""
    # Rename, then delete: the contacts stay.
    page.get_by_label("Search contacts by name, email or phone").fill("")
    page.locator(".category", has_text="Book Club").click()
    page.get_by_role("button", name="Rename category").click()
    page.get_by_label("New name").fill("Readers")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.locator(".category", has_text="Readers")).to_contain_text("2")
    expect(page.locator("#list-title")).to_have_text("Readers")
    assert categories_of(dav, "club-1.vcf") == "Readers"
    page.get_by_role("button", name="Delete category").click()
    expect(page.get_by_role("dialog")).to_contain_text("stay in your address book")
    page.get_by_role("button", name="Delete category").last.click()
    expect(page.locator(".category", has_text="Readers")).to_have_count(0)
    assert categories_of(dav, "club-1.vcf") == ""
    assert dav.get("club-1.vcf")[0] == 200


def test_import_a_contacts_file_and_see_its_contacts(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.get_by_role("link", name="Import & export").click()
    page.get_by_label("File").set_input_files(str(FIXTURES / "google.csv"))
    page.get_by_role("button", name="Import", exact=True).click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("Imported google.csv")
    expect(page.locator("#import-created")).to_have_text("2")
    shoot(page, "import-desktop")
    page.get_by_label("File").set_input_files(str(FIXTURES / "vcard3-photo-base64.vcf"))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(report).to_contain_text("Imported vcard3-photo-base64.vcf")
    expect(page.locator("#import-created")).to_have_text("1")
    page.get_by_role("link", name="Contacts", exact=True).click()
    page.get_by_label("Search contacts by name, email or phone").fill("rowing.example")
    expect(page.locator("#list .row")).to_have_count(1)
    expect(page.locator("#list")).to_contain_text("Sione Tuilagi")
    open_contact(page, "Oluwaseun", "Oluwaseun Adeyemi")
    expect(page.locator("#detail .avatar.large img")).to_be_visible()


def download(page: Page, scope: str, version: str) -> bytes:
    page.locator("#export-scope").select_option(scope)
    page.get_by_label(version).check()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    path = info.value.path()
    assert path is not None
    return Path(path).read_bytes()


def test_export_whole_book_and_one_category(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.get_by_role("link", name="Import & export").click()
    family = download(page, "Family", "vCard 4.0")
    status, expected = api(site, "GET", "/api/books/contacts/export?format=vcard4&category=Family")
    assert status == 200 and family == expected
    assert family.count(b"BEGIN:VCARD") >= 50 and b"VERSION:4.0" in family
    assert family.count(b"CATEGORIES:Family") == family.count(b"BEGIN:VCARD")
    expect(page.locator("#export-status")).to_contain_text("Downloaded contacts-Family.vcf")
    everything = download(page, "", "vCard 3.0")
    status, expected = api(site, "GET", "/api/books/contacts/export?format=vcard3")
    assert status == 200 and everything == expected
    assert everything.count(b"BEGIN:VCARD") >= BULK and b"VERSION:4.0" not in everything
    expect(page.locator("#export-status")).to_contain_text("Downloaded contacts.vcf")


def test_merge_duplicates_and_undo(page: Page, site: ServerProcess, dav: DavClient) -> None:
    a = card("twin-a", "Katherine Twin", "EMAIL:kath@twins.example", "TEL:+1 555 0100")
    b = card("twin-b", "Katherine J. Twin", "EMAIL:kath@twins.example", "ORG:NASA",
             "BDAY:1918-08-26")
    dav.put("twin-a.vcf", a)
    dav.put("twin-b.vcf", b)
    originals = {name: dav.get(name)[2] for name in ("twin-a.vcf", "twin-b.vcf")}
    sign_in(page, site)
    page.get_by_role("link", name="Duplicates").click()
    cluster = page.get_by_role("region", name=re.compile("Katherine"))
    expect(cluster.locator(".dup-person")).to_have_count(2)
    expect(cluster).to_contain_text("NASA")
    expect(cluster).to_contain_text("+1 555 0100")
    shoot(page, "duplicates-desktop")
    cluster.get_by_role("button", name="Merge 2 contacts").click()
    expect(page.locator("#toast")).to_contain_text("Merged")
    hrefs = [h for h in dav.etags() if "twin-" in h]
    assert len(hrefs) == 1
    merged = dav.get(hrefs[0].rsplit("/", 1)[1])[2]
    assert "NASA" in merged and "+1 555 0100" in merged
    expect(page.get_by_role("region", name=re.compile("Katherine"))).to_have_count(0)
    page.locator("#toast").get_by_role("button", name="Undo").click()
    expect(page.locator("#toast")).to_contain_text("undone")
    for name, text in originals.items():
        assert dav.get(name)[2] == text  # byte for byte
    expect(page.get_by_role("region", name=re.compile("Katherine"))).to_have_count(1)


def test_set_up_a_device_shows_the_address_and_a_qr_code_only_where_a_phone_reaches(
        page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.get_by_role("link", name="Set up a device").click()
    expect(page.locator("#device-base")).to_have_text(site.url + "/")
    expect(page.locator("#device-book")).to_have_text(f"{site.url}/{USER}/contacts/")
    # Open at 127.0.0.1: a phone cannot reach it, so no code, and how to get one.
    expect(page.locator("#device-warning")).to_contain_text("loopback")
    expect(page.locator("#device-warning")).to_contain_text("--host 0.0.0.0")
    expect(page.locator("#device-qr svg")).to_have_count(0)
    expect(page.locator("figure.qr")).to_be_hidden()
    shoot(page, "device-desktop")
    reachable = page.evaluate("""async () => {
        const { reachable } = await import('./.web/pages.js');
        return ['127.0.0.1', 'localhost', '[::1]', 'app.localhost', '0.0.0.0', '127.1.2.3',
                '192.168.1.20', 'pc.fritz.box', '[fd00::1]', 'contacts.example.org']
          .map((h) => reachable(h));
    }""")
    assert reachable == [False] * 6 + [True] * 4


def test_the_qr_code_is_shown_at_an_address_a_phone_can_reach(browser: Browser, tmp_path: Path
                                                              ) -> None:
    """The page opened at a network name (a name mapped to this machine for the test,
    which the server is told to answer to) shows the code of that address."""
    server = start_server(tmp_path, extra_config="[server]\nallowed_hosts = cardfile.test\n")
    try:
        assert server.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
        # A second Chromium of the same Playwright, told that cardfile.test is this machine.
        chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--host-resolver-rules=MAP cardfile.test 127.0.0.1"])
        try:
            page = chromium.new_page(viewport=DESKTOP)
            url = f"http://cardfile.test:{server.port}/"
            page.goto(url)
            page.get_by_label("User name").fill(USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("link", name="Set up a device").click()
            qr = page.get_by_role("img", name=f"QR code of {url}")
            expect(qr).to_be_visible()
            assert qr.evaluate("svg => svg.viewBox.baseVal.width") >= 29  # 21 modules + zone
            expect(page.locator("#device-warning")).to_be_hidden()
            shoot(page, "device-reachable-desktop")
        finally:
            chromium.close()
    finally:
        server.stop()


def test_phone_sized_screens(browser: Browser, site: ServerProcess, dav: DavClient) -> None:
    dav.put("phone-view.vcf", card("phone-view", "Radia Phoneview", "EMAIL:radia@example.org",
                                   "TEL;TYPE=CELL:+1 555 0142", "ORG:DEC",
                                   "ADR;TYPE=WORK:;;1 Network Way;Maynard;MA;01754;USA",
                                   "NOTE:Spanning tree.", "CATEGORIES:Family"))
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(site.url + "/")
        shoot(page, "signin-phone")
        sign_in(page, site)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "no sideways scrolling"
        shoot(page, "list-phone")
        page.get_by_role("button", name="Show categories and pages").click()
        expect(page.locator("#sidebar")).to_be_in_viewport()
        shoot(page, "menu-phone")
        page.keyboard.press("Escape")
        open_contact(page, "Phoneview", "Radia Phoneview")
        expect(page.locator("#list")).to_be_hidden()  # the card takes the screen
        shoot(page, "contact-phone")
        page.get_by_role("button", name="Edit").click()
        shoot(page, "edit-phone")
        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name="‹ Back").click()
        expect(page.locator("#list .row").first).to_be_visible()
        page.goto(site.url + "/#/duplicates")
        expect(page.locator("#dup-status")).not_to_be_empty()
        shoot(page, "duplicates-phone")
        page.goto(site.url + "/#/transfer")
        shoot(page, "import-phone")
        page.goto(site.url + "/#/device")
        expect(page.locator("#device-warning")).to_be_visible()
        shoot(page, "device-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


def test_page_files_are_served_safely_and_carddav_is_untouched(site: ServerProcess) -> None:
    def fetch(path: str, method: str = "GET", headers: dict[str, str] | None = None
              ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    status, headers, body = fetch("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    types: dict[str, Any] = {"/.web/app.js": "text/javascript", "/.web/style.css": "text/css",
                             "/.web/icon.svg": "image/svg+xml",
                             "/.web/qrcode-generator.mjs": "text/javascript"}
    for path, kind in types.items():
        status, headers, _ = fetch(path)
        assert status == 200 and headers["content-type"].startswith(kind), path
        assert headers["cache-control"] == "no-cache" and headers["etag"]
        assert fetch(path, headers={"If-None-Match": headers["etag"]})[0] == 304
    for path in ("/.web/", "/.web/nope.js", "/.web/..%2Fhtpasswd", "/.web/.hidden.js",
                 "/.web/__init__.py"):
        assert fetch(path)[0] in (400, 404), path  # a dot segment is refused before routing
    assert fetch("/.web/app.js", "PUT")[0] == 405
    # Nothing is fetched from elsewhere at run time.
    folder = Path(__file__).resolve().parents[1] / "plugin" / "web"
    for file in folder.iterdir():
        if file.suffix in (".html", ".css", ".js", ".mjs"):
            text = file.read_text()
            assert not re.search(r"""(src|href|import|from|url)\s*[=(]?\s*["']?https?://""",
                                 text, re.I), file
    # CardDAV and the API are where they were: discovery on / is still Radicale's.
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    status, _, body = fetch("/", "PROPFIND", {"Authorization": f"Basic {token}", "Depth": "0"})
    assert status == 207 and b"current-user-principal" in body
    assert fetch("/", "OPTIONS")[0] != 405
    assert fetch("/.well-known/carddav", "PROPFIND")[0] in (301, 302, 401, 207)
    assert fetch(f"/{USER}/contacts/", "PROPFIND",
                 {"Authorization": f"Basic {token}", "Depth": "0"})[0] == 207
    assert fetch("/api/openapi.json")[0] == 200


def test_merge_api_refuses_an_undo_that_would_lose_a_later_change(
        site: ServerProcess, dav: DavClient) -> None:
    dav.put("pair-a.vcf", card("pair-a", "Tim Pair", "EMAIL:tim@pair.example"))
    dav.put("pair-b.vcf", card("pair-b", "Tim B. Pair", "EMAIL:tim@pair.example", "ORG:CERN"))
    status, body = api(site, "GET", "/api/books/contacts/duplicates")
    assert status == 200
    cluster = next(c for c in json.loads(body)["items"] if "pair-a" in c["ids"])
    assert cluster["sure"] and len(cluster["contacts"]) == 2
    assert api(site, "POST", "/api/books/contacts/merges", b'{"ids": ["pair-a"]}',
               {"Content-Type": "application/json"})[0] == 422
    status, body = api(site, "POST", "/api/books/contacts/merges",
                       json.dumps({"ids": cluster["ids"]}).encode(),
                       {"Content-Type": "application/json"})
    assert status == 201
    merge = json.loads(body)
    assert sorted(merge["originals"]) == ["pair-a", "pair-b"]
    listed = json.loads(api(site, "GET", "/api/books/contacts/merges")[1])["items"]
    assert merge["id"] in [m["id"] for m in listed]
    # The merged contact changes afterwards: undo would lose that, so 409 unless forced.
    survivor = f"{merge['survivor']}.vcf"
    _, headers, text = dav.get(survivor)
    dav.put(survivor, text.replace("END:VCARD", "NOTE:later\r\nEND:VCARD"),
            if_match=headers["etag"])
    assert api(site, "DELETE", merge["url"])[0] == 409
    status, body = api(site, "DELETE", merge["url"] + "?force=true")
    assert status == 200 and sorted(json.loads(body)["restored"]) == ["pair-a", "pair-b"]
    assert api(site, "DELETE", merge["url"])[0] == 404  # undone already
    assert api(site, "GET", "/api/books/contacts/merges/..%2F..")[0] == 404
