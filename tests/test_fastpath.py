"""The streamed listings (plugin/fastpath.py) answer exactly what Radicale answers.

Every request is sent twice to the same real server: once as a client sends
it, once with ``X-Cardfile-No-Fastpath: 1``, which hands it to Radicale's own
request handling. Both answers are parsed and compared: hrefs, statuses,
props and their values (card text byte for byte after XML parsing), the
sync-token. The fast writer names the DAV: namespace "D" where Radicale's
ElementTree makes it the default namespace: that is how a test knows which
path answered (the two are XML-equivalent). Small answers carry a
Content-Length, big ones are streamed without one.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import defusedxml.ElementTree as DefusedET
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from radicale import pathutils

from cardfile.plugin.dav import fastpath, item_get, multistatus
from tests.conftest import (
    EDITS_THE_FOLDER,
    PASSWORD,
    USER,
    ServerProcess,
    free_port,
    merged_config,
    start_server,
)
from tests.davclient import card
from tests.test_hostile import XML_ATTACKS

BOOK = f"/{USER}/contacts/"
BYPASS = {"X-Cardfile-No-Fastpath": "1"}
NS = ('xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav" '
      'xmlns:CS="http://calendarserver.org/ns/" xmlns:X="urn:example:x"')
PHOTO = base64.b64encode(bytes(range(256)) * 8).decode()
CARDS = 600  # more than one chunk (500 responses) of a streamed answer
#: How each writer starts an answer: the fast one names DAV: "D", Radicale's makes it the default.
FAST_XML = b"<?xml version='1.0' encoding='utf-8'?>\n<D:multistatus "
RADICALE_XML = b"<?xml version='1.0' encoding='utf-8'?>\n<multistatus "


def _awkward_cards() -> dict[str, bytes]:
    """File name -> bytes: the shapes that break naive XML writers."""
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + PHOTO
    folded = "\r\n ".join(photo[i:i + 74] for i in range(0, len(photo), 74))
    cards = {
        "amp.vcf": card("amp", "Tom & Jerry <cartoon>", "NOTE:a < b && c > d ]]> end"),
        "unicode.vcf": card("unicode", "Zoë Ångström", "NOTE:日本語 ✓ \U0001F600"),
        "folded.vcf": card("folded", "Fold Ed", "NOTE:" + "long text " * 20 + "\r\n  continued"),
        "photo.vcf": card("photo", "Pic Ture", folded),
        "sp ace&amp.vcf": card("space", "Space Name"),
        "café.vcf": card("cafe", "Café Owner"),
    }
    files = {name: text.encode() for name, text in cards.items()}
    files["lf-only.vcf"] = card("lf", "Lf Only").replace("\r\n", "\n").encode()
    return files


#: A card file as a Windows editor saves it, put in the folder by hand (the file store
#: only): its BOM is neither served nor counted in a length.
BOM_CARD = b"\xef\xbb\xbf" + card("bom", "Byte Order").encode()


def bom_cards(server: ServerProcess) -> int:
    """1 where the module's book holds ``BOM_CARD`` (the file store), else 0."""
    return int((server.book_dir() / "bom.vcf").exists())


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, module_store_config: str
        ) -> Iterator[ServerProcess]:
    # Its login tests fail on purpose, many times from one address: no throttle here.
    server = start_server(tmp_path_factory.mktemp("fastpath"),
                          {USER: PASSWORD, "bob": "bob's password"},
                          extra_config="[auth]\nfailed_logins = 0\n",
                          store_config=module_store_config)
    try:
        assert request(server, "PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
        assert request(server, "PROPFIND", "/bob/", headers={"Depth": "0"},
                       user="bob", password="bob's password")[0] == 207
        server.seed({f"card-{i:04d}.vcf": card(
            f"card-{i}", f"Person {i}", f"EMAIL:p{i}@example.com",
            f"CATEGORIES:{'Family' if i % 7 == 0 else 'Work'}").encode() for i in range(CARDS)})
        server.seed(_awkward_cards())
        if not module_store_config:
            (server.book_dir() / "bom.vcf").write_bytes(BOM_CARD)
        status, _, _ = request(server, "PUT", BOOK + "put-1.vcf", card(
            "put-1", "Put & Stored", "NOTE:via <PUT>").encode(),
            {"Content-Type": "text/vcard"})
        assert status == 201
        yield server
    finally:
        server.stop()


def request(server: ServerProcess, method: str, path: str, body: bytes | str = b"",
            headers: dict[str, str] | None = None, user: str | None = USER,
            password: str = PASSWORD) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    hdrs = {"User-Agent": "cardfile-tests/1.0", "Content-Type": "application/xml"}
    if user is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
    hdrs.update(headers or {})
    try:
        conn.request(method, path, body=body.encode() if isinstance(body, str) else body,
                     headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        found = {k.lower(): v for k, v in resp.getheaders()}
        if found.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        return resp.status, found, data
    finally:
        conn.close()


def canonical(element: ET.Element) -> Any:
    return (element.tag, (element.text or "").strip() if len(element) else element.text or "",
            tuple(sorted(element.attrib.items())), tuple(canonical(c) for c in element))


def parse(body: bytes) -> dict[str, Any]:
    """token and href -> (status, {propstat status: {prop: value}}), order-free.

    An href Radicale answers twice (a multiget naming the book and a card in
    it) maps to the list of its responses.
    """
    root = ET.fromstring(body)
    responses: dict[str, Any] = {}
    for response in root.findall("{DAV:}response"):
        href = response.findtext("{DAV:}href")
        assert href, "a response without href"
        propstats: dict[str, dict[str, Any]] = {}
        for propstat in response.findall("{DAV:}propstat"):
            props = propstats.setdefault(propstat.findtext("{DAV:}status") or "", {})
            for prop in propstat.find("{DAV:}prop") or []:
                props[prop.tag] = canonical(prop)
        entry = (response.findtext("{DAV:}status"), propstats)
        if href in responses:
            previous = responses[href]
            entry = sorted([*(previous if isinstance(previous, list) else [previous]), entry],
                           key=repr)
        responses[href] = entry
    return {"token": root.findtext("{DAV:}sync-token"), "responses": responses,
            "root": root.tag}


def both(server: ServerProcess, method: str, body: str, path: str = BOOK,
         headers: dict[str, str] | None = None, streamed: bool = True,
         **auth: Any) -> tuple[int, bytes, bytes]:
    """The fast answer and Radicale's; asserts they agree. Returns status, bodies."""
    fast = request(server, method, path, body, headers, **auth)
    slow = request(server, method, path, body, {**(headers or {}), **BYPASS}, **auth)
    assert fast[0] == slow[0], (fast, slow)
    assert slow[2].startswith(RADICALE_XML) or fast[0] != 207, slow[2][:100]
    assert fast[2].startswith(FAST_XML if streamed else RADICALE_XML) or fast[0] != 207
    assert fast[1].get("content-type") == slow[1].get("content-type")
    assert fast[1].get("dav") == slow[1].get("dav")
    if fast[0] == 207:
        assert parse(fast[2]) == parse(slow[2])
    return fast[0], fast[2], slow[2]


def propfind(*props: str) -> str:
    inner = "".join(f"<{p}/>" for p in props)
    return f'<?xml version="1.0"?><D:propfind {NS}><D:prop>{inner}</D:prop></D:propfind>'


def multiget(hrefs: list[str], *props: str) -> str:
    inner = "".join(f"<{p}/>" for p in props or ("D:getetag", "C:address-data"))
    refs = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (f'<?xml version="1.0"?><C:addressbook-multiget {NS}><D:prop>{inner}</D:prop>'
            f"{refs}</C:addressbook-multiget>")


def sync(token: str = "", *props: str) -> str:
    inner = "".join(f"<{p}/>" for p in props or ("D:getetag",))
    return (f'<?xml version="1.0"?><D:sync-collection {NS}><D:sync-token>{token}'
            f"</D:sync-token><D:sync-level>1</D:sync-level><D:prop>{inner}</D:prop>"
            f"</D:sync-collection>")


def card_hrefs(server: ServerProcess) -> list[str]:
    status, body, _ = both(server, "PROPFIND", propfind("D:getetag"), headers={"Depth": "1"})
    assert status == 207
    return sorted(h for h in parse(body)["responses"] if not h.endswith("/"))


# -- PROPFIND Depth 1 ------------------------------------------------------------------
@pytest.mark.parametrize("props", [
    ("D:getetag",),
    ("D:getetag", "D:getcontenttype", "D:getlastmodified", "D:resourcetype"),
    ("X:unknown", "D:getetag", "D:displayname", "CS:getctag", "D:sync-token",
     "C:address-data", "D:resourcetype", "D:getetag"),
    ("X:unknown",),
    (),
])
def test_propfind_depth1_is_radicales_answer(srv: ServerProcess, props: tuple[str, ...]) -> None:
    status, body, _ = both(srv, "PROPFIND", propfind(*props), headers={"Depth": "1"})
    assert status == 207
    responses = parse(body)["responses"]
    assert len(responses) == CARDS + len(_awkward_cards()) + 2 + bom_cards(srv)  # + put-1, the book
    assert BOOK in responses and "/alice/contacts/sp%20ace%26amp.vcf" in responses


def test_big_answers_are_streamed_and_small_ones_have_a_length(srv: ServerProcess) -> None:
    status, headers, _ = request(srv, "PROPFIND", BOOK, propfind("D:getetag"), {"Depth": "1"})
    assert status == 207 and "content-length" not in headers
    status, headers, body = request(srv, "REPORT", BOOK, multiget([BOOK + "amp.vcf"]))
    assert status == 207 and headers["content-length"] == str(len(body))
    assert body.startswith(FAST_XML)


def test_propfind_is_gzipped_when_asked(srv: ServerProcess) -> None:
    status, body, _ = both(srv, "PROPFIND", propfind("D:getetag"),
                           headers={"Depth": "1", "Accept-Encoding": "gzip"})
    assert status == 207 and len(parse(body)["responses"]) > CARDS


ALLPROP = f'<?xml version="1.0"?><D:propfind {NS}><D:allprop/></D:propfind>'
#: Every prop Radicale answers for a card from the user, the rights or the book.
RADICALE_ITEM_PROPS = ("D:principal-collection-set", "D:current-user-principal",
                       "D:current-user-privilege-set", "D:supported-report-set", "D:owner",
                       "C:max-resource-size", "D:getcontentlength", "D:getetag",
                       "D:getlastmodified", "D:getcontenttype", "D:resourcetype", "X:unknown")


@pytest.mark.parametrize("body, depth", [
    (ALLPROP, "1"),
    (ALLPROP, "0"),
    (f'<?xml version="1.0"?><D:propfind {NS}><D:allprop/><D:include><D:getetag/>'
     "</D:include></D:propfind>", "1"),
    (f'<?xml version="1.0"?><D:propfind {NS}><D:propname/></D:propfind>', "1"),
    (propfind("D:getetag", "D:current-user-privilege-set"), "1"),
    (propfind("D:getetag", "D:getcontentlength"), "1"),
    (propfind("D:getcontentlength", "D:displayname"), "0"),
    (propfind(*RADICALE_ITEM_PROPS), "1"),
    ("", "1"),
    ("", "0"),
])
def test_propfinds_of_any_prop_are_radicales_answer(srv: ServerProcess, body: str,
                                                    depth: str) -> None:
    status, fast, _ = both(srv, "PROPFIND", body, headers={"Depth": depth})
    assert status == 207
    assert len(parse(fast)["responses"]) == (1 if depth == "0" else
                                             CARDS + len(_awkward_cards()) + 2 + bom_cards(srv))


def test_a_propfinds_lengths_are_what_a_get_serves(srv: ServerProcess) -> None:
    status, body, _ = both(srv, "PROPFIND", ALLPROP, headers={"Depth": "1"})
    assert status == 207
    lengths = {href: int(r[1]["HTTP/1.1 200 OK"]["{DAV:}getcontentlength"][1])
               for href, r in parse(body)["responses"].items()}
    names = ["unicode.vcf", "lf-only.vcf", "sp%20ace%26amp.vcf", "put-1.vcf", "bom.vcf"]
    for name in names[:len(names) - 1 + bom_cards(srv)]:
        status, _, card_text = request(srv, "GET", BOOK + name)
        assert status == 200 and lengths[BOOK + name] == len(card_text), name
    if bom_cards(srv):
        assert lengths[BOOK + "bom.vcf"] == len(BOM_CARD) - 3
    status, _, whole_book = request(srv, "GET", BOOK)
    assert status == 200 and lengths[BOOK] == len(whole_book)
    assert lengths[BOOK] == sum(length for href, length in lengths.items() if href != BOOK)


def test_a_propfind_whose_first_card_has_an_awkward_name(srv: ServerProcess) -> None:
    """The card Radicale is asked about first (the first by name) needs quoting."""
    status, _, _ = request(srv, "MKCOL", f"/{USER}/odd/", (
        f'<?xml version="1.0"?><D:mkcol {NS}><D:set><D:prop><D:resourcetype><D:collection/>'
        "<C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>"))
    assert status == 201
    srv.seed({" lead & space é.vcf": card("odd-1", "Odd One").encode(),
              "plain.vcf": card("odd-2", "Plain Two").encode()}, book="odd")
    for body in (ALLPROP, propfind("D:getetag", "D:getlastmodified")):
        status, fast, _ = both(srv, "PROPFIND", body, path=f"/{USER}/odd/",
                               headers={"Depth": "1"})
        assert status == 207
        assert f"/{USER}/odd/%20lead%20%26%20space%20%C3%A9.vcf" in parse(fast)["responses"]


@pytest.mark.parametrize("body, depth, path", [
    (propfind("D:getetag"), "0", BOOK),
    (ALLPROP, "1", f"/{USER}/"),
    (propfind("D:getetag"), "1", BOOK + "card-0001.vcf"),
    (ALLPROP, "0", BOOK + "card-0001.vcf"),
])
def test_other_propfinds_are_left_to_radicale(srv: ServerProcess, body: str, depth: str,
                                              path: str) -> None:
    status, _, _ = both(srv, "PROPFIND", body, path=path, headers={"Depth": depth},
                        streamed=False)
    assert status == 207


# -- addressbook-multiget --------------------------------------------------------------
def test_multiget_of_every_card_in_one_request_and_in_batches(srv: ServerProcess) -> None:
    hrefs = card_hrefs(srv)
    status, body, slow = both(srv, "REPORT", multiget(hrefs))
    assert status == 207
    data = {h: r[1]["HTTP/1.1 200 OK"]["{urn:ietf:params:xml:ns:carddav}address-data"][1]
            for h, r in parse(body)["responses"].items()}
    assert len(data) == len(hrefs)
    # Card text as Radicale's XML gives it (CRLF read back as LF by the parser).
    expected = _awkward_cards()["amp.vcf"].decode().replace("\r\n", "\n")
    assert data["/alice/contacts/amp.vcf"] == expected
    assert data["/alice/contacts/photo.vcf"].count(PHOTO[:60]) == 1
    for start in range(0, len(hrefs), 10):
        assert both(srv, "REPORT", multiget(hrefs[start:start + 10]))[0] == 207


def test_multiget_answers_missing_and_foreign_hrefs_like_radicale(srv: ServerProcess) -> None:
    hrefs = [
        BOOK + "card-0003.vcf", BOOK + "card-0003.vcf", BOOK + "nope.vcf",
        "/bob/contacts/card-0001.vcf", "/elsewhere.vcf", BOOK + "caf%C3%A9.vcf",
        f"http://127.0.0.1:{srv.port}{BOOK}card-0004.vcf", BOOK + "sp%20ace%26amp.vcf",
        BOOK + "..%2Fescape.vcf", BOOK + "amp.vcf",
    ]
    for props in [("D:getetag",), ("D:getcontenttype", "X:unknown", "D:getetag"),
                  ("C:address-data",), ()]:
        status, body, _ = both(srv, "REPORT", multiget(hrefs, *props))
        assert status == 207
    found = parse(body)["responses"]
    assert found[BOOK + "nope.vcf"][0] == "HTTP/1.1 404 Not Found"


def test_multiget_naming_the_book_itself_is_left_to_radicale(srv: ServerProcess) -> None:
    status, _, _ = both(srv, "REPORT", multiget([BOOK, BOOK + "amp.vcf"]), streamed=False)
    assert status == 207


# -- sync-collection --------------------------------------------------------------------
def test_sync_collection_initial_incremental_and_unchanged(srv: ServerProcess) -> None:
    status, body, _ = both(srv, "REPORT", sync())
    token = parse(body)["token"]
    assert status == 207 and token
    assert both(srv, "REPORT", sync("", "D:getetag", "C:address-data", "X:unknown"))[0] == 207
    # A change, a deletion and a new card: the deleted card is a 404 entry.
    assert request(srv, "PUT", BOOK + "card-0010.vcf", card("card-10", "Changed Ten"),
                   {"Content-Type": "text/vcard"})[0] in (201, 204)
    assert request(srv, "DELETE", BOOK + "card-0011.vcf")[0] in (200, 204)
    assert request(srv, "PUT", BOOK + "new-1.vcf", card("new-1", "New One"),
                   {"Content-Type": "text/vcard"})[0] == 201
    status, body, _ = both(srv, "REPORT", sync(token, "D:getetag", "C:address-data"))
    changes = parse(body)
    assert set(changes["responses"]) == {BOOK + "card-0010.vcf", BOOK + "card-0011.vcf",
                                         BOOK + "new-1.vcf"}
    assert changes["responses"][BOOK + "card-0011.vcf"][0] == "HTTP/1.1 404 Not Found"
    status, body, _ = both(srv, "REPORT", sync(changes["token"]))
    assert parse(body)["responses"] == {} and parse(body)["token"] == changes["token"]


@pytest.mark.parametrize("token", ["http://cardfile.org/ns/sync/c0-1-1", "bogus",
                                   "http://cardfile.org/ns/sync/g0-1-1"])
def test_invalid_sync_token_is_radicales_403(srv: ServerProcess, token: str) -> None:
    status, fast, slow = both(srv, "REPORT", sync(token), streamed=False)
    assert status == 403 and b"valid-sync-token" in fast and b"valid-sync-token" in slow


# -- who may ask ------------------------------------------------------------------------
@pytest.mark.slow  # failed logins are delayed on purpose: ~7 s each
@pytest.mark.parametrize("method, body, depth", [
    ("PROPFIND", propfind("D:getetag"), "1"),
    ("REPORT", sync(), "1"),
    ("REPORT", multiget([BOOK + "amp.vcf"]), "1"),
])
def test_logins_and_rights_are_radicales(srv: ServerProcess, method: str, body: str,
                                         depth: str) -> None:
    headers = {"Depth": depth}
    status, _, _ = both(srv, method, body, headers=headers, streamed=False, user=None)
    assert status == 401
    status, _, _ = both(srv, method, body, headers=headers, streamed=False,
                        password="wrong password")
    assert status == 401
    status, _, _ = both(srv, method, body, headers=headers, streamed=False, user="bob",
                        password="bob's password")
    assert status in (403, 404)
    status, _, _ = both(srv, method, body, headers=headers, streamed=False,
                        path=f"/{USER}/missing-book/")
    assert status in (403, 404)


APPLE = {"User-Agent": "macOS/14.1 (23B74) AddressBookCore/2659.1.1"}


def test_the_group_cards_view_is_radicales_answer(srv: ServerProcess) -> None:
    """An Apple client sees each category as a group card among the cards: its
    PROPFIND, syncs and multigets list and serve them as Radicale does."""
    headers = {"Depth": "1", **APPLE}
    for body in (propfind("D:getetag", "D:getlastmodified", "D:getcontenttype"),
                 propfind("D:getetag", "D:getcontentlength"),
                 f'<?xml version="1.0"?><D:propfind {NS}><D:allprop/></D:propfind>'):
        assert both(srv, "PROPFIND", body, headers=headers)[0] == 207
    assert both(srv, "PROPFIND", propfind("D:getcontentlength", "D:getetag"),
                headers={"Depth": "0", **APPLE})[0] == 207  # the book's length counts them
    status, body, _ = both(srv, "REPORT", sync(), headers=APPLE)
    listed, token = parse(body)["responses"], parse(body)["token"]
    assert status == 207 and len(listed) == len(card_hrefs(srv)) + 2  # Family, Work
    assert both(srv, "REPORT", sync("", "D:getetag", "C:address-data"), headers=APPLE)[0] == 207
    everything = [*sorted(listed), BOOK + "missing.vcf"]
    status, body, _ = both(srv, "REPORT", multiget(everything), headers=APPLE)
    served = parse(body)["responses"]
    groups = {href: value for href, (_, props) in served.items()
              for value in [props.get("HTTP/1.1 200 OK", {}).get(
                  "{urn:ietf:params:xml:ns:carddav}address-data", ("", ""))[1]]
              if "X-ADDRESSBOOKSERVER-KIND:group" in value}
    assert len(groups) == 2 and served[BOOK + "missing.vcf"][0] == "HTTP/1.1 404 Not Found"
    assert any("FN:Family" in text and "urn:uuid:card-7" in text for text in groups.values())

    # A new member of Family and of a new category: both group cards are changes.
    assert request(srv, "PUT", BOOK + "apple-new.vcf",
                   card("apple-new", "Apple New", "CATEGORIES:Family,Friends"),
                   {"Content-Type": "text/vcard"})[0] == 201
    try:
        status, body, _ = both(srv, "REPORT", sync(token, "D:getetag", "C:address-data"),
                               headers=APPLE)
        changed = parse(body)["responses"]
        assert BOOK + "apple-new.vcf" in changed and len(changed) == 3, sorted(changed)
    finally:
        assert request(srv, "DELETE", BOOK + "apple-new.vcf")[0] in (200, 204)
    status, body, _ = both(srv, "REPORT", sync(token), headers=APPLE)
    assert BOOK + "apple-new.vcf" in parse(body)["responses"]  # (gone again: a 404)


def test_a_group_card_another_worker_saw_change_and_change_back_is_synced(
        srv: ServerProcess) -> None:
    """Each worker process keeps its own group cards; the index records one set.
    A worker that did not see a member come and go (another did) must still
    record the group card as it is again, or a client that synced the member's
    arrival from the other never learns it left."""
    import io
    import sys

    from cardfile.cli import settings as settings_mod
    from cardfile.plugin.app import CardfileApp

    settings = settings_mod.resolve(str(srv.data_dir),
                                    str(srv.config_path) if srv.config_path else None)
    seen_it, missed_it = (CardfileApp(settings_mod.radicale_configuration(settings))
                          for _ in range(2))
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def ask(app: Any, method: str, path: str, body: str = "") -> tuple[str, bytes]:
        data = body.encode()
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "",
                   "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": auth,
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1",
                   "HTTP_USER_AGENT": APPLE["User-Agent"], "HTTP_DEPTH": "1",
                   "CONTENT_TYPE": "text/vcard" if method == "PUT" else "application/xml",
                   "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
                   "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http"}
        statuses: list[str] = []
        chunks = app(environ, lambda status, headers, *_: statuses.append(status))
        return statuses[0], b"".join(chunks)

    assert ask(missed_it, "REPORT", BOOK, sync())[0].startswith("207")  # its cards made
    href = BOOK + "comes-and-goes.vcf"
    assert ask(seen_it, "PUT", href, card("comes-and-goes", "Comes Goes",
                                          "CATEGORIES:Family"))[0].startswith("201")
    status, body = ask(seen_it, "REPORT", BOOK, sync())
    after_put = parse(body)["token"]
    assert ask(seen_it, "DELETE", href)[0].startswith(("200", "204"))
    status, body = ask(missed_it, "REPORT", BOOK, sync(after_put))
    changed = parse(body)["responses"]
    groups = [h for h in changed if h != href]
    assert href in changed and len(groups) == 1, sorted(changed)  # the card, and Family
    texts = parse(ask(missed_it, "REPORT", BOOK, multiget(groups))[1])["responses"]
    text = texts[groups[0]][1]["HTTP/1.1 200 OK"]["{urn:ietf:params:xml:ns:carddav}address-data"][1]
    assert "FN:Family" in text and "comes-and-goes" not in text


def test_the_vcard4_group_cards_view_is_radicales_answer(tmp_path: Path,
                                                         store_config: str) -> None:
    """A client that wrote a vCard 4 group card (KIND:group, MEMBER) is served
    its groups in vCard 4 ever after: listed, synced and fetched as Radicale does."""
    server = start_server(tmp_path, store_config=store_config)
    try:
        writer = {"User-Agent": "GroupWriter/2.0 (tests)"}
        server.seed({f"m{i}.vcf": card(f"m{i}", f"Member {i}",
                                        *(["CATEGORIES:Crew"] if i % 2 else [])).encode()
                     for i in range(6)})
        group = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:team-4\r\nFN:Team\r\nKIND:group\r\n"
                 "MEMBER:urn:uuid:m0\r\nMEMBER:urn:uuid:m2\r\nEND:VCARD\r\n")
        assert request(server, "PUT", BOOK + "team-4.vcf", group,
                       {"Content-Type": "text/vcard", **writer})[0] == 201
        assert both(server, "PROPFIND", propfind("D:getetag", "D:getcontentlength"),
                    headers={"Depth": "1", **writer})[0] == 207
        status, body, _ = both(server, "REPORT", sync("", "D:getetag", "C:address-data"),
                               headers=writer)
        texts = [props["HTTP/1.1 200 OK"]["{urn:ietf:params:xml:ns:carddav}address-data"][1]
                 for _, props in parse(body)["responses"].values()]
        groups = sorted(text for text in texts if "KIND:group" in text)
        assert len(groups) == 2 and all("VERSION:4.0" in text for text in groups)
        assert any("FN:Team" in text and "MEMBER:urn:uuid:m2" in text for text in groups)
        hrefs = sorted(parse(body)["responses"])
        assert both(server, "REPORT", multiget(hrefs), headers=writer)[0] == 207
    finally:
        server.stop()


def test_a_query_in_the_group_cards_view_is_left_to_radicale(srv: ServerProcess) -> None:
    body = query(_match("FN", "Family"), "D:getetag")
    assert both(srv, "REPORT", body, headers={"Depth": "1", **APPLE}, streamed=False)[0] == 207


def test_streamed_requests_are_logged_with_status(srv: ServerProcess) -> None:
    both(srv, "REPORT", sync())
    assert any(line.endswith("agent='cardfile-tests/1.0'") and "REPORT /alice/contacts/ 207"
               in line for line in srv.log().splitlines())


def test_oversized_cards_are_not_listed(tmp_path: Path, store_config: str) -> None:
    """Cards stored before the size limit was lowered are left out, as Radicale does."""
    before = start_server(tmp_path, store_config=store_config)
    try:
        before.seed({"big.vcf": _awkward_cards()["photo.vcf"],
                     "small.vcf": card("small", "Small One").encode()})
    finally:
        before.stop()
    server = ServerProcess(before.data_dir, free_port(), merged_config(
        "[server]\nmax_resource_size = 1000\n", store_config))
    try:
        _, body, _ = both(server, "PROPFIND", propfind("D:getetag"), headers={"Depth": "1"})
        assert set(parse(body)["responses"]) == {BOOK, BOOK + "small.vcf"}
        _, body, _ = both(server, "REPORT", multiget([BOOK + "big.vcf", BOOK + "small.vcf"]))
        assert parse(body)["responses"][BOOK + "big.vcf"][0] == "HTTP/1.1 404 Not Found"
    finally:
        server.stop()


# -- the shortcuts the fast path takes are exact -----------------------------------------
_PATHISH = st.text(alphabet=st.sampled_from(list("/.ab%;?# \t\r\né:")), max_size=24)


@given(st.one_of(_PATHISH, st.text(max_size=24)))
@settings(max_examples=500, deadline=None)
def test_href_shortcuts_equal_radicales_functions(href: str) -> None:
    assert fastpath._url_path(href) == urlparse(href).path
    assert fastpath._sanitized(href) == pathutils.sanitize_path(href)


_XMLISH = st.lists(st.sampled_from([
    "<", ">", "/", "!", "<!DOCTYPE x [", "<!ENTITY a 'b'>", "]>", "&a;", "&amp;", "&#233;",
    "<?xml version='1.0' encoding='cp500'?>", "<!--c-->", "<![CDATA[x]]>",
    '<D:prop xmlns:D="DAV:">', "</D:prop>", "<D:getetag/>", "<x>", "</x>", "é", " ", "text",
    "SYSTEM 'file:///etc/passwd'", "%p;"]), max_size=12).map("".join)


def _parsed(parse: Any, text: str) -> str:
    try:
        return ET.tostring(parse(text), encoding="unicode")
    except Exception as e:  # noqa: BLE001 (the kind of failure is what is compared)
        return f"refused: {type(e).__name__}"


@pytest.mark.parametrize("name", sorted(XML_ATTACKS))
def test_the_fast_paths_xml_parse_refuses_what_defusedxml_refuses(name: str) -> None:
    body = XML_ATTACKS[name]
    assert _parsed(fastpath._element_of, body) == _parsed(DefusedET.fromstring, body)


@given(_XMLISH)
@settings(max_examples=500, deadline=None)
def test_the_fast_paths_xml_parse_equals_defusedxml(text: str) -> None:
    """Same tree, or a refusal of the same kind: entities declared in any way
    reach defusedxml, which refuses them."""
    ours, theirs = _parsed(fastpath._element_of, text), _parsed(DefusedET.fromstring, text)
    if theirs.startswith("refused"):
        assert ours.startswith("refused"), (text, ours, theirs)
    else:
        assert ours == theirs, text


def test_writer_escapes_as_elementtree_does() -> None:
    text = "A & B <c> ]]> \"q\" 'a'\r\nnext\tline é \U0001F600"
    element = ET.Element("{DAV:}x")
    element.text = text
    expected = ET.tostring(element, encoding="unicode").split(">", 1)[1].rsplit("<", 1)[0]
    assert multistatus.escape(text) == expected


# -- GET and HEAD of one card (plugin/item_get.py) ---------------------------------------
def _same_answer(server: ServerProcess, method: str, path: str,
                 headers: dict[str, str] | None = None, **auth: Any) -> tuple[int, bytes]:
    """GET/HEAD sent both ways: status, every header but Date, and the body agree."""
    fast = request(server, method, path, headers=headers, **auth)
    slow = request(server, method, path, headers={**(headers or {}), **BYPASS}, **auth)
    assert fast[0] == slow[0], (fast, slow)
    assert ({k: v for k, v in fast[1].items() if k != "date"}
            == {k: v for k, v in slow[1].items() if k != "date"})
    assert fast[2] == slow[2]
    return fast[0], fast[2]


@pytest.mark.parametrize("name", ["card-0001.vcf", "amp.vcf", "unicode.vcf", "photo.vcf",
                                  "sp ace&amp.vcf", "café.vcf", "lf-only.vcf", "put-1.vcf"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("encoding", ["", "gzip, deflate"])
def test_get_of_one_card_is_radicales_answer(srv: ServerProcess, name: str, method: str,
                                             encoding: str) -> None:
    headers = {"Accept-Encoding": encoding} if encoding else {}
    status, body = _same_answer(srv, method, BOOK + quote(name), headers)
    assert status == 200
    if method == "GET":
        assert body == (srv.book_dir() / name).read_bytes().decode().encode()
    else:
        assert body == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("encoding", ["", "gzip, deflate"])
def test_get_of_a_whole_book_is_radicales_answer(srv: ServerProcess, method: str,
                                                 encoding: str) -> None:
    headers = {"Accept-Encoding": encoding} if encoding else {}
    status, body = _same_answer(srv, method, BOOK, headers)
    assert status == 200
    if method == "GET":
        assert body.count(b"BEGIN:VCARD") == CARDS + len(_awkward_cards()) + 1 + bom_cards(srv)
        assert b"\xef\xbb\xbf" not in body


def test_a_book_bigger_than_a_chunk_is_streamed_whole(srv: ServerProcess) -> None:
    status, _, _ = request(srv, "MKCOL", f"/{USER}/photos/", (
        f'<?xml version="1.0"?><D:mkcol {NS}><D:set><D:prop><D:resourcetype><D:collection/>'
        "<C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>"))
    assert status == 201
    photo = "PHOTO;ENCODING=b;TYPE=JPEG:" + PHOTO
    folded = "\r\n ".join(photo[i:i + 74] for i in range(0, len(photo), 74))
    cards = {f"p{i:03d}.vcf": card(f"photo-{i}", f"Photo {i}", folded).encode()
             for i in range(300)}
    srv.seed(cards, book="photos")
    assert sum(map(len, cards.values())) > 2 * multistatus.CHUNK_BYTES
    for encoding in ("", "gzip"):
        fast = request(srv, "GET", f"/{USER}/photos/", headers={"Accept-Encoding": encoding})
        slow = request(srv, "GET", f"/{USER}/photos/",
                       headers={"Accept-Encoding": encoding, **BYPASS})
        assert fast[0] == slow[0] == 200
        assert "content-length" not in fast[1] and fast[1]["etag"] == slow[1]["etag"]
        assert fast[2] == slow[2] == b"".join(cards[name] for name in sorted(cards))


@pytest.mark.parametrize("path, auth", [
    (BOOK + "no-such-card.vcf", {}),
    (BOOK + "amp.vcf", {"user": None}),
    (BOOK + "amp.vcf", {"password": "wrong password"}),
    (BOOK + "amp.vcf", {"user": "bob", "password": "bob's password"}),
    (BOOK + "amp.vcf?view=freebusy", {}),
    (BOOK + "..%2Famp.vcf", {}),
    (BOOK, {"user": "bob", "password": "bob's password"}),
    (BOOK, {"password": "wrong password"}),
    (BOOK + "?view=freebusy", {}),
])
def test_get_refusals_and_misses_are_radicales(srv: ServerProcess, path: str,
                                               auth: dict[str, Any]) -> None:
    status, _ = _same_answer(srv, "GET", path, **auth)
    assert status != 200


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_get_sees_a_card_edited_in_place_at_once(srv: ServerProcess) -> None:
    target = srv.book_dir() / "edited-in-place.vcf"
    target.write_bytes(card("in-place", "Before Edit").encode())
    first = request(srv, "GET", BOOK + "edited-in-place.vcf")
    target.write_bytes(card("in-place", "After The Edit, Longer").encode())
    status, body = _same_answer(srv, "GET", BOOK + "edited-in-place.vcf")
    assert status == 200 and b"After The Edit" in body
    assert request(srv, "GET", BOOK + "edited-in-place.vcf")[1]["etag"] != first[1]["etag"]


def test_get_of_an_indexed_card_is_answered_without_radicale(srv: ServerProcess) -> None:
    """The fast answer really is taken (the HTTP tests above only show it is equal)."""
    from cardfile.cli import settings as settings_mod
    from cardfile.plugin.app import CardfileApp
    from cardfile.plugin.contacts import views

    settings = settings_mod.resolve(str(srv.data_dir),
                                    str(srv.config_path) if srv.config_path else None)
    app = CardfileApp(settings_mod.radicale_configuration(settings))
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": BOOK + "amp.vcf", "SCRIPT_NAME": "",
               "HTTP_AUTHORIZATION": auth, "REMOTE_ADDR": "127.0.0.1"}
    answer = item_get.respond(app.fastpath, environ, "GET")
    assert answer is not None
    status, headers, chunks = answer
    assert status == "200 OK"
    assert b"".join(chunks) == (srv.book_dir() / "amp.vcf").read_bytes()
    assert dict(headers)["Content-Type"] == "text/vcard; charset=utf-8"
    missing = dict(environ, PATH_INFO=BOOK + "no-such-card.vcf")
    assert item_get.respond(app.fastpath, missing, "GET") is None  # Radicale's 404
    # In the groups view (an Apple client's): a card, and a group card (made by the server).
    status, body, _ = both(srv, "PROPFIND", propfind("D:getetag"),
                           headers={"Depth": "1", **APPLE})
    group = next(href for href in parse(body)["responses"] if href.endswith(".vcf")
                 and b"X-ADDRESSBOOKSERVER-KIND" in request(srv, "GET", href, headers=APPLE)[2])
    with views.using(views.GROUPS_VIEW):
        answer = item_get.respond(app.fastpath, environ, "GET")
        assert answer is not None
        assert b"".join(answer[2]) == (srv.book_dir() / "amp.vcf").read_bytes()
        answer = item_get.respond(app.fastpath, dict(environ, PATH_INFO=group), "GET")
        assert answer is not None and b"X-ADDRESSBOOKSERVER-KIND:group" in b"".join(answer[2])


def test_an_apple_clients_get_of_a_card_or_a_group_card_is_radicales_answer(
        srv: ServerProcess) -> None:
    status, body, _ = both(srv, "PROPFIND", propfind("D:getetag"),
                           headers={"Depth": "1", **APPLE})
    hrefs = sorted(parse(body)["responses"])
    groups = [h for h in hrefs if h.endswith(".vcf")
              and b"X-ADDRESSBOOKSERVER-KIND" in request(srv, "GET", h, headers=APPLE)[2]]
    assert len(groups) == 2
    for href in [*groups, BOOK + "card-0001.vcf", BOOK + "amp.vcf", BOOK + "no-such.vcf"]:
        for method in ("GET", "HEAD"):
            _same_answer(srv, method, href, APPLE)


# -- addressbook-query --------------------------------------------------------------------
def query(filter_xml: str, *props: str, test: str = "") -> str:
    inner = "".join(f"<{p}/>" for p in props or ("D:getetag", "C:address-data"))
    attr = f' test="{test}"' if test else ""
    return (f'<?xml version="1.0"?><C:addressbook-query {NS}><D:prop>{inner}</D:prop>'
            f"<C:filter{attr}>{filter_xml}</C:filter></C:addressbook-query>")


def _match(prop: str, text: str, match_type: str = "contains", extra: str = "") -> str:
    return (f'<C:prop-filter name="{prop}"><C:text-match collation="i;unicode-casemap" '
            f'match-type="{match_type}"{extra}>{text}</C:text-match></C:prop-filter>')


@pytest.mark.parametrize("filter_xml, test", [
    (_match("CATEGORIES", "family", "equals"), ""),
    (_match("EMAIL", "p12@", "contains"), ""),
    (_match("EMAIL", "p1", "starts-with"), ""),
    (_match("FN", "&amp; jerry &lt;cartoon&gt;", "ends-with"), ""),
    (_match("FN", "ZOË", "contains"), ""),
    (_match("EMAIL", "example.com", "contains", ' negate-condition="yes"'), ""),
    ('<C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>', ""),
    ('<C:prop-filter name="NOTE"/>', ""),
    (_match("CATEGORIES", "family", "equals") + _match("FN", "Person 7", "starts-with"), "allof"),
    (_match("CATEGORIES", "family", "equals") + _match("NOTE", "日本", "contains"), "anyof"),
    ('<C:prop-filter name="FN" test="allof"><C:text-match match-type="contains">Person'
     '</C:text-match><C:text-match match-type="contains" negate-condition="yes">1'
     '</C:text-match></C:prop-filter>', ""),
    (_match("FN", "nobody at all"), ""),
])
def test_addressbook_query_is_radicales_answer(srv: ServerProcess, filter_xml: str,
                                               test: str) -> None:
    status, fast, _ = both(srv, "REPORT", query(filter_xml, test=test),
                           headers={"Depth": "1"})
    assert status == 207
    assert fast.startswith(FAST_XML)


def test_addressbook_query_props_and_counts(srv: ServerProcess) -> None:
    body = query(_match("CATEGORIES", "family", "equals"), "D:getetag", "X:unknown",
                 "D:getcontenttype")
    _, fast, _ = both(srv, "REPORT", body, headers={"Depth": "1"})
    hits = parse(fast)["responses"]
    assert len(hits) == len(range(0, CARDS, 7))  # every seventh card is in Family


@pytest.mark.parametrize("filter_xml", [
    _match("VERSION", "3.0", "equals"),
    '<C:prop-filter name="PRODID"/>',
    '<C:prop-filter name="REV"><C:is-not-defined/></C:prop-filter>',
])
def test_queries_on_bookkeeping_properties_are_left_to_radicale(srv: ServerProcess,
                                                                filter_xml: str) -> None:
    """The index keeps no VERSION, PRODID or REV values; Radicale answers such a filter."""
    status, fast, _ = both(srv, "REPORT", query(filter_xml, "D:getetag"),
                           headers={"Depth": "1"}, streamed=False)
    assert status == 207 and fast.startswith(RADICALE_XML)
    if "VERSION" in filter_xml:
        assert parse(fast)["responses"], "every test card is a vCard 3.0"


def test_param_filter_queries_are_left_to_radicale(srv: ServerProcess) -> None:
    param = ('<C:prop-filter name="EMAIL"><C:param-filter name="TYPE"><C:text-match>'
             "work</C:text-match></C:param-filter></C:prop-filter>")
    status, fast, _ = both(srv, "REPORT", query(param), headers={"Depth": "1"},
                           streamed=False)
    assert status == 207 and fast.startswith(RADICALE_XML)
