"""CardDAV over HTTP against a real ``cardfile serve``: what a contacts app relies on."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

import pytest

from cardfile.plugin.vcard import card_fields
from tests.conftest import EDITS_THE_FOLDER, USER, ServerProcess
from tests.davclient import CARDDAV, DavClient, card, parse_multistatus


def test_discovery_leads_to_the_address_book(server: ServerProcess) -> None:
    client = server.client()
    status, headers, _ = client.request("GET", "/.well-known/carddav")
    assert status in (301, 302, 303, 307, 308, 401)
    status, headers, _ = client.request("PROPFIND", "/.well-known/carddav",
                                        headers={"Depth": "0"})
    assert status in (301, 207)
    status, text = client.propfind("/", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:">'
                                   '<D:prop><D:current-user-principal/></D:prop></D:propfind>',
                                   depth="0")
    assert status == 207 and f"/{USER}/" in text
    status, text = client.propfind(
        f"/{USER}/", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><C:addressbook-home-set/>'
        '</D:prop></D:propfind>', depth="0")
    assert status == 207 and f"/{USER}/" in text
    status, text = client.propfind(f"/{USER}/", '<?xml version="1.0"?><D:propfind '
                                   'xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/>'
                                   '</D:prop></D:propfind>')
    assert status == 207
    assert f"/{USER}/contacts/" in text and "addressbook" in text
    assert "Contacts" in text


def test_authentication_is_required(server: ServerProcess) -> None:
    client = server.client()
    status, headers, body = client.request("PROPFIND", f"/{USER}/", auth=False)
    assert status == 401 and "basic" in headers.get("www-authenticate", "").lower()
    assert body.strip()
    wrong = server.client(password="not the password")
    assert wrong.request("PROPFIND", f"/{USER}/")[0] == 401
    # Another user's address book is not reachable.
    bob = server.client("bob", "bob's password")
    assert bob.request("PROPFIND", f"/{USER}/contacts/", headers={"Depth": "1"})[0] in (403, 404)
    assert "Password" not in server.log() or "bob's password" not in server.log()


def test_put_get_delete_with_preconditions(dav: DavClient) -> None:
    text = card("u-1", "Ann Smith", "EMAIL;TYPE=work:ann@example.com")
    status, headers, _ = dav.put("u-1.vcf", text, if_none_match="*")
    assert status == 201
    etag = headers["etag"]
    status, headers, body = dav.get("u-1.vcf")
    assert status == 200 and headers["etag"] == etag
    assert "ann@example.com" in body and "UID:u-1" in body
    # Creating again with If-None-Match: * must not overwrite.
    assert dav.put("u-1.vcf", text, if_none_match="*")[0] == 412
    # An update with the current etag works and changes the etag.
    updated = card("u-1", "Ann Smith-Jones", "EMAIL;TYPE=work:ann@example.com")
    status, headers, _ = dav.put("u-1.vcf", updated, if_match=etag)
    assert status in (200, 204)
    new_etag = headers["etag"]
    assert new_etag != etag
    # A stale etag is refused with a reason, and nothing changes.
    status, _, reason = dav.put("u-1.vcf", card("u-1", "Lost Update"), if_match=etag)
    assert status == 412 and "changed since" in reason
    assert "Smith-Jones" in dav.get("u-1.vcf")[2]
    assert dav.delete("u-1.vcf", if_match=etag) == 412
    assert dav.delete("u-1.vcf", if_match=new_etag) in (200, 204)
    assert dav.get("u-1.vcf")[0] == 404


def test_uid_conflict_is_409_and_names_the_card(dav: DavClient) -> None:
    assert dav.put("first.vcf", card("same-uid", "First Person"))[0] == 201
    status, _, body = dav.put("second.vcf", card("same-uid", "Second Person"))
    assert status == 409
    assert "no-uid-conflict" in body and "first.vcf" in body
    assert dav.get("second.vcf")[0] == 404
    assert "First Person" in dav.get("first.vcf")[2]


def test_a_uid_read_two_ways_is_written_the_one_way_every_reader_reads_it(
        dav: DavClient) -> None:
    """Spaces around a UID and an escape vCard does not define (``tw\\in``): Radicale
    read them as sent, the index, the API and the CLI as ``twin``. A second card got in
    beside ``twin`` (the API then deleted the wrong one), and a client could never
    update its own such card (409 at every save)."""
    assert dav.put("twin1.vcf", card("twin", "Twin One"))[0] == 201
    for i, uid in enumerate([" twin", "twin ", "tw\\in"]):
        status, _, body = dav.put(f"twin-other{i}.vcf", card(uid, f"Twin Other {i}"))
        assert status == 409 and "twin1.vcf" in body, uid
        assert dav.get(f"twin-other{i}.vcf")[0] == 404
    status, headers, _ = dav.put("spaced.vcf", card(" spaced ", "Spaced One"))
    assert status == 201 and "etag" not in headers  # stored changed: fetch it again
    status, headers, _ = dav.put("spaced.vcf", card(" spaced ", "Spaced Two"))
    assert status == 204 and "etag" not in headers
    status, _, text = dav.get("spaced.vcf")
    assert "\r\nUID:spaced\r\n" in text and "Spaced Two" in text
    status, _, _ = dav.request("PUT", dav.book + "spaced.vcf", card(" spaced ", "Spaced 3"),
                               headers={"Content-Type": "text/vcard",
                                        "X-Cardfile-No-Fastpath": "1"})  # Radicale's PUT
    assert status == 204 and "Spaced 3" in dav.get("spaced.vcf")[2]


def test_bad_cards_get_a_reason_and_change_nothing(server: ServerProcess, dav: DavClient) -> None:
    assert dav.put("keep.vcf", card("keep", "Kept Card"))[0] == 201
    before = dav.etags()
    cases = {
        "truncated": ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:t\r\nFN:Cut", 400, "vCard"),
        "two cards": (card("a", "A One") + card("b", "B Two"), 400, "exactly one"),
        "not utf-8": (b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:\xff\xfe\r\nEND:VCARD\r\n",
                      400, "UTF-8"),
    }
    for name, (body, expected, word) in cases.items():
        status, _, reason = dav.request(
            "PUT", dav.book + "keep.vcf", body, {"Content-Type": "text/vcard"})
        assert status == expected, (name, status, reason)
        assert word in reason, (name, reason)
        assert len(reason.strip().splitlines()) == 1, (name, reason)
    huge = card("huge", "Huge Photo", "PHOTO;ENCODING=b;TYPE=JPEG:" + "A" * 6_000_000)
    status, _, reason = dav.put("huge.vcf", huge)
    assert status == 413 and "bytes" in reason
    assert dav.etags() == before
    assert "Kept Card" in dav.get("keep.vcf")[2]
    assert "reason=" in server.log()


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_a_file_or_folder_named_in_bytes_that_are_not_utf8_is_skipped(
        server: ServerProcess, dav: DavClient) -> None:
    """As an unzip of a Latin-1 archive or a sync tool may leave them: before, one such
    card file made every request to its book fail (500), and one such folder the
    listing of the user's books, which is how a client finds them."""
    assert dav.put("good.vcf", card("good-1", "Good Card"))[0] == 201
    book = os.fsencode(server.book_dir())
    with open(os.path.join(book, b"caf\xe9.vcf"), "wb") as f:
        f.write(card("cafe-1", "Caf\u00e9 Card").encode())
    os.makedirs(os.path.join(os.path.dirname(book), b"caf\xe9"))
    status, _, text = dav.get("good.vcf")
    assert status == 200 and "Good Card" in text
    status, text = dav.propfind(dav.book)
    assert status == 207 and "good.vcf" in text and "Caf" not in text
    status, text = dav.propfind(f"/{USER}/")
    assert status == 207 and f"/{USER}/contacts/" in text
    assert dav.put("new.vcf", card("new-1", "New Card"))[0] == 201
    assert "not UTF-8" in server.log()


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_a_card_file_holding_a_character_xml_cannot_carry_is_sent_without_it(
        server: ServerProcess, dav: DavClient) -> None:
    """A card file written by hand or by another program may hold a control character
    (a PUT never stores one). Before, it made every multiget and sync answer holding
    it ill-formed XML, on Radicale's path as on the fast path: a client could read
    none of the cards sent with it."""
    assert dav.put("plain.vcf", card("plain-1", "Plain Card"))[0] == 201
    raw = card("odd-1", "Odd\x01Card", "NOTE:a bell\x07\x0b and \ufffe end").encode()
    with open(os.path.join(server.book_dir(), "odd.vcf"), "wb") as f:
        f.write(raw)
    sent = re.sub("[\x01\x07\x0b\ufffe]", "", raw.decode())
    status, headers, text = dav.get("odd.vcf")
    assert status == 200 and text.encode() == raw  # HTTP carries the file as it is
    etag = headers["etag"]
    hrefs = "".join(f"<D:href>{dav.book}{name}</D:href>" for name in ("odd.vcf", "plain.vcf"))
    prop = '<D:prop><D:getetag/><C:address-data/></D:prop>'
    reports = {
        "multiget": f'<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="{CARDDAV}">{prop}{hrefs}'
                    '</C:addressbook-multiget>',
        "sync": f'<D:sync-collection xmlns:D="DAV:" xmlns:C="{CARDDAV}"><D:sync-token/>'
                f'<D:sync-level>1</D:sync-level>{prop}</D:sync-collection>',
    }
    for path_header in ({}, {"X-Cardfile-No-Fastpath": "1"}):
        for name, body in reports.items():
            status, _, answer = dav.request(
                "REPORT", dav.book, body, {"Content-Type": "application/xml", "Depth": "1",
                                           **path_header})
            assert status == 207, (name, path_header, answer)
            cards = {e.href.rsplit("/", 1)[-1]: e for e in parse_multistatus(answer)[1]}
            # (An XML parser reads a CR LF as LF.)
            assert cards["odd.vcf"].data == sent.replace("\r\n", "\n"), (name, path_header)
            assert cards["odd.vcf"].etag == etag, (name, path_header)
            assert cards["plain.vcf"].data == card("plain-1", "Plain Card").replace("\r\n", "\n")
    # The client saves the card it was sent: it replaces the file.
    assert dav.put("odd.vcf", sent, if_match=etag)[0] == 204
    assert dav.get("odd.vcf")[2] == sent
    # A refusal naming such a file (its UID taken) is well-formed too.
    with open(os.path.join(server.book_dir(), "bad\x01name.vcf"), "w") as f:
        f.write(card("odd-2", "Odd Two"))
    for path_header in ({}, {"X-Cardfile-No-Fastpath": "1"}):
        status, headers, answer = dav.request(
            "PUT", dav.book + "twin.vcf", card("odd-2", "Twin"),
            {"Content-Type": "text/vcard", **path_header})
        assert status == 409 and "xml" in headers["content-type"], (path_header, answer)
        assert f"{USER}/contacts/bad\\x01name.vcf" in ET.fromstring(answer).findtext(
            "{http://cardfile.org/ns}reason", ""), answer


def test_addressbook_query_from_the_index(dav: DavClient) -> None:
    dav.put("ann.vcf", card("ann", "Ann Smith", "EMAIL:ann@example.com", "TEL:+1 555 0100",
                            "CATEGORIES:Family,Work"))
    dav.put("bob.vcf", card("bob", "Bob Jones", "EMAIL:bob@work.example", "CATEGORIES:Work"))
    dav.put("cyd.vcf", card("cyd", "Cyd Brown", "NOTE:Met in Berlin\\, 2019"))

    def hrefs(filter_xml: str, test: str = "anyof") -> set[str]:
        return {e.href.rsplit("/", 1)[-1] for e in dav.query(filter_xml, test)}

    def text(prop: str, value: str, match: str = "contains", extra: str = "") -> str:
        return (f'<C:prop-filter name="{prop}"><C:text-match match-type="{match}"{extra}>'
                f'{value}</C:text-match></C:prop-filter>')

    assert hrefs(text("EMAIL", "ANN@")) == {"ann.vcf"}
    assert hrefs(text("FN", "smith", "ends-with")) == {"ann.vcf"}
    assert hrefs(text("FN", "Bob", "starts-with")) == {"bob.vcf"}
    assert hrefs(text("CATEGORIES", "work", "equals")) == {"ann.vcf", "bob.vcf"}
    assert hrefs(text("CATEGORIES", "family", "equals")) == {"ann.vcf"}
    assert hrefs(text("NOTE", "Berlin, 2019")) == {"cyd.vcf"}
    assert hrefs(text("FN", "smith", extra=' collation="i;octet"')) == set()
    assert hrefs(text("TEL", "555")) == {"ann.vcf"}
    # anyof / allof across properties
    assert hrefs(text("EMAIL", "bob") + text("FN", "Cyd")) == {"bob.vcf", "cyd.vcf"}
    assert hrefs(text("EMAIL", "example") + text("CATEGORIES", "family", "equals"),
                 "allof") == {"ann.vcf"}
    # is-not-defined and negate-condition
    assert hrefs('<C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>') == {"cyd.vcf"}
    assert hrefs(text("EMAIL", "ann", extra=' negate-condition="yes"')) == {"bob.vcf"}
    # The cards come back whole.
    entries = dav.query(text("EMAIL", "ann@"))
    assert entries[0].data and "TEL:+1 555 0100" in entries[0].data


def test_sync_collection_reports_changes_and_deletions(dav: DavClient) -> None:
    for i in range(5):
        dav.put(f"c{i}.vcf", card(f"c{i}", f"Person Number{i}"))
    status, token, entries = dav.sync()
    assert status == 207 and token
    assert {e.href.rsplit("/", 1)[-1] for e in entries} == {f"c{i}.vcf" for i in range(5)}
    # Nothing changed: nothing reported, same token.
    status, same, entries = dav.sync(token)
    assert entries == [] and same == token
    etag = dav.get("c1.vcf")[1]["etag"]
    dav.put("c1.vcf", card("c1", "Person Renamed"), if_match=etag)
    dav.put("new.vcf", card("new", "New Person"))
    assert dav.delete("c3.vcf") in (200, 204)
    status, token2, entries = dav.sync(token)
    changed = {e.href.rsplit("/", 1)[-1]: e.status for e in entries}
    assert changed == {"c1.vcf": 200, "new.vcf": 200, "c3.vcf": 404}
    assert token2 != token
    # A token that was never issued is refused the way RFC 6578 says.
    status, _, _ = dav.sync("http://cardfile.org/ns/sync/deadbeef-1-1")
    assert status == 403
    status, body = dav.report('<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
                              '<D:sync-token>garbage</D:sync-token><D:sync-level>1'
                              '</D:sync-level><D:prop><D:getetag/></D:prop>'
                              '</D:sync-collection>')
    assert status == 403 and "valid-sync-token" in body


def test_multiget_and_propfind_etags_agree(dav: DavClient) -> None:
    for i in range(3):
        dav.put(f"m{i}.vcf", card(f"m{i}", f"Multi Get{i}"))
    etags = dav.etags()
    assert len(etags) == 3
    entries = dav.multiget([*etags, dav.book + "missing.vcf"])
    found = {e.href: e for e in entries}
    assert found[dav.book + "missing.vcf"].status == 404
    for href, etag in etags.items():
        assert found[href].etag == etag
        assert found[href].data and "Multi Get" in found[href].data


def test_ctag_changes_with_content(dav: DavClient) -> None:
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
            'xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/><D:sync-token/>'
            '</D:prop></D:propfind>')

    def ctag() -> tuple[str, str]:
        status, text = dav.propfind(dav.book, body, depth="0")
        assert status == 207
        tag = re.search(r"getctag[^>]*>([^<]+)<", text)
        token = re.search(r"sync-token[^>]*>([^<]+)<", text)
        assert tag and token
        return tag.group(1), token.group(1)

    first = ctag()
    assert ctag() == first
    dav.put("x.vcf", card("x", "Ctag Change"))
    second = ctag()
    assert second[0] != first[0] and second[1] != first[1]


def _meaning(text: str) -> set[tuple[str, str, str, str]]:
    """(group, name, sorted TYPE params, unescaped value) of every line of a card."""
    result = set()
    for line in card_fields.parse_lines(text):
        types = ",".join(sorted(t.upper() for t in line.params.get("TYPE", [])))
        for value in card_fields.text_values(line):
            result.add((line.group.lower(), line.name, types, value))
    return result


def test_fidelity_of_what_clients_send(dav: DavClient) -> None:
    photo = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
             "AABJRU5ErkJggg==")
    cards = {
        "note.vcf": (card("note", "Note Taker", "NOTE:Met in Berlin, 2019"),
                     {("", "NOTE", "", "Met in Berlin, 2019")}),
        "apple.vcf": (card("apple", "Apple User", "item1.URL:http\\://example.com/me",
                           "item1.X-ABLabel:_$!<HomePage>!$_"),
                      {("item1", "URL", "", "http://example.com/me"),
                       ("item1", "X-ABLABEL", "", "_$!<HomePage>!$_")}),
        "photo4.vcf": (card("photo4", "Photo Four", f"PHOTO:data:image/png;base64,{photo}",
                            version="4.0"), set()),
        "v21.vcf": (card("v21", "Old Phone", "TEL;CELL;PREF:+1 555 0101",
                         "EMAIL;INTERNET:old@example.com", version="2.1"),
                    {("", "TEL", "CELL,PREF", "+1 555 0101"),
                     ("", "EMAIL", "INTERNET", "old@example.com")}),
    }
    for name, (text, expected) in cards.items():
        status, _, reason = dav.put(name, text)
        assert status == 201, (name, reason)
        body = dav.get(name)[2]
        stored = _meaning(body)
        assert expected <= stored, (name, expected - stored, body)
        assert {m[1] for m in _meaning(text)} <= {m[1] for m in stored}, (name, body)
    photo_body = dav.get("photo4.vcf")[2].replace("\r\n ", "")
    assert f"data:image/png;base64,{photo}" in photo_body


def test_an_error_for_a_client_that_accepts_gzip_is_readable(dav: DavClient) -> None:
    """DAVx5 sends Accept-Encoding: gzip; a 412's reason must not arrive labelled gzip."""
    import gzip

    assert dav.put("gz.vcf", card("gz", "Gee Zed"))[0] == 201
    status, headers, text = dav.request(
        "PUT", f"{dav.book}gz.vcf", card("gz", "Gee Zed", "NOTE:x"),
        {"Content-Type": "text/vcard", "If-Match": '"not-the-etag"',
         "Accept-Encoding": "gzip"})
    assert status == 412
    if headers.get("content-encoding") == "gzip":  # then it must really be gzip
        text = gzip.decompress(text.encode("latin-1")).decode()
    assert "changed" in text.lower() or "match" in text.lower(), text
