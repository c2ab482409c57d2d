"""The fields people expect, reordering and the photo crop on the web page (issue 13).

In Debian's Chromium against a real ``cardfile serve``; what the page did is
checked in the stored card over CardDAV: a related person is added with a
relation (Apple's ``_$!<Spouse>!$_`` on a 3.0 card) and a custom label; an
Apple ``X-ABDATE`` with its own label survives editing another field and a
new anniversary takes the birthday's date picker; an IM address is added
with a service chooser next to an old ``X-JABBER`` line that stays as it
was; a chosen photo is cropped to a square with the keyboard and stored as
a JPEG of at most 512 px; entries move up and down (mouse and keyboard),
and the lines move in the card with their ``X-ABLabel``.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ServerProcess, start_server
from tests.davclient import DavClient, card
from tests.test_web import CHROMIUM, DESKTOP, UNLABELLED, open_contact, shoot, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not __import__("os").path.exists(CHROMIUM) and not __import__("os").environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("web-fields"), store_config=module_store_config)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dav(site: ServerProcess) -> DavClient:
    return site.client()


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


def edit(page: Page, site: ServerProcess, name: str) -> None:
    sign_in(page, site)
    open_contact(page, name, name)
    page.get_by_role("button", name="Edit").click()


def save(page: Page) -> None:
    page.locator("form.contact-form").get_by_role("button", name="Save").click()
    expect(page.locator("#detail .contact-card")).to_be_visible()


def test_a_related_person_is_added_with_a_relation_and_a_custom_label(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    text = card("rel-1", "Rita Related", "item1.X-ABRELATEDNAMES:Ann Mother",
                 "item1.X-ABLabel:_$!<Mother>!$_", "X-OTHER;X-P=1:kept")
    dav.put("rel-1.vcf", text)
    edit(page, site, "Rita Related")
    form = page.locator("form.contact-form")
    expect(form.get_by_label("Related person", exact=True)).to_have_value("Ann Mother")
    expect(form.get_by_label("Relation")).to_have_value("mother")
    form.get_by_role("button", name="Add related person").click()
    expect(form.get_by_label("Related person", exact=True).last).to_be_focused()
    form.get_by_label("Related person", exact=True).last.fill("Sam Spouse")
    form.get_by_label("Relation").last.select_option("spouse")
    form.get_by_role("button", name="Add related person").click()
    form.get_by_label("Related person", exact=True).last.fill("Gail Godmother")
    form.get_by_label("Relation").last.select_option("")
    form.get_by_label("Label of related person").last.fill("Godmother")
    shoot(page, "edit-related-desktop")
    save(page)
    related = page.locator("#detail .facts-section", has_text="Related people")
    expect(related).to_contain_text("Sam Spouse")
    expect(related.locator("li", has_text="Gail Godmother")).to_contain_text("Godmother")
    stored = dav.get("rel-1.vcf")[2]
    assert ("item1.X-ABRELATEDNAMES:Ann Mother\r\nitem1.X-ABLabel:_$!<Mother>!$_\r\n"
            "item2.X-ABRELATEDNAMES:Sam Spouse\r\nitem2.X-ABLabel:_$!<Spouse>!$_\r\n"
            "item3.X-ABRELATEDNAMES:Gail Godmother\r\nitem3.X-ABLabel:Godmother\r\n") in stored
    assert "X-OTHER;X-P=1:kept" in stored
    # Changing the relation rewrites that entry's label only; its group stays.
    page.get_by_role("button", name="Edit").click()
    form.get_by_label("Relation").nth(1).select_option("partner")
    save(page)
    stored = dav.get("rel-1.vcf")[2]
    assert "item2.X-ABRELATEDNAMES:Sam Spouse\r\nitem2.X-ABLabel:_$!<Partner>!$_\r\n" in stored
    assert "item1.X-ABLabel:_$!<Mother>!$_" in stored and "_$!<Spouse>!$_" not in stored


def test_an_apple_date_with_a_custom_label_survives_and_a_new_one_has_the_picker(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    text = card("date-1", "Dan Dates", "item1.X-ABDATE;type=pref:2001-02-03",
                 "item1.X-ABLabel:First met", "BDAY:19800101")
    dav.put("date-1.vcf", text)
    edit(page, site, "Dan Dates")
    form = page.locator("form.contact-form")
    date = form.locator(".date-entry").first
    expect(date.get_by_label("Date", exact=True)).to_have_value("2001-02-03")
    assert date.get_by_label("Date", exact=True).get_attribute("type") == "date"
    expect(date.locator("input[name=label]")).to_have_value("First met")
    form.get_by_label("Job title").fill("Editor")
    save(page)
    assert dav.get("date-1.vcf")[2] == text.replace("END:VCARD", "TITLE:Editor\r\nEND:VCARD")
    expect(page.locator("#detail .facts-section", has_text="Dates")).to_contain_text("First met")
    # A new anniversary without a year: Apple's own way of writing it.
    page.get_by_role("button", name="Edit").click()
    form.get_by_role("button", name="Add date").click()
    new = form.locator(".date-entry").last
    expect(new.get_by_label("Kind of date")).to_have_value("anniversary")
    new.get_by_label("Date", exact=True).fill("2010-06-12")
    new.get_by_label("Year not known").check()
    save(page)
    expect(page.locator("#detail .facts-section", has_text="Dates")).to_contain_text("June 12")
    stored = dav.get("date-1.vcf")[2]
    assert "item1.X-ABDATE;type=pref:2001-02-03\r\nitem1.X-ABLabel:First met\r\n" in stored
    assert ("item2.X-ABDATE;X-APPLE-OMIT-YEAR=1604:1604-06-12\r\n"
            "item2.X-ABLabel:_$!<Anniversary>!$_\r\n") in stored
    assert "BDAY:19800101\r\n" in stored


def test_instant_messaging_is_added_with_a_service_and_an_old_jabber_line_is_kept(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    dav.put("im-1.vcf", card("im-1", "Ivy Messages", "X-JABBER;TYPE=HOME:ivy@jabber.example"))
    sign_in(page, site)
    open_contact(page, "Ivy Messages", "Ivy Messages")
    expect(page.locator("#detail .facts-section", has_text="Instant messaging")).to_contain_text(
        "XMPP (Jabber): ivy@jabber.example")
    page.get_by_role("button", name="Edit").click()
    form = page.locator("form.contact-form")
    expect(form.get_by_label("Service").first).to_have_value("xmpp")
    form.get_by_role("button", name="Add instant messaging").click()
    form.get_by_label("Service").last.select_option("skype")
    form.get_by_label("Instant messaging handle").last.fill("ivy.m")
    form.get_by_label("Kind of instant messaging").last.select_option("work")
    save(page)
    expect(page.locator("#detail .facts-section", has_text="Instant messaging")).to_contain_text(
        "Skype: ivy.m")
    stored = dav.get("im-1.vcf")[2]
    assert "X-JABBER;TYPE=HOME:ivy@jabber.example\r\n" in stored  # untouched: as it was
    assert "IMPP;TYPE=work;X-SERVICE-TYPE=Skype:skype:ivy.m\r\n" in stored
    # An edited old line is written as IMPP, which every current client reads.
    page.get_by_role("button", name="Edit").click()
    form.get_by_label("Instant messaging handle").first.fill("ivy2@jabber.example")
    save(page)
    stored = dav.get("im-1.vcf")[2]
    assert "IMPP;TYPE=HOME;X-SERVICE-TYPE=Jabber:xmpp:ivy2@jabber.example\r\n" in stored
    assert "X-JABBER" not in stored


def png(width: int, height: int, split: int) -> bytes:
    """An RGB PNG: red left of column ``split``, blue from there."""
    row = b"\x00" + b"\xff\x00\x00" * split + b"\x00\x00\xff" * (width - split)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xC3:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no start-of-frame in the JPEG")


#: The stored photo as the page shows it: the colour near its left and right edges.
PIXELS = """async () => {
  const img = document.querySelector('#detail .contact-head img');
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const at = (x) => Array.from(ctx.getImageData(x, c.height >> 1, 1, 1).data.slice(0, 3));
  return [at(4), at(c.width - 5)];
}"""


def test_a_new_photo_is_cropped_to_a_square_jpeg_with_the_keyboard(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    text = card("photo-1", "Pia Photo", "TITLE:Painter")
    dav.put("photo-1.vcf", text)
    edit(page, site, "Pia Photo")
    form = page.locator("form.contact-form")
    # 1400 x 1000: red on the left 400 px, blue on the rest.
    form.locator("input[type=file]").set_input_files(
        files=[{"name": "wide.png", "mimeType": "image/png", "buffer": png(1400, 1000, 400)}])
    across = form.get_by_label("Crop position, left to right")
    expect(across).to_be_visible()
    expect(across).to_have_value("50")
    shoot(page, "edit-photo-crop-desktop")
    across.focus()
    page.keyboard.press("End")  # the square as far right as it goes: all blue
    expect(across).to_have_value("100")
    save(page)
    expect(page.locator("#detail .contact-head img")).to_be_visible()
    stored = dav.get("photo-1.vcf")[2]
    unfolded = re.sub(r"\r\n[ \t]", "", stored)
    photo = re.search(r"^PHOTO;ENCODING=b;TYPE=JPEG:([A-Za-z0-9+/=]+)\r$", unfolded, re.M)
    assert photo, stored
    assert jpeg_size(base64.b64decode(photo.group(1))) == (512, 512)
    left, right = page.evaluate(PIXELS)
    assert left[2] > 200 and left[0] < 60 and right[2] > 200, (left, right)  # blue, not red
    assert "TITLE:Painter" in stored
    # Editing another field never re-encodes the photo.
    page.get_by_role("button", name="Edit").click()
    form.get_by_label("Job title").fill("Sculptor")
    save(page)
    assert dav.get("photo-1.vcf")[2] == stored.replace("TITLE:Painter", "TITLE:Sculptor")


def test_entries_move_up_and_down_and_take_their_apple_label_with_them(
        page: Page, site: ServerProcess, dav: DavClient) -> None:
    text = card("order-1", "Otto Order", "item1.TEL;type=CELL:+1 555 0101",
                 "item1.X-ABLabel:_$!<Mobile>!$_", "TEL;TYPE=WORK:+1 555 0199",
                 "EMAIL;TYPE=INTERNET:first@example.org", "EMAIL;TYPE=INTERNET:second@example.org",
                 "EMAIL;TYPE=INTERNET:third@example.org")
    dav.put("order-1.vcf", text)
    edit(page, site, "Otto Order")
    form = page.locator("form.contact-form")
    form.get_by_role("button", name="Move phone +1 555 0199 up").click()
    expect(form.get_by_role("button", name="Move phone +1 555 0199 down")).to_be_focused()
    # Keyboard only: from the first email's field to its Move down button, twice.
    form.get_by_label("Email", exact=True).first.focus()
    for _ in range(4):
        page.keyboard.press("Tab")
    down = form.get_by_role("button", name="Move email first@example.org down")
    expect(down).to_be_focused()
    page.keyboard.press("Enter")
    expect(down).to_be_focused()
    expect(form.locator(".move-status")).to_have_text("Moved email first@example.org to "
                                                      "position 2 of 3.")
    page.keyboard.press("Space")
    expect(form.get_by_role("button", name="Move email first@example.org up")).to_be_focused()
    values = form.locator(".entries[data-field=emails] input[name=value]")
    assert [values.nth(i).input_value() for i in range(3)] == [
        "second@example.org", "third@example.org", "first@example.org"]
    shoot(page, "edit-reorder-desktop")
    save(page)
    phones = page.locator("#detail .facts-section", has_text="Phone").locator("li")
    expect(phones.first).to_contain_text("+1 555 0199")
    stored = dav.get("order-1.vcf")[2]
    assert ("TEL;TYPE=WORK:+1 555 0199\r\nitem1.TEL;type=CELL:+1 555 0101\r\n"
            "item1.X-ABLabel:_$!<Mobile>!$_\r\n") in stored
    assert ("EMAIL;TYPE=INTERNET:second@example.org\r\nEMAIL;TYPE=INTERNET:third@example.org\r\n"
            "EMAIL;TYPE=INTERNET:first@example.org\r\n") in stored
    assert sorted(stored.splitlines()) == sorted(text.splitlines())  # moved, not rewritten


def test_every_new_field_has_a_label(page: Page, site: ServerProcess) -> None:
    sign_in(page, site)
    page.get_by_role("button", name="New contact").click()
    for what in ("instant messaging", "related person", "date"):
        page.get_by_role("button", name=f"Add {what}").click()
    page.locator("form.contact-form input[type=file]").set_input_files(
        files=[{"name": "p.png", "mimeType": "image/png", "buffer": png(40, 30, 10)}])
    expect(page.get_by_label("Crop size (percent of the picture)")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
