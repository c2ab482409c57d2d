"""CardDAV (RFC 6352), sync (RFC 6578) and HTTP (RFC 9110) where clients trip.

Each test is one behaviour a real client relies on, checked over HTTP against
one ``cardfile serve`` shared by the module (every test uses its own cards).
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from tests.conftest import EDITS_THE_FOLDER, USER, ServerProcess, start_server
from tests.davclient import CARDDAV, DavClient, card, parse_multistatus

MAX_RESOURCE_SIZE = 300_000
CS = "http://calendarserver.org/ns/"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory,
        module_store_config: str) -> Iterator[ServerProcess]:
    # A short auth delay keeps the 403 answers quick; test_security checks the default.
    server = start_server(tmp_path_factory.mktemp("conformance"), extra_config=(
        f"[server]\nmax_resource_size = {MAX_RESOURCE_SIZE}\n[auth]\ndelay = 0.05\n"),
        store_config=module_store_config)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(srv: ServerProcess) -> DavClient:
    c = srv.client()
    assert c.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
    return c


def _props(client: DavClient, path: str, *props: str, depth: str = "0") -> ET.Element:
    body = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
            f'xmlns:C="{CARDDAV}" xmlns:CS="{CS}"><D:prop>'
            + "".join(f"<{p}/>" for p in props) + "</D:prop></D:propfind>")
    status, text = client.propfind(path, body, depth=depth)
    assert status == 207, text
    return ET.fromstring(text)


def _found(root: ET.Element, clark: str) -> ET.Element | None:
    """The property ``clark`` from a propstat with status 200, if any."""
    for propstat in root.iter("{DAV:}propstat"):
        if " 200 " in (propstat.findtext("{DAV:}status") or ""):
            element = propstat.find(f"{{DAV:}}prop/{clark}")
            if element is not None:
                return element
    return None


def test_well_known_carddav_redirects_to_the_context_path(client: DavClient) -> None:
    for method in ("GET", "PROPFIND"):
        status, headers, _ = client.request(method, "/.well-known/carddav",
                                            headers={"Depth": "0"})
        assert status in (301, 302, 303, 307, 308), (method, status)
        assert headers["location"].rstrip("/") in ("", "http://127.0.0.1")


def test_principal_and_home_set_lead_to_the_address_book(client: DavClient) -> None:
    root = _props(client, "/", "D:current-user-principal")
    principal = _found(root, "{DAV:}current-user-principal")
    assert principal is not None
    assert principal.findtext("{DAV:}href") == f"/{USER}/"
    root = _props(client, f"/{USER}/", "C:addressbook-home-set", "D:principal-URL")
    home = _found(root, f"{{{CARDDAV}}}addressbook-home-set")
    assert home is not None and home.findtext("{DAV:}href") == f"/{USER}/"
    root = _props(client, f"/{USER}/", "D:resourcetype", "D:displayname", depth="1")
    books = [r.findtext("{DAV:}href") for r in root.iter("{DAV:}response")
             if r.find(f".//{{{CARDDAV}}}addressbook") is not None]
    assert books == [f"/{USER}/contacts/"]


def test_address_book_properties_clients_read(client: DavClient) -> None:
    root = _props(client, client.book, "C:supported-address-data", "C:max-resource-size",
                  "CS:getctag", "D:sync-token", "D:supported-report-set", "D:resourcetype")
    data = _found(root, f"{{{CARDDAV}}}supported-address-data")
    assert data is not None
    types = [(e.get("content-type"), e.get("version"))
             for e in data.iter(f"{{{CARDDAV}}}address-data-type")]
    assert ("text/vcard", "3.0") in types
    size = _found(root, f"{{{CARDDAV}}}max-resource-size")
    assert size is not None and size.text == str(MAX_RESOURCE_SIZE)
    ctag = _found(root, f"{{{CS}}}getctag")
    assert ctag is not None and ctag.text
    token = _found(root, "{DAV:}sync-token")
    assert token is not None and (token.text or "").startswith("http")
    reports = _found(root, "{DAV:}supported-report-set")
    assert reports is not None
    names = {child.tag for r in reports.iter("{DAV:}report") for child in r}
    assert {f"{{{CARDDAV}}}addressbook-multiget", f"{{{CARDDAV}}}addressbook-query",
            "{DAV:}sync-collection"} <= names


def test_ctag_and_sync_token_change_with_every_write(client: DavClient) -> None:
    def state() -> tuple[str, str]:
        root = _props(client, client.book, "CS:getctag", "D:sync-token")
        ctag, token = _found(root, f"{{{CS}}}getctag"), _found(root, "{DAV:}sync-token")
        assert ctag is not None and token is not None
        return ctag.text or "", token.text or ""

    before = state()
    assert client.put("ctag-1.vcf", card("ctag-1", "Cee Tag"))[0] == 201
    after_put = state()
    assert after_put[0] != before[0] and after_put[1] != before[1]
    assert client.delete("ctag-1.vcf") in (200, 204)
    after_delete = state()
    assert after_delete[0] not in (before[0], after_put[0])
    assert after_delete[1] not in (before[1], after_put[1])


def test_oversized_card_is_refused_with_the_limit(client: DavClient) -> None:
    big = card("big-1", "Big Note", "NOTE:" + "x" * MAX_RESOURCE_SIZE)
    status, _, body = client.put("big-1.vcf", big)
    assert status == 413 and "max_resource_size" in body and str(MAX_RESOURCE_SIZE) in body
    assert client.get("big-1.vcf")[0] == 404


def test_multiget_answers_404_per_missing_href(client: DavClient) -> None:
    assert client.put("mg-1.vcf", card("mg-1", "Multi Get"))[0] == 201
    entries = {e.href: e for e in client.multiget([
        f"{client.book}mg-1.vcf", f"{client.book}missing.vcf", "/bob/contacts/x.vcf",
        f"/{USER}/contacts/../../etc/passwd"])}
    assert entries[f"{client.book}mg-1.vcf"].status == 200
    assert "UID:mg-1" in (entries[f"{client.book}mg-1.vcf"].data or "")
    assert entries[f"{client.book}missing.vcf"].status == 404
    others = [e for href, e in entries.items() if not href.startswith(client.book)]
    assert others and all(e.status in (403, 404) and e.data is None for e in others)


@pytest.mark.parametrize("token", [
    "garbage", "http://cardfile.org/ns/sync/c0-0-0", "http://cardfile.org/ns/sync/zz-1-1",
    "http://cardfile.org/ns/sync/cabc-1-999999999", "http://radicale.org/ns/sync/abc",
    "x" * 5000, "http://cardfile.org/ns/sync/g%s-1-1" % ("9" * 40)])
def test_sync_with_unknown_or_malformed_token_is_403_valid_sync_token(
        client: DavClient, token: str) -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f'<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
            '<D:prop><D:getetag/></D:prop></D:sync-collection>')
    status, text = client.report(body)
    assert status == 403, text
    root = ET.fromstring(text)
    assert root.tag == "{DAV:}error" and root.find("{DAV:}valid-sync-token") is not None
    assert "full sync" in text


def test_sync_collection_initial_then_incremental(client: DavClient) -> None:
    status, token, entries = client.sync("")
    assert status == 207 and token
    assert client.put("sync-1.vcf", card("sync-1", "Sync One"))[0] == 201
    status, token2, entries = client.sync(token)
    assert status == 207 and token2 != token
    assert [e.href for e in entries] == [f"{client.book}sync-1.vcf"]
    assert client.delete("sync-1.vcf") in (200, 204)
    status, token3, entries = client.sync(token2)
    assert status == 207 and [(e.href, e.status) for e in entries] == [
        (f"{client.book}sync-1.vcf", 404)]
    status, token4, entries = client.sync(token3)
    assert status == 207 and entries == [] and token4 == token3


def test_if_match_and_if_none_match_star(client: DavClient) -> None:
    name, path = "star.vcf", f"{client.book}star.vcf"
    # If-Match: * on a missing resource: false -> 412, nothing created.
    assert client.put(name, card("star", "Star One"), if_match="*")[0] == 412
    assert client.get(name)[0] == 404
    # If-None-Match: * creates only if nothing is there.
    status, headers, _ = client.put(name, card("star", "Star One"), if_none_match="*")
    assert status == 201
    etag = headers["etag"]
    assert client.put(name, card("star", "Star Two"), if_none_match="*")[0] == 412
    assert "Star One" in client.get(name)[2]
    # If-Match: * on an existing resource: true.
    status, headers, _ = client.put(name, card("star", "Star Three"), if_match="*")
    assert status in (200, 204) and headers["etag"] != etag
    # GET with If-None-Match: * on an existing resource: 304.
    assert client.request("GET", path, headers={"If-None-Match": "*"})[0] == 304
    # DELETE with If-None-Match: * on an existing resource: 412, the card stays.
    assert client.request("DELETE", path, headers={"If-None-Match": "*"})[0] == 412
    assert client.get(name)[0] == 200
    assert client.request("DELETE", path, headers={"If-Match": "*"})[0] in (200, 204)
    assert client.get(name)[0] == 404


def test_etag_lists_and_weak_tags_follow_rfc_9110(client: DavClient) -> None:
    name, path = "tags.vcf", f"{client.book}tags.vcf"
    status, headers, _ = client.put(name, card("tags", "Tag One"))
    assert status == 201
    etag = headers["etag"]
    assert client.get(name)[1]["etag"] == etag
    # Conditional GET: 304 when current, 412 when If-Match does not hold.
    status, headers, body = client.request("GET", path, headers={"If-None-Match": etag})
    assert status == 304 and body == "" and headers["etag"] == etag
    assert client.request("GET", path, headers={"If-None-Match": '"other"'})[0] == 200
    assert client.request("GET", path, headers={"If-Match": '"other"'})[0] == 412
    # If-Match with a list: any current strong tag will do.
    status, headers, _ = client.request(
        "PUT", path, card("tags", "Tag Two"),
        {"If-Match": f'"stale", {etag}', "Content-Type": "text/vcard"})
    assert status in (200, 204)
    etag2 = headers["etag"]
    # A weak tag never matches If-Match (strong comparison).
    assert client.request("PUT", path, card("tags", "Tag Three"),
                          {"If-Match": f"W/{etag2}", "Content-Type": "text/vcard"})[0] == 412
    # If-None-Match with the current tag: a PUT must not overwrite it.
    assert client.request("PUT", path, card("tags", "Tag Four"),
                          {"If-None-Match": etag2, "Content-Type": "text/vcard"})[0] == 412
    assert "Tag Two" in client.get(name)[2]
    # If-None-Match with another tag: the PUT proceeds.
    assert client.request("PUT", path, card("tags", "Tag Five"),
                          {"If-None-Match": '"other"', "Content-Type": "text/vcard"}
                          )[0] in (200, 204)
    assert "Tag Five" in client.get(name)[2]
    # DELETE with a stale tag in a list: 412; with the current one in the list: gone.
    current = client.get(name)[1]["etag"]
    assert client.request("DELETE", path, headers={"If-Match": f'"a", {etag}'})[0] == 412
    assert client.request("DELETE", path, headers={"If-Match": f'"a", {current}'}
                          )[0] in (200, 204)


def test_depth_infinity_is_refused_with_finite_depth(client: DavClient) -> None:
    for path in (f"/{USER}/", client.book, "/"):
        status, text = client.propfind(path, depth="infinity")
        assert status == 403, (path, text)
        root = ET.fromstring(text)
        assert root.find("{DAV:}propfind-finite-depth") is not None
        assert "Depth 0 or 1" in text
    status, text = client.propfind(client.book, depth="2")
    assert status == 400 and "Depth" in text


@pytest.mark.parametrize("body, content_type", [
    (b"hello, this is not a contact", "text/plain"),
    (b"\x00\x01\x02\xff" * 50, "application/octet-stream"),
    (b'{"fn": "JSON Person"}', "application/json"),
    (b"<vcard><fn>XML</fn></vcard>", "application/xml"),
    (b"", "text/vcard"),
])
def test_non_vcard_bodies_are_refused_with_a_reason(client: DavClient, body: bytes,
                                                    content_type: str) -> None:
    before = client.etags()
    status, headers, text = client.request("PUT", f"{client.book}not-a-card.vcf", body,
                                           {"Content-Type": content_type})
    assert status in (400, 415), (status, text)
    assert text.strip() and "\n" not in text.strip() and "Traceback" not in text
    assert client.etags() == before


def test_icalendar_in_an_address_book_is_refused(client: DavClient) -> None:
    event = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VEVENT\r\n"
             "UID:ev-1\r\nDTSTART:20240101T000000Z\r\nDTSTAMP:20240101T000000Z\r\n"
             "SUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    status, _, text = client.request("PUT", f"{client.book}ev-1.ics", event,
                                     {"Content-Type": "text/calendar"})
    assert status in (400, 415) and "VCALENDAR" in text
    assert client.get("ev-1.ics")[0] == 404


def test_unknown_report_is_refused_not_answered_empty(client: DavClient) -> None:
    status, text = client.report('<?xml version="1.0"?><D:no-such-report xmlns:D="DAV:"/>')
    assert status == 403
    assert ET.fromstring(text).find("{DAV:}supported-report") is not None


def test_options_advertise_addressbook(client: DavClient) -> None:
    status, headers, _ = client.request("OPTIONS", client.book)
    assert status == 200
    assert "addressbook" in headers["dav"] and "3" in headers["dav"]
    assert {"REPORT", "PROPFIND", "PUT", "DELETE"} <= {
        m.strip() for m in headers["allow"].split(",")}


def test_card_properties_match_get(client: DavClient) -> None:
    status, headers, _ = client.put("props-1.vcf", card("props-1", "Prop Erty"))
    assert status == 201
    root = _props(client, f"{client.book}props-1.vcf", "D:getetag", "D:getcontenttype",
                  "D:resourcetype")
    etag = _found(root, "{DAV:}getetag")
    ctype = _found(root, "{DAV:}getcontenttype")
    assert etag is not None and etag.text == headers["etag"] == client.get("props-1.vcf")[1][
        "etag"]
    assert ctype is not None and (ctype.text or "").startswith("text/vcard")
    entries = client.query('<C:prop-filter name="UID"><C:text-match match-type="equals">'
                           'props-1</C:text-match></C:prop-filter>')
    assert [(e.href, e.etag) for e in entries] == [(f"{client.book}props-1.vcf",
                                                   headers["etag"])]


def test_address_data_round_trips_in_reports(client: DavClient) -> None:
    text = card("rt-1", "Round Trip", "EMAIL:rt@example.com", "NOTE:a\\, b\\; c")
    assert client.put("rt-1.vcf", text)[0] == 201
    _, _, stored = client.get("rt-1.vcf")
    [entry] = client.multiget([f"{client.book}rt-1.vcf"])
    assert entry.data is not None
    assert entry.data.replace("\r\n", "\n") == stored.replace("\r\n", "\n")
    token, entries = parse_multistatus(client.report(
        '<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" xmlns:C="'
        f'{CARDDAV}"><D:prop><C:address-data/></D:prop><C:filter><C:prop-filter name="EMAIL">'
        '<C:text-match match-type="equals">rt@example.com</C:text-match></C:prop-filter>'
        '</C:filter></C:addressbook-query>')[1])
    assert [e.data for e in entries] == [entry.data]


def test_errors_are_4xx_with_a_reason(client: DavClient) -> None:
    requests: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("PROPPATCH", client.book, b"<D:propertyupdate xmlns:D='DAV:'><D:set>", {}),
        ("REPORT", client.book, b"not xml", {}),
        ("MKCOL", f"{client.book}sub/", b"", {}),
        ("POST", client.book, b"x", {}),
        ("PUT", f"/{USER}/contacts", b"BEGIN:VCARD\r\nEND:VCARD\r\n",
         {"Content-Type": "text/vcard"}),
        ("REPORT", client.book, b'<C:addressbook-query xmlns:C="' + CARDDAV.encode()
         + b'" xmlns:D="DAV:"><C:filter><C:prop-filter name="FN"><C:text-match '
         b'match-type="regex">x</C:text-match></C:prop-filter></C:filter>'
         b'</C:addressbook-query>', {}),
    ]
    for method, path, body, headers in requests:
        status, _, text = client.request(method, path, body, headers)
        assert 400 <= status < 500, (method, path, status, text)
        assert text.strip() and "Traceback" not in text, (method, path)


def test_href_encoding_survives(client: DavClient) -> None:
    name = "caf%C3%A9%20%2B%20bar.vcf"
    assert client.request("PUT", client.book + name, card("enc-1", "Enc Oded"),
                          {"Content-Type": "text/vcard"})[0] == 201
    hrefs = set(client.etags())
    assert any("enc-1" not in h and ("caf" in h and "bar" in h) for h in hrefs)
    assert client.request("GET", client.book + name)[0] == 200


def test_server_log_has_no_500(srv: ServerProcess, client: DavClient) -> None:
    """Run last: nothing the module sent made the server fail."""
    lines = [line for line in srv.log().splitlines() if " cardfile: " in line]
    assert lines and not [line for line in lines if re.search(r" 5\d\d \d", line)]


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_a_book_s_properties_changed_anywhere_are_what_every_request_reads(
        srv: ServerProcess, client: DavClient) -> None:
    """Each worker keeps the props it read while the file's stat is unchanged
    (``AdapterCollection.get_meta``): a PROPPATCH through any worker, another
    program replacing ``.Radicale.props``, and an edit of it in place that
    keeps its length must each be what the next requests read, on every worker."""
    def name() -> str | None:
        found = _found(_props(client, client.book, "D:displayname"), "{DAV:}displayname")
        return None if found is None else found.text

    def names() -> set[str | None]:  # fresh connections, spread over the workers
        return {name() for _ in range(12)}

    body = ('<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:">'
            "<D:set><D:prop><D:displayname>Alpha</D:displayname></D:prop></D:set>"
            "</D:propertyupdate>")
    assert len(names()) == 1  # every worker has read the props
    status, _, text = client.request("PROPPATCH", client.book, body)
    assert status == 207, text
    assert names() == {"Alpha"}
    props_file = srv.book_dir() / ".Radicale.props"
    props = json.loads(props_file.read_text())
    replacement = props_file.with_name(".Radicale.props.new")
    replacement.write_text(json.dumps({**props, "D:displayname": "Bravo"}))
    os.replace(replacement, props_file)  # another program, the way Radicale writes it
    assert names() == {"Bravo"}
    time.sleep(0.05)  # past the file system's clock tick: an edit in place moves the mtime
    with open(props_file, "r+b") as f:  # same length, same inode
        text_now = f.read()
        f.seek(0)
        f.write(text_now.replace(b"Bravo", b"Bravx"))
    assert names() == {"Bravx"}
