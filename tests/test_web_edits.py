"""The web page never loses an edit and changes only what the user changed (issue 13).

In Debian's Chromium against a real ``cardfile serve``: a multi-line street
with its Apple group survives saving only a job title; labels are shown and
editable; a save that changes nothing sends nothing; two tabs editing
different fields both keep their work, and a real clash shows both values
side by side; leaving an edited form asks (Save / Discard / Keep editing),
closing the tab warns, and a draft survives a reload (never the password).
What the page did is checked over CardDAV, not only on screen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import DavClient, card
from tests.test_web import CHROMIUM, DESKTOP, UNLABELLED, shoot, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not __import__("os").path.exists(CHROMIUM) and not __import__("os").environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]

STREET = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\nN:{family};{given};;;\r\n"
          "item1.ADR;type=HOME;type=pref:;;Unit 4\\nBuilding B\\n12 Long Road;Leeds;;LS1 4AP;"
          "UK\r\n"
          "item1.X-ABADR:gb\r\n"
          "item2.TEL;type=CELL;type=VOICE;type=pref:+44 7700 900123\r\n"
          "item2.X-ABLabel:_$!<Mobile>!$_\r\n"
          "TEL;TYPE=WORK:+44 113 496 0000\r\n"
          "X-UNKNOWN-THING;X-P=1:kept\r\nEND:VCARD\r\n")


def street_card(uid: str, fn: str) -> str:
    given, family = fn.split(" ", 1)
    return STREET.format(uid=uid, fn=fn, given=given, family=family)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("web-edits"), store_config=module_store_config)
    try:
        dav = server.client()
        assert dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
        for i in range(60):
            assert dav.put(f"filler-{i:03d}.vcf", card(f"filler-{i:03d}", f"Filler Person{i:03d}",
                                                      f"EMAIL:f{i}@example.org"))[0] == 201
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser: Browser, site: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
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


def open_contact(page: Page, query: str, name: str) -> None:
    page.get_by_label("Search contacts by name, email or phone").fill(query)
    page.locator("#list .row-link", has_text=name).first.click()
    expect(page.locator("#contact-name")).to_have_text(name)


def writes(page: Page) -> list[str]:
    """Record the page's writing requests (PATCH, PUT, POST, DELETE) from now on."""
    found: list[str] = []
    page.on("request", lambda r: found.append(f"{r.method} {r.url}")
            if r.method in ("PATCH", "PUT", "POST", "DELETE") else None)
    return found


def test_saving_only_a_job_title_keeps_a_multiline_street_its_group_and_labels(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    text = street_card("street-1", "Wendy Street")
    dav.put("street-1.vcf", text)
    sign_in(page, site)
    open_contact(page, "Wendy Street", "Wendy Street")
    detail = page.locator("#detail")
    expect(detail.locator("address")).to_contain_text("Building B")
    expect(detail.locator(".values li", has_text="+44 7700 900123")).to_contain_text("Mobile")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    street = form.get_by_label("Street")
    expect(street).to_have_value("Unit 4\nBuilding B\n12 Long Road")  # a textarea: lines kept
    assert street.evaluate("e => e.tagName") == "TEXTAREA"
    expect(form.get_by_label("Label of phone +44 7700 900123")).to_have_value("Mobile")
    form.get_by_label("Job title").fill("Site manager")
    shoot(page, "edit-labels-desktop")
    form.get_by_role("button", name="Save").click()
    expect(detail.locator("#contact-name")).to_be_focused()
    expect(detail).to_contain_text("Site manager")
    stored = dav.get("street-1.vcf")[2]
    assert stored == text.replace("END:VCARD", "TITLE:Site manager\r\nEND:VCARD")


def test_labels_are_editable_and_editing_a_phone_keeps_its_label(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("street-2.vcf", street_card("street-2", "Lena Labels"))
    sign_in(page, site)
    open_contact(page, "Lena Labels", "Lena Labels")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    form.get_by_label("Phone", exact=True).first.fill("+44 7700 900124")
    form.get_by_label("Label of phone +44 113 496 0000").fill("Front desk")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#detail .values li", has_text="+44 113 496 0000")).to_contain_text(
        "Front desk")
    stored = dav.get("street-2.vcf")[2]
    assert "item2.TEL;TYPE=CELL,VOICE,PREF:+44 7700 900124\r\nitem2.X-ABLabel:_$!<Mobile>!$_" \
        in stored
    assert "item3.TEL;TYPE=WORK:+44 113 496 0000\r\nitem3.X-ABLabel:Front desk\r\n" in stored
    assert "item1.X-ABADR:gb" in stored and "X-UNKNOWN-THING;X-P=1:kept" in stored
    assert "Unit 4\\nBuilding B\\n12 Long Road" in stored


def test_a_save_that_changes_nothing_writes_nothing(page: Page, site: ServerProcess,
                                                   dav: DavClient) -> None:
    dav.put("same-1.vcf", street_card("same-1", "Sam Same"))
    before = dav.get("same-1.vcf")
    sign_in(page, site)
    open_contact(page, "Sam Same", "Sam Same")
    sent = writes(page)
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#toast")).to_contain_text("Saved.")
    assert sent == []
    after = dav.get("same-1.vcf")
    assert after[2] == before[2]  # the same text, the same ETag, not even touched
    assert (after[1]["etag"], after[1]["last-modified"]) == (before[1]["etag"],
                                                             before[1]["last-modified"])


def two_tabs(browser: Browser, site: ServerProcess, name: str) -> tuple[Page, Page]:
    tabs = []
    for _ in range(2):
        tab = browser.new_context(viewport=DESKTOP).new_page()
        tab.set_default_timeout(15000)
        sign_in(tab, site)
        open_contact(tab, name, name)
        tab.get_by_role("button", name="Edit").click()
        tabs.append(tab)
    return tabs[0], tabs[1]


def test_two_tabs_editing_different_fields_both_keep_their_work(
        browser: Browser, site: ServerProcess, dav: DavClient) -> None:
    """The issue: tab A edits the job title, tab B the organisation."""
    dav.put("tabs-1.vcf", street_card("tabs-1", "Tess Tabs"))
    a, b = two_tabs(browser, site, "Tess Tabs")
    try:
        a.get_by_label("Job title").fill("Title from A")
        a.get_by_role("button", name="Save").click()
        expect(a.locator("#detail")).to_contain_text("Title from A")
        b.get_by_label("Organisation").fill("Org from B")
        b.get_by_role("button", name="Save").click()
        expect(b.locator("#toast")).to_contain_text("together with the changes made elsewhere")
        expect(b.locator("#detail .contact-card")).to_contain_text("Title from A")
        expect(b.locator("#detail .contact-card")).to_contain_text("Org from B")
        stored = dav.get("tabs-1.vcf")[2]
        assert "TITLE:Title from A" in stored and "ORG:Org from B" in stored
        assert "item2.X-ABLabel:_$!<Mobile>!$_" in stored
    finally:
        a.context.close()
        b.context.close()


def test_a_real_clash_shows_both_values_side_by_side(browser: Browser, site: ServerProcess,
                                                     dav: DavClient) -> None:
    dav.put("tabs-2.vcf", street_card("tabs-2", "Cleo Clash"))
    a, b = two_tabs(browser, site, "Cleo Clash")
    try:
        a.get_by_label("Job title").fill("Engineer")
        a.get_by_role("button", name="Save").click()
        expect(a.locator("#detail")).to_contain_text("Engineer")
        b.get_by_label("Job title").fill("Architect")
        b.get_by_label("Organisation").fill("Clash Ltd")
        b.get_by_role("button", name="Save").click()
        clash = b.locator(".conflict")
        expect(clash).to_contain_text("Changed here and elsewhere")
        job = clash.locator("fieldset.clash", has_text="Job title")
        expect(job.locator(".clash-side").first).to_contain_text("Architect")
        expect(job.locator(".clash-side").last).to_contain_text("Engineer")
        expect(clash.locator("fieldset.clash")).to_have_count(1)  # the organisation merged
        expect(b.get_by_label("Job title")).to_have_value("Architect")  # the typing is kept
        shoot(b, "clash-desktop")
        assert "TITLE:Engineer" in dav.get("tabs-2.vcf")[2]  # nothing overwritten yet
        job.get_by_label("Changed elsewhere").check()
        clash.get_by_role("button", name="Save my choice").click()
        expect(b.locator("#detail .contact-card")).to_contain_text("Clash Ltd")
        stored = dav.get("tabs-2.vcf")[2]
        assert "TITLE:Engineer" in stored and "ORG:Clash Ltd" in stored
    finally:
        a.context.close()
        b.context.close()


def test_leaving_an_edited_form_asks_save_discard_or_keep_editing(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("leave-1.vcf", card("leave-1", "Lea Leaving", "TITLE:Before"))
    sign_in(page, site)
    open_contact(page, "Lea Leaving", "Lea Leaving")
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Job title").fill("Typed, not saved")
    dialog = page.locator("#leave-dialog")
    # Another contact: asked; Keep editing keeps the form and the typing.
    page.get_by_label("Search contacts by name, email or phone").fill("Filler Person001")
    page.locator("#list .row-link", has_text="Filler Person001").click()
    expect(dialog).to_be_visible()
    expect(page.get_by_role("button", name="Save", exact=True).last).to_be_focused()
    shoot(page, "leave-dialog-desktop")
    page.get_by_role("button", name="Keep editing").click()
    expect(page.get_by_label("Job title")).to_have_value("Typed, not saved")
    assert "leave-1" in page.url
    # New contact and Cancel ask too; Discard throws the typing away.
    page.get_by_role("button", name="New contact").click()
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Keep editing").click()
    page.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Discard").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("Before")
    expect(page.get_by_role("button", name="Edit")).to_be_focused()
    assert "TITLE:Before" in dav.get("leave-1.vcf")[2]
    # Save from the dialog: saved, then the other contact opens.
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Job title").fill("Saved on leaving")
    page.locator("#list .row-link", has_text="Filler Person001").click()
    page.locator("#leave-save").click()
    expect(page.locator("#contact-name")).to_have_text("Filler Person001")
    assert "TITLE:Saved on leaving" in dav.get("leave-1.vcf")[2]


def test_a_draft_survives_a_reload_and_closing_warns(page: Page, site: ServerProcess,
                                                     dav: DavClient) -> None:
    dav.put("draft-1.vcf", card("draft-1", "Dora Draft", "TITLE:Old title", "NOTE:one"))
    sign_in(page, site)
    open_contact(page, "Dora Draft", "Dora Draft")
    page.get_by_role("button", name="Edit").click()
    page.get_by_label("Job title").fill("Draft title")
    page.get_by_label("Notes").fill("first line\nsecond line")
    page.wait_for_timeout(400)  # the draft is written a moment after typing
    stored = page.evaluate("JSON.stringify(Object.assign({}, sessionStorage, localStorage))")
    assert "Draft title" in stored and PASSWORD not in stored
    assert "Basic " not in stored
    kinds: list[str] = []

    def answer(dialog: object) -> None:
        kinds.append(dialog.type)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", answer)
    page.reload()
    assert kinds == ["beforeunload"]  # the browser warned before the reload
    sign_in(page, site)
    form = page.locator("form.contact-form")
    expect(form).to_contain_text("Your unsaved changes from before are back")
    expect(form.get_by_label("Job title")).to_have_value("Draft title")
    expect(form.get_by_label("Notes")).to_have_value("first line\nsecond line")
    # Meanwhile a phone changed another field: saving the draft merges with it.
    _, headers, text = dav.get("draft-1.vcf")
    dav.put("draft-1.vcf", text.replace("END:VCARD", "ORG:Phone Org\r\nEND:VCARD"),
            if_match=headers["etag"])
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("Draft title")
    saved = dav.get("draft-1.vcf")[2]
    assert "TITLE:Draft title" in saved and "ORG:Phone Org" in saved
    assert "NOTE:first line\\nsecond line" in saved
    assert page.evaluate("sessionStorage.getItem('cardfile.draft')") is None
    page.reload()  # nothing unsaved: no warning
    assert kinds == ["beforeunload"]


def test_the_form_has_a_label_for_every_field(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.get_by_role("button", name="New contact").click()
    page.get_by_role("button", name="Add phone").click()
    page.get_by_role("button", name="Add address").click()
    assert page.evaluate(UNLABELLED) == []
    assert json.loads(page.evaluate("JSON.stringify(document.activeElement.name)")) == "street"


def test_a_typed_email_is_checked_by_the_servers_rule_at_its_field(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("mail-1.vcf", card("mail-1", "Mia Mail", "EMAIL:mia@example.org"))
    sign_in(page, site)
    open_contact(page, "Mia Mail", "Mia Mail")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    form.get_by_role("button", name="Add email").click()
    typed = form.get_by_label("Email", exact=True).last
    typed.fill("mia@")
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".form-status")).to_contain_text("'mia@' is not an email address")
    expect(typed).to_be_focused()
    expect(typed).to_have_attribute("aria-invalid", "true")
    assert "mia@\r\n" not in dav.get("mail-1.vcf")[2]
    typed.fill("mia@work.example")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("mia@work.example")


def test_more_name_fields_in_the_form(page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("names-1.vcf", card("names-1", "Ada Names"))
    sign_in(page, site)
    open_contact(page, "Ada Names", "Ada Names")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    form.get_by_label("Middle name").fill("Augusta")
    form.get_by_label("Name prefix (Dr., Ms.)").fill("Countess")
    form.get_by_label("Nickname").fill("Addie, Enchantress of Numbers")
    form.get_by_label("Phonetic (first)").fill("AY-duh")
    form.get_by_role("button", name="Save").click()
    detail = page.locator("#detail .contact-card")
    expect(detail).to_contain_text("Also called Addie, Enchantress of Numbers")
    expect(detail).to_contain_text("Say: AY-duh")
    stored = dav.get("names-1.vcf")[2]
    assert "N:Names;Ada;Augusta;Countess;\r\n" in stored
    assert "NICKNAME:Addie,Enchantress of Numbers" in stored
    assert "X-PHONETIC-FIRST-NAME:AY-duh" in stored


def test_the_birthday_has_a_date_picker_and_the_year_is_optional(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("bday-1.vcf", card("bday-1", "Bea Birthday", "BDAY:19061209", "TITLE:x"))
    sign_in(page, site)
    open_contact(page, "Bea Birthday", "Bea Birthday")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    picker = form.get_by_label("Birthday", exact=True)
    assert picker.get_attribute("type") == "date"
    expect(picker).to_have_value("1906-12-09")
    form.get_by_label("Job title").fill("y")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("y")
    assert "BDAY:19061209\r\n" in dav.get("bday-1.vcf")[2]  # untouched: its notation kept
    page.get_by_role("button", name="Edit").click()
    form.get_by_label("Birthday", exact=True).fill("1990-04-23")
    form.get_by_label("Year not known").check()
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#detail .contact-card")).to_contain_text("April 23")
    assert "BDAY:--04-23\r\n" in dav.get("bday-1.vcf")[2]
