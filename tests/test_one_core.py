"""Every client sees what the server has: cards are stored as sent, or answered without ETag.

RFC 6352 6.3.2.3: a PUT answer carries an ETag only when the stored bytes are
the bytes sent. Cardfile keeps a valid card byte for byte; when it must change
one (a repair, a pending category, a group card kept as a category) the answer
has no ETag, so the client fetches the server's version. Checked with raw HTTP,
a DAVx5-shaped client and real vdirsyncer, on the project's own cards.
"""

from __future__ import annotations

import base64
import http.client
import shutil
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess
from tests.davclient import DavClient, card

# Formatting a re-serialising server would rewrite: lower-case names, a parameter
# list vobject reads differently (TYPE=VOICE;MSG,WORK), an Apple item group and
# label, folded lines, a NOTE with unescaped commas.
AS_WRITTEN = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:as-written\r\nfn:Ada Lovelace\r\n"
    "N:Lovelace;Ada;;;\r\nTEL;TYPE=VOICE;MSG,WORK:+44 20 7946 0000\r\n"
    "item1.EMAIL;type=INTERNET;type=pref:ada@example.org\r\n"
    "item1.X-ABLabel:_$!<Other>!$_\r\n"
    "NOTE:Met in London, 1833, at a party\r\n"
    "X-CUSTOM;X-PARAM=\"a,b\":one,two\r\n"
    "URL:http\\://example.org/ada\r\n"
    "ADR;TYPE=HOME:;;12 St James's Square;London;;SW1Y 4JH;UK with a long line that is\r\n"
    " folded here\r\nEND:VCARD\r\n")


def apple_group(uid: str, name: str, members: list[str]) -> str:
    lines = "".join(f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{m}\r\n" for m in members)
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\n"
            f"X-ADDRESSBOOKSERVER-KIND:group\r\n{lines}END:VCARD\r\n")


def test_a_valid_card_is_stored_byte_for_byte(server: ServerProcess, dav: DavClient) -> None:
    status, headers, _ = dav.put("as-written.vcf", AS_WRITTEN)
    assert status == 201 and headers.get("etag")
    got_status, got_headers, body = dav.get("as-written.vcf")
    assert got_status == 200
    assert body == AS_WRITTEN
    assert got_headers["etag"] == headers["etag"]
    assert (server.book_dir() / "as-written.vcf").read_bytes() == AS_WRITTEN.encode()
    # The meaning vobject lost ("TEL;TYPE=VOICE;MSG,WORK" without WORK) is there.
    assert "MSG,WORK" in body


def test_a_card_the_server_changes_is_answered_without_etag(dav: DavClient) -> None:
    apple = DavClient(dav_url(dav), USER, PASSWORD, user_agent="macOS/14.1 (23B74) "
                      "AddressBookCore/2659.1.1")
    # Apple names a member that is not on the server yet: it joins when it arrives.
    assert apple.put("G.vcf", apple_group("G", "Choir", ["late"]))[0] == 201
    sent = card("late", "Lee Late")
    status, headers, _ = dav.put("late.vcf", sent)
    assert status == 201 and "etag" not in headers
    _, got_headers, body = dav.get("late.vcf")
    assert "CATEGORIES:Choir" in body and body != sent and got_headers["etag"]
    # A later PUT of the server's own version changes nothing: it gets its ETag back.
    status, headers, _ = dav.put("late.vcf", body, if_match=got_headers["etag"])
    assert status == 204 and headers.get("etag") == got_headers["etag"]


def dav_url(dav: DavClient) -> str:
    return f"http://{dav.host}:{dav.port}"


REAL_CLIENT_CARDS = [
    ("no VERSION", "BEGIN:VCARD\r\nUID:nover\r\nFN:No Version\r\nEND:VCARD\r\n",
     "FN:No Version"),
    ("no FN, N only", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:nofn\r\nN:Doe;Jane;;;\r\nEND:VCARD\r\n",
     "FN:Jane Doe"),
    ("no FN, email only", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mailonly\r\n"
     "EMAIL:solo@example.org\r\nEND:VCARD\r\n", "FN:solo@example.org"),
    ("legacy property name", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:legacy\r\nFN:Leg Acy\r\n"
     "X-messaging/twitter-All:@legacy\r\nEND:VCARD\r\n", "X-messaging/twitter-All:@legacy"),
    ("empty parameter", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:emptyparam\r\nFN:Em Pty\r\n"
     "EMAIL;TYPE=:empty@example.org\r\nEND:VCARD\r\n", "empty@example.org"),
    ("no UID", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Uid\r\nEND:VCARD\r\n", "UID:nouid-file"),
    ("vCard 2.1 quoted-printable", "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:qp21\r\n"
     "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r\n"
     "TEL;CELL:+49 30 1234\r\nEND:VCARD\r\n", "TEL;CELL:+49 30 1234"),
]


@pytest.mark.parametrize("label,body,kept", REAL_CLIENT_CARDS)
def test_cards_real_clients_write_are_kept(dav: DavClient, label: str, body: str,
                                           kept: str) -> None:
    name = "nouid-file.vcf" if label == "no UID" else f"{label.split()[0].lower()}-x.vcf"
    status, headers, reason = dav.put(name, body)
    assert status in (201, 204), (label, status, reason)
    got_status, got_headers, stored = dav.get(name)
    assert got_status == 200 and kept in stored, (label, stored)
    # Stored as sent (ETag given) or repaired (no ETag): never a client left with stale bytes.
    if stored != body:
        assert "etag" not in headers, label
    else:
        assert headers.get("etag") == got_headers["etag"], label
    assert name in {h.rsplit("/", 1)[-1] for h in dav.etags()}


@pytest.mark.parametrize("label,body,kept", [c for c in REAL_CLIENT_CARDS if c[0] != "no UID"])
def test_the_api_stores_what_carddav_stores(dav: DavClient, label: str, body: str,
                                             kept: str) -> None:
    """One gate for every way in: the API repairs and keeps a card as a CardDAV PUT does."""
    uid = next(line[4:] for line in body.split("\r\n") if line.startswith("UID:"))
    status, _, _ = dav.put(f"{uid}.vcf", body)
    assert status in (201, 204), label
    _, _, over_dav = dav.get(f"{uid}.vcf")
    api_body = body.replace(f"UID:{uid}\r\n", f"UID:api-{uid}\r\n")
    conn = http.client.HTTPConnection(dav.host, dav.port, timeout=60)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    conn.request("POST", "/api/books/contacts/contacts", body=api_body.encode(),
                 headers={"Authorization": f"Basic {auth}", "Content-Type": "text/vcard",
                          "Accept": "text/vcard"})
    answer = conn.getresponse()
    over_api = answer.read().decode()
    conn.close()
    assert answer.status == 201, (label, over_api)
    _, _, stored = dav.get(f"api-{uid}.vcf")
    assert kept in stored, (label, stored)
    assert stored.replace(f"UID:api-{uid}\r\n", f"UID:{uid}\r\n") == over_dav, label


@pytest.mark.parametrize("label,body,words", [
    ("truncated", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:t\r\nFN:Cut", ["never closed"]),
    ("not a vCard", "hello world", ["could not be read", "line"]),
    ("two cards", card("a", "A One") + card("b", "B Two"), ["exactly one"]),
])
def test_what_cannot_be_read_is_refused_with_the_reason(dav: DavClient, label: str, body: str,
                                                        words: list[str]) -> None:
    before = dav.etags()
    status, _, reason = dav.put("bad.vcf", body)
    assert 400 <= status < 500, (label, status)
    assert any(w in reason for w in words), (label, reason)
    assert dav.etags() == before


def test_a_client_that_writes_group_cards_keeps_seeing_them(server: ServerProcess,
                                                            dav: DavClient) -> None:
    """vdirsyncer carrying a Mac's cards, DAVx5 in its group-vCards mode."""
    for uid, fn in (("ann", "Ann Smith"), ("bob", "Bob Jones")):
        assert dav.put(f"{uid}.vcf", card(uid, fn))[0] == 201
    carrier = DavClient(server.url, USER, PASSWORD, user_agent="vdirsyncer/0.19.3")
    thunderbird = DavClient(server.url, USER, PASSWORD,
                            user_agent="Mozilla/5.0 Thunderbird/128.0 CardBook/95.0")
    status, headers, _ = carrier.put("FRIENDS.vcf", apple_group("FRIENDS", "Friends", ["ann"]))
    assert status == 201 and "etag" not in headers
    # The writer lists and reads its group card (vdirsyncer would delete it otherwise) ...
    assert carrier.get("FRIENDS.vcf")[0] == 200
    assert "FRIENDS.vcf" in {h.rsplit("/", 1)[-1] for h in carrier.etags()}
    assert "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:ann" in carrier.get("FRIENDS.vcf")[2]
    # ... a CATEGORIES client sees the group as CATEGORIES on its member, not as a card.
    assert "FRIENDS.vcf" not in {h.rsplit("/", 1)[-1] for h in thunderbird.etags()}
    assert "CATEGORIES:Friends" in thunderbird.get("ann.vcf")[2]
    # A DAVx5 that never wrote a group card starts with CATEGORIES (its CATEGORIES mode
    # would save a group card as a plain contact); one that writes a vCard 4 group moves.
    davx5 = DavClient(server.url, USER, PASSWORD,
                      user_agent="DAVx5/4.4.1-ose (2024/06/05; dav4jvm; okhttp/4.12.0) "
                      "Android/14")
    assert "FRIENDS.vcf" not in {h.rsplit("/", 1)[-1] for h in davx5.etags()}
    v4_group = ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:CLUB\r\nFN:Club\r\nKIND:group\r\n"
                "MEMBER:urn:uuid:bob\r\nEND:VCARD\r\n")
    assert davx5.put("CLUB.vcf", v4_group)[0] == 201
    seen = {h.rsplit("/", 1)[-1] for h in davx5.etags()}
    assert {"CLUB.vcf", "FRIENDS.vcf"} <= seen
    assert "CATEGORIES:Club" in thunderbird.get("bob.vcf")[2]
    # A vCard 4 group writer is served vCard 4 group cards; the vCard 3 writer, vCard 3.
    club = davx5.get("CLUB.vcf")[2]
    assert "VERSION:4.0" in club and "KIND:group" in club and "MEMBER:urn:uuid:bob" in club
    assert "X-ADDRESSBOOKSERVER" not in davx5.get("FRIENDS.vcf")[2]
    assert "X-ADDRESSBOOKSERVER-KIND:group" in carrier.get("CLUB.vcf")[2]
    # Each view's incremental sync reports the change of a group's members.
    _, token, _ = davx5.sync()
    assert thunderbird.put("cyd.vcf", card("cyd", "Cyd Brown", "CATEGORIES:Club"))[0] == 201
    _, _, changed = davx5.sync(token)
    assert {e.href.rsplit("/", 1)[-1] for e in changed} >= {"cyd.vcf", "CLUB.vcf"}


class DavxShapedClient:
    """What DAVx5 keeps: href -> (ETag, bytes); an answer without ETag means fetch again."""

    def __init__(self, dav: DavClient) -> None:
        self.dav = dav
        self.local: dict[str, tuple[str | None, str]] = {}

    def put(self, name: str, text: str) -> None:
        href = self.dav.book + name
        status, headers, _ = self.dav.put(name, text)
        assert status in (201, 204)
        self.local[href] = (headers.get("etag"), text)

    def sync(self) -> None:
        remote = self.dav.etags()
        stale = [h for h, etag in remote.items() if self.local.get(h, (None, ""))[0] != etag]
        for entry in self.dav.multiget(stale) if stale else []:
            self.local[entry.href] = (entry.etag, entry.data)
        for href in set(self.local) - set(remote):
            del self.local[href]


def fixture_cards() -> list[tuple[str, str]]:
    folder = Path(__file__).parent / "data"
    found = sorted(folder.glob("*.vcf")) if folder.is_dir() else []
    out = []
    for path in found:
        text = path.read_bytes().decode("utf-8", "replace")
        if text.upper().count("BEGIN:VCARD") == 1 and "\ufffd" not in text:
            out.append((path.name, text))
    return out


def test_a_davx5_shaped_client_converges_after_every_sync(server: ServerProcess,
                                                          dav: DavClient) -> None:
    phone = DavxShapedClient(DavClient(server.url, USER, PASSWORD,
                                       user_agent="DAVx5/4.4.1-ose (dav4jvm) Android/14"))
    apple = DavClient(server.url, USER, PASSWORD, user_agent="iOS/17.1 (21B80) dataaccessd/1.0")
    assert apple.put("W.vcf", apple_group("W", "Waiting", ["pending-1"]))[0] == 201
    cards = [("as-written.vcf", AS_WRITTEN), ("pending-1.vcf", card("pending-1", "Pen Ding")),
             ("nofn.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:nofn\r\nN:Doe;Jo;;;\r\nEND:VCARD\r\n")]
    cards += fixture_cards()
    for name, text in cards:
        phone.put(name, text)
    phone.sync()
    for href, (etag, text) in phone.local.items():
        status, headers, body = dav.request("GET", href)
        # Multistatus XML carries line ends as LF (XML end-of-line handling).
        assert status == 200 and headers["etag"] == etag, href
        assert body.replace("\r\n", "\n") == text.replace("\r\n", "\n"), href


def test_a_davx5_in_group_card_mode_converges(server: ServerProcess, dav: DavClient) -> None:
    """DAVx5's default mode ("groups are separate vCards"): its group cards stay its own."""
    phone = DavxShapedClient(DavClient(server.url, USER, PASSWORD,
                                       user_agent="DAVx5/4.4.1-ose (dav4jvm) Android/14"))
    apple = DavClient(server.url, USER, PASSWORD, user_agent="iOS/17.1 (21B80) dataaccessd/1.0")
    assert apple.put("W.vcf", apple_group("W", "Waiting", ["kim"]))[0] == 201
    phone.put("kim.vcf", card("kim", "Kim Lee"))
    phone.put("lou.vcf", card("lou", "Lou Park", "CATEGORIES:Choir"))
    phone.put("TEAM.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:TEAM\r\nFN:Team\r\n"
              "KIND:group\r\nMEMBER:urn:uuid:kim\r\nEND:VCARD\r\n")
    for _ in range(2):
        phone.sync()
        remote = phone.dav.etags()
        assert set(phone.local) == set(remote)
        for href, (etag, text) in phone.local.items():
            status, headers, body = phone.dav.request("GET", href)
            assert status == 200 and headers["etag"] == etag == remote[href], href
            assert body.replace("\r\n", "\n") == text.replace("\r\n", "\n"), href
    names = {h.rsplit("/", 1)[-1] for h in phone.local}
    # Its own group, the Apple group and the category a contact carried, all as group cards.
    assert {"TEAM.vcf", "W.vcf", "kim.vcf", "lou.vcf"} <= names
    groups = [t for _, t in phone.local.values() if "KIND:group" in t]
    assert len(groups) == 3 and all("VERSION:4.0" in t for t in groups)
    assert any("FN:Choir" in t and "MEMBER:urn:uuid:lou" in t for t in groups)


def test_vdirsyncer_converges_with_the_server(server: ServerProcess, tmp_path: Path) -> None:
    exe = shutil.which("vdirsyncer")
    if exe is None:
        pytest.skip("vdirsyncer is not installed (it is in the test extra)")
    from tests.test_real_clients import vdirsyncer, vdirsyncer_config

    dav = server.client()
    dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    apple = DavClient(server.url, USER, PASSWORD, user_agent="iOS/17.1 (21B80) dataaccessd/1.0")
    assert apple.put("W.vcf", apple_group("W", "Waiting", ["pending-2"]))[0] == 201
    up = tmp_path / "up"
    up.mkdir()
    (up / "as-written.vcf").write_bytes(AS_WRITTEN.encode())
    (up / "pending-2.vcf").write_bytes(card("pending-2", "Pat Pending").encode())
    (up / "nover.vcf").write_bytes(b"BEGIN:VCARD\r\nUID:nover\r\nFN:No Version\r\nEND:VCARD\r\n")
    (up / "group.vcf").write_bytes(apple_group("MACGROUP", "From a Mac", ["nover"]).encode())
    (tmp_path / "down").mkdir()
    config = vdirsyncer_config(tmp_path, server)
    vdirsyncer(config, "discover", "up", server=server)
    for _ in range(2):  # the first sync uploads; the next one fetches what the server changed
        vdirsyncer(config, "sync", "up", server=server)
    files = {p.name: p.read_bytes().decode() for p in up.glob("*.vcf")}
    # Nothing deleted locally, its group card included; having written a group card,
    # vdirsyncer now sees the Apple group as a group card too.
    assert len(files) == 5, sorted(files)
    carrier = DavClient(server.url, USER, PASSWORD, user_agent="vdirsyncer/0.19.3")
    remote = carrier.etags()
    assert len(remote) == len(files)
    by_uid = {}
    for href in remote:
        body = carrier.request("GET", href)[2]
        uid = next(line[4:] for line in body.splitlines() if line.upper().startswith("UID:"))
        by_uid[uid.strip()] = body
    from vdirsyncer.vobject import normalize_item

    for name, text in files.items():
        uid = next(line[4:] for line in text.splitlines() if line.upper().startswith("UID:"))
        server_text = by_uid[uid.strip()]
        if "X-ADDRESSBOOKSERVER-KIND" in text:
            # A group card is the server's own rendering of the category; vdirsyncer
            # compares cards without PRODID and line order, and so sees them equal.
            assert normalize_item(server_text) == normalize_item(text), name
        else:
            assert server_text.replace("\r\n", "\n") == text.replace("\r\n", "\n"), name
    assert "CATEGORIES:Waiting" in files["pending-2.vcf"]
    assert "FN:No Version" in files["nover.vcf"] and "VERSION:" in files["nover.vcf"]
