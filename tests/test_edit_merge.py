"""Edits change only what the user changed, and two people's edits merge.

Against a real ``cardfile serve``: a PATCH rewrites only the lines of the
fields it changes (a multi-line street with its Apple ``item1.`` group and
``X-ABADR`` survives saving a job title; editing a phone keeps its
``X-ABLabel``); labels are read and written; a PATCH that changes nothing
writes nothing; and a PATCH against an older ETag with ``base`` is merged
three ways (no clash: applied on top; a clash: 409 with both values).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.davclient import DavClient
from tests.test_api import BOOK, Api, assert_problem

GRACE = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:grace\r\nFN:Grace Hopper\r\nN:Hopper;Grace;;;\r\n"
         "item1.ADR;type=HOME;type=pref:;;Unit 4\\nBuilding B\\n12 Long Road;Arlington;VA;"
         "22201;USA\r\n"
         "item1.X-ABADR:us\r\n"
         "item2.TEL;type=CELL;type=VOICE;type=pref:+1 202 555 0101\r\n"
         "item2.X-ABLabel:_$!<Mobile>!$_\r\n"
         "TEL;TYPE=WORK:+1 202 555 0199\r\n"
         "item3.X-ABDATE:1950-01-01\r\nitem3.X-ABLabel:_$!<Anniversary>!$_\r\n"
         "NOTE:Line one\\nLine two\r\nX-SPOUSE:Vincent\r\nEND:VCARD\r\n")
MERGE = "application/merge-patch+json"


@pytest.fixture
def api(server: ServerProcess, dav: DavClient) -> Api:
    return Api(server)


def put_grace(dav: DavClient) -> None:
    assert dav.put("grace.vcf", GRACE)[0] == 201


def patch(api: Api, body: dict[str, Any], etag: str) -> tuple[int, dict[str, str], Any]:
    return api.call("PATCH", f"{BOOK}/contacts/grace", json.dumps(body).encode(),
                    {"Content-Type": MERGE, "If-Match": etag})


def test_saving_a_title_keeps_a_multiline_grouped_street_line_for_line(
        api: Api, dav: DavClient) -> None:
    put_grace(dav)
    contact = api.ok("GET", f"{BOOK}/contacts/grace")
    assert contact["addresses"][0]["street"] == "Unit 4\nBuilding B\n12 Long Road"
    assert [p["label"] for p in contact["phones"]] == ["Mobile", ""]
    # The page sends every field it shows, unchanged but the title.
    body = {k: contact[k] for k in ("name", "given", "family", "emails", "phones", "urls",
                                    "addresses", "categories", "notes")}
    status, _, saved = patch(api, {**body, "title": "Rear Admiral"}, contact["etag"])
    assert status == 200, saved
    text = dav.get("grace.vcf")[2]
    assert text == GRACE.replace("END:VCARD", "TITLE:Rear Admiral\r\nEND:VCARD")


def test_editing_a_phone_keeps_its_label_and_labels_are_editable(api: Api, dav: DavClient
                                                                  ) -> None:
    put_grace(dav)
    contact = api.ok("GET", f"{BOOK}/contacts/grace")
    phones = contact["phones"]
    phones[0]["value"] = "+1 202 555 0102"
    status, _, saved = patch(api, {"phones": phones}, contact["etag"])
    assert status == 200
    assert saved["phones"][0] == {"value": "+1 202 555 0102", "type": ["cell", "voice"],
                                  "pref": True, "label": "Mobile"}
    text = dav.get("grace.vcf")[2]
    assert "item2.TEL;TYPE=CELL,VOICE,PREF:+1 202 555 0102\r\n" in text
    assert "item2.X-ABLabel:_$!<Mobile>!$_" in text and "item1.X-ABADR:us" in text
    # A label on the work phone, a new labelled phone, the mobile's label removed.
    phones = saved["phones"]
    phones[0]["label"] = ""
    phones[1]["label"] = "Lab"
    phones.append({"value": "+1 202 555 0150", "type": ["home"], "label": "Holiday flat"})
    status, _, saved = patch(api, {"phones": phones}, saved["etag"])
    assert status == 200
    assert [p["label"] for p in saved["phones"]] == ["", "Lab", "Holiday flat"]
    text = dav.get("grace.vcf")[2]
    assert "Mobile" not in text and "item3.X-ABLabel:_$!<Anniversary>!$_" in text
    assert "item4.TEL;TYPE=WORK:+1 202 555 0199\r\nitem4.X-ABLabel:Lab\r\n" in text
    assert "item5.TEL;TYPE=home:+1 202 555 0150\r\nitem5.X-ABLabel:Holiday flat\r\n" in text
    # A client that knows nothing of labels edits a number: the label stays.
    status, _, saved = patch(api, {"phones": [
        {"value": p["value"], "type": p["type"], "pref": p["pref"]} for p in saved["phones"]
    ][:2] + [{"value": "+1 202 555 0151", "type": ["home"]}]}, saved["etag"])
    assert status == 200 and saved["phones"][2]["label"] == "Holiday flat"


def test_a_save_that_changes_nothing_writes_nothing(api: Api, dav: DavClient,
                                                   server: ServerProcess) -> None:
    put_grace(dav)
    contact = api.ok("GET", f"{BOOK}/contacts/grace")
    path = server.book_dir() / "grace.vcf"
    before = path.stat().st_mtime_ns
    token = dav.sync()[1]
    body = {k: v for k, v in contact.items() if k not in ("photo",)}
    status, headers, saved = patch(api, body, contact["etag"])
    assert status == 200 and headers["etag"] == contact["etag"]
    assert api.call("PUT", f"{BOOK}/contacts/grace", body,
                    {"If-Match": contact["etag"]})[1]["etag"] == contact["etag"]
    assert path.stat().st_mtime_ns == before and dav.get("grace.vcf")[2] == GRACE
    assert dav.sync(token)[2] == []  # no device sees a change


def test_two_tabs_editing_different_fields_both_keep_their_work(api: Api, dav: DavClient
                                                               ) -> None:
    """The issue: tab A edits the job title, tab B the organisation."""
    put_grace(dav)
    opened = api.ok("GET", f"{BOOK}/contacts/grace")
    status, _, a = patch(api, {"title": "From tab A", "base": {"title": None}}, opened["etag"])
    assert status == 200
    status, headers, b = patch(api, {"organization": "From tab B", "categories": ["Navy"],
                                     "base": {"organization": None, "categories": []}},
                               opened["etag"])
    assert status == 200, b
    assert b["title"] == "From tab A" and b["organization"] == "From tab B"
    assert b["categories"] == ["Navy"] and headers["etag"] != a["etag"]
    text = dav.get("grace.vcf")[2]
    assert "TITLE:From tab A" in text and "ORG:From tab B" in text
    assert "item1.X-ABADR:us" in text and "Unit 4\\nBuilding B" in text
    # Categories merge as sets: A files under Family while B (on the old version) under Work.
    status, _, _ = patch(api, {"categories": ["Navy", "Family"],
                               "base": {"categories": ["Navy"]}}, b["etag"])
    assert status == 200
    status, _, c = patch(api, {"categories": ["Work"], "base": {"categories": ["Navy"]}},
                         b["etag"])
    assert status == 200 and sorted(c["categories"]) == ["Family", "Work"]


def test_a_real_clash_is_409_with_both_values_and_no_base_is_412(api: Api, dav: DavClient
                                                                 ) -> None:
    put_grace(dav)
    opened = api.ok("GET", f"{BOOK}/contacts/grace")
    assert patch(api, {"title": "Tab A title"}, opened["etag"])[0] == 200
    stale = opened["etag"]
    problem = assert_problem(patch(api, {"title": "Tab B title", "organization": "Navy",
                                         "base": {"title": None, "organization": None}},
                                   stale), 409)
    assert problem["conflicts"] == [{"field": "title", "base": None, "yours": "Tab B title",
                                     "theirs": "Tab A title"}]
    assert problem["etag"] == problem["current"]["etag"] != stale
    assert "TITLE:Tab A title" in dav.get("grace.vcf")[2]  # nothing written
    assert "ORG" not in dav.get("grace.vcf")[2]
    # The same change on both sides is no clash.
    status, _, same = patch(api, {"title": "Tab A title", "base": {"title": None}}, stale)
    assert status == 200 and same["title"] == "Tab A title"
    # Without base, a stale ETag is refused as before; a base without the field is 422.
    assert_problem(patch(api, {"title": "x"}, stale), 412)
    assert_problem(patch(api, {"title": "x", "base": {}}, stale), 422)
    # Choosing: send the chosen values with the current ETag.
    status, _, chosen = patch(api, {"title": "Tab B title", "organization": "Navy"},
                              problem["etag"])
    assert status == 200 and chosen["title"] == "Tab B title"


def test_a_typed_email_is_checked_with_the_servers_one_rule(api: Api, dav: DavClient) -> None:
    dav.put("odd.vcf", GRACE.replace("UID:grace", "UID:odd").replace(
        "END:VCARD", "EMAIL:info@invalid\r\nEND:VCARD"))
    contact = api.ok("GET", f"{BOOK}/contacts/odd")
    emails = contact["emails"]
    # The stored odd address is left alone; a new bad one is refused, naming the entry.
    problem = assert_problem(api.call(
        "PATCH", f"{BOOK}/contacts/odd", {"emails": [*emails, {"value": "ada@"}]},
        {"If-Match": contact["etag"]}), 422)
    assert problem["field"] == "emails" and problem["index"] == 1
    assert "ada@" in problem["detail"] and "after the @-sign" in problem["detail"]
    ok = api.ok("PATCH", f"{BOOK}/contacts/odd", {"emails": [*emails, {"value": "ana@münchen.de"}]},
                {"If-Match": contact["etag"]})
    assert [e["value"] for e in ok["emails"]] == ["info@invalid", "ana@münchen.de"]


def test_an_import_error_names_no_command_line_flag(api: Api) -> None:
    status, _, body = api.call("POST", f"{BOOK}/import", b"just some words\n",
                               {"Content-Type": "text/csv"})
    assert status in (400, 422), body
    assert "--" not in body["detail"] and "choose its format" in body["detail"]


def test_name_parts_nicknames_and_phonetic_names(api: Api, dav: DavClient) -> None:
    text = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ada-n\r\nFN:Dr. Ada B. Lovelace Jr.\r\n"
            "N:Lovelace;Ada;B.;Dr.;Jr.\r\nNICKNAME:Addie,Countess\r\nEND:VCARD\r\n")
    dav.put("ada-n.vcf", text)
    contact = api.ok("GET", f"{BOOK}/contacts/ada-n")
    assert {k: contact[k] for k in ("prefix", "given", "middle", "family", "suffix",
                                    "nickname", "phonetic_given")} == {
        "prefix": "Dr.", "given": "Ada", "middle": "B.", "family": "Lovelace", "suffix": "Jr.",
        "nickname": "Addie, Countess", "phonetic_given": None}
    assert api.ok("PUT", f"{BOOK}/contacts/ada-n", contact,
                  {"If-Match": contact["etag"]})["etag"] == contact["etag"]  # nothing lost
    changed = api.ok("PATCH", f"{BOOK}/contacts/ada-n", {
        "middle": "Byron", "nickname": "Addie, Enchantress of Numbers",
        "phonetic_given": "AY-duh", "phonetic_family": "LUV-lace"})
    stored = dav.get("ada-n.vcf")[2]
    assert "N:Lovelace;Ada;Byron;Dr.;Jr.\r\n" in stored
    assert "NICKNAME:Addie,Enchantress of Numbers\r\n" in stored
    assert "X-PHONETIC-FIRST-NAME:AY-duh\r\nX-PHONETIC-LAST-NAME:LUV-lace\r\n" in stored
    assert changed["nickname"] == "Addie, Enchantress of Numbers"
    found = api.ok("GET", f"{BOOK}/contacts?q=luv-lace&fields=uid")["items"]
    assert [i["uid"] for i in found] == ["ada-n"]  # phonetic names are searched too


def test_related_people_dates_and_im_on_a_vcard_4_card(api: Api, dav: DavClient) -> None:
    text = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:v4-kinds\r\nFN:Vera Four\r\nN:Four;Vera;;;\r\n"
            "RELATED;TYPE=friend:urn:uuid:0b7a4a8e-1\r\nANNIVERSARY:19900101\r\n"
            "IMPP;PREF=1:xmpp:vera@example.org\r\nX-SKYPE:vera.four\r\nEND:VCARD\r\n")
    dav.put("v4-kinds.vcf", text)
    contact = api.ok("GET", f"{BOOK}/contacts/v4-kinds")
    entry = {"pref": False, "label": ""}
    assert contact["related"] == [{"value": "urn:uuid:0b7a4a8e-1", "type": ["friend"], **entry}]
    assert contact["dates"] == [{"value": "19900101", "type": ["anniversary"], **entry}]
    assert contact["ims"] == [{"value": "xmpp:vera@example.org", "type": [], "pref": True,
                               "label": ""}, {"value": "skype:vera.four", "type": [], **entry}]
    assert api.ok("PUT", f"{BOOK}/contacts/v4-kinds", contact,
                  {"If-Match": contact["etag"]})["etag"] == contact["etag"]  # byte for byte
    api.ok("PATCH", f"{BOOK}/contacts/v4-kinds", {
        "related": [*contact["related"], {"value": "Bob Smith", "type": ["spouse"]},
                    {"value": "Eve", "label": "Godmother"}],
        "dates": [*contact["dates"], {"value": "2010-05-01", "type": ["anniversary"]}]})
    stored = dav.get("v4-kinds.vcf")[2]
    assert ("RELATED;TYPE=friend:urn:uuid:0b7a4a8e-1\r\nRELATED;TYPE=spouse;VALUE=text:"
            "Bob Smith\r\nitem1.RELATED;VALUE=text:Eve\r\nitem1.X-ABLabel:Godmother\r\n") in stored
    # vCard 4 has one ANNIVERSARY: a second one is Apple's labelled date.
    assert ("ANNIVERSARY:19900101\r\nitem2.X-ABDATE:2010-05-01\r\n"
            "item2.X-ABLabel:_$!<Anniversary>!$_\r\n") in stored
    assert "X-SKYPE:vera.four\r\n" in stored
    status, _, problem = api.call("PATCH", f"{BOOK}/contacts/v4-kinds", json.dumps(
        {"dates": [{"value": "the first of May"}]}).encode(), {"Content-Type": MERGE})
    assert status == 422 and problem["field"] == "dates" and problem["index"] == 0, problem
    assert dav.get("v4-kinds.vcf")[2] == stored


def test_reordering_moves_lines_with_their_labels_and_rewrites_none(api: Api,
                                                                   dav: DavClient) -> None:
    put_grace(dav)
    contact = api.ok("GET", f"{BOOK}/contacts/grace")
    api.ok("PATCH", f"{BOOK}/contacts/grace", {"phones": contact["phones"][::-1]},
           {"If-Match": contact["etag"]})
    stored = dav.get("grace.vcf")[2]
    assert ("TEL;TYPE=WORK:+1 202 555 0199\r\n"
            "item2.TEL;type=CELL;type=VOICE;type=pref:+1 202 555 0101\r\n"
            "item2.X-ABLabel:_$!<Mobile>!$_\r\n") in stored
    assert sorted(stored.splitlines()) == sorted(GRACE.splitlines())
    assert [p["value"] for p in api.ok("GET", f"{BOOK}/contacts/grace")["phones"]] == [
        "+1 202 555 0199", "+1 202 555 0101"]
