"""Hostile and broken input: every request gets a clear 4xx and nothing stored changes.

One server for the module. Before and after each group of inputs the whole
data folder is fingerprinted (every file's path and SHA-256, the index
excluded) and Bob's book is compared too, so "nothing stored changes" is
checked on disk, not only through the server's answers. The module prints
how many inputs it tried and how they were answered.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import CORPUS, FIXTURE_FILES, USER, ServerProcess, start_server
from tests.davclient import CARDDAV, DavClient, card

TALLY: Counter[str] = Counter()
SEED = int(os.environ.get("CARDFILE_HOSTILE_SEED", "7"))
RANDOM_INPUTS = int(os.environ.get("CARDFILE_HOSTILE_INPUTS", "150"))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory,
        module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("hostile"),
                          {USER: "alice pw", "bob": "bob pw"},
                          extra_config="[auth]\ndelay = 0.02\n", store_config=module_store_config)
    try:
        yield server
    finally:
        server.stop()
        print(f"\nhostile inputs tried: {sum(TALLY.values())}; answers by status: "
              f"{dict(sorted(TALLY.items()))}")


@pytest.fixture(scope="module")
def alice(srv: ServerProcess) -> DavClient:
    c = srv.client(USER, "alice pw")
    bob = srv.client("bob", "bob pw")
    assert c.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
    assert bob.request("PROPFIND", "/bob/", headers={"Depth": "1"})[0] == 207
    assert bob.put("bob-1.vcf", card("bob-1", "Bob Builder"))[0] == 201
    assert c.put("keep-1.vcf", card("keep-1", "Kept Card", "NOTE:must survive"))[0] == 201
    return c


def fingerprint(data_dir: Path) -> dict[str, str]:
    """Every stored file (index, locks, login records, history excluded) -> its SHA-256.

    The history records the cards that were accepted and then deleted here, as it
    should; that a refused card leaves no trace in it is tested in test_history.py.
    """
    found = {}
    for path in sorted(data_dir.rglob("*")):
        if path.relative_to(data_dir).parts[0] == "history":
            continue
        if path.is_file() and not path.name.startswith((
                "cardfile-index", ".Radicale.lock", ".cardfile-logins", ".cardfile-worker-")):
            found[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def send(client: DavClient, method: str, path: str, body: bytes | str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, str]:
    status, _, text = client.request(method, path, body, headers)
    TALLY[str(status)] += 1
    assert status < 500, (method, path[:80], status, text[:300])
    return status, text


def assert_refused(status: int, text: str, *codes: int) -> None:
    assert status in (codes or tuple(range(400, 500))), (status, text[:300])
    reason = text.strip()
    assert reason and "Traceback" not in reason and len(reason.splitlines()) <= 2, reason[:300]


# -- XML bodies ----------------------------------------------------------------------
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">'
              for i in range(1, 10))
    + ']><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname></D:prop>'
    '</D:propfind>')
XML_ATTACKS = {
    "billion laughs": BILLION_LAUGHS,
    "quadratic blowup": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "' + "A" * 50_000
                         + '">]><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>'
                         + "&a;" * 2000 + "</D:displayname></D:prop></D:propfind>"),
    "external entity (file)": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM '
                               '"file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop>'
                               '<D:displayname>&xxe;</D:displayname></D:prop></D:propfind>'),
    "external entity (http)": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM '
                               '"http://127.0.0.1:9/x">]><D:propfind xmlns:D="DAV:"><D:prop>'
                               '<D:displayname>&xxe;</D:displayname></D:prop></D:propfind>'),
    "parameter entity": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM '
                         '"file:///etc/passwd"> %p;]><D:propfind xmlns:D="DAV:"/>'),
    "external DTD": ('<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd">'
                     '<D:propfind xmlns:D="DAV:"/>'),
    "deep nesting": ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                     + "<D:x>" * 50_000 + "</D:x>" * 50_000 + "</D:prop></D:propfind>"),
    "unclosed": '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>',
    "not xml": "\x00\x01 certainly not xml",
    "unbound prefix": "<X:propfind/>",
    "wrong root": '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"/>',
}


@pytest.mark.parametrize("method", ["PROPFIND", "REPORT", "PROPPATCH", "MKCOL"])
def test_xml_attacks_get_a_clean_4xx(srv: ServerProcess, alice: DavClient,
                                     method: str) -> None:
    before = fingerprint(srv.data_dir)
    for name, body in XML_ATTACKS.items():
        if name == "wrong root" and method != "REPORT":
            continue  # an unknown PROPFIND/PROPPATCH root is read as empty: harmless
        path = alice.book if method != "MKCOL" else f"/{USER}/new-{abs(hash(name))}/"
        status, text = send(alice, method, path, body.encode(),
                            {"Content-Type": "application/xml", "Depth": "0"})
        assert_refused(status, text)
        assert "root:" not in text  # /etc/passwd never echoed
    assert fingerprint(srv.data_dir) == before


def test_huge_bodies_are_refused_before_they_are_read(srv: ServerProcess,
                                                      alice: DavClient) -> None:
    """A client announcing 30 MB gets 413 without the server reading the body."""
    before = fingerprint(srv.data_dir)
    for method, path in (("PUT", f"{alice.book}huge.vcf"), ("REPORT", alice.book),
                         ("PROPFIND", alice.book)):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: {alice.auth}\r\nContent-Type: text/vcard\r\n"
                         f"Content-Length: 30000000\r\n\r\n".encode() + b"x" * 1000)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answer = b"".join(chunks).decode("latin-1")
        status = int(answer.split(" ", 2)[1])
        TALLY[str(status)] += 1
        assert status == 413 and "max_content_length" in answer, answer
    # Just under the limit, but not a card: refused after reading, still a 4xx.
    status, text = send(alice, "PUT", f"{alice.book}big.vcf", b"y" * 19_000_000,
                        {"Content-Type": "text/vcard"})
    assert_refused(status, text, 400, 413)
    assert fingerprint(srv.data_dir) == before


# -- vCards ---------------------------------------------------------------------------
def _corpus_cards() -> list[str]:
    """First cards of Cardfile's own fixtures, and of the shared corpus where present."""
    texts = []
    fixtures = [p for p in FIXTURE_FILES if p.suffix == ".vcf"]
    for path in fixtures + sorted((CORPUS / "vcard").rglob("*.vcf"))[:20]:
        text = path.read_bytes().decode("utf-8", "replace")
        start = text.find("BEGIN:VCARD")
        end = text.find("END:VCARD", start)
        if start >= 0 and end > start:
            one = text[start:end + len("END:VCARD")] + "\r\n"
            if "\nUID" not in one.upper():  # so a mutation, not the missing UID, decides
                one = one.replace("\n", f"\nUID:corpus-{len(texts)}\r\n", 1)
            texts.append(one)
    assert len(texts) >= 10, f"only {len(texts)} vCards found"
    return texts


def test_random_bytes_and_mutated_cards(srv: ServerProcess, alice: DavClient) -> None:
    """Random bytes, bit flips and truncations of real cards: accepted whole or refused."""
    rng = random.Random(SEED)
    originals = _corpus_cards()
    before = fingerprint(srv.data_dir)
    accepted = 0
    for i in range(RANDOM_INPUTS):
        kind = i % 3
        if kind == 0:
            body = rng.randbytes(rng.randint(1, 4000))
            if rng.random() < 0.5:
                body = b"BEGIN:VCARD\r\n" + body
        else:
            data = bytearray(rng.choice(originals).encode())
            if kind == 1:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                del data[rng.randrange(1, len(data)):]
            body = bytes(data)
        name = f"fuzz-{i}.vcf"
        status, text = send(alice, "PUT", alice.book + name, body,
                            {"Content-Type": "text/vcard"})
        if status in (200, 201, 204):
            accepted += 1
            # Whatever was accepted is served back as one parseable card, then removed.
            got_status, _, got = alice.get(name)
            assert got_status == 200 and got.lstrip().upper().startswith("BEGIN:VCARD")
            assert alice.delete(name) in (200, 204)
        else:
            assert_refused(status, text)
            assert alice.get(name)[0] == 404
    print(f"\nrandom/mutated cards: {RANDOM_INPUTS} tried, {accepted} accepted whole, "
          f"{RANDOM_INPUTS - accepted} refused with a 4xx")
    after = fingerprint(srv.data_dir)
    assert {k: v for k, v in after.items() if "fuzz-" not in k} == {
        k: v for k, v in before.items() if "fuzz-" not in k}


def test_truncated_cards_at_every_line(srv: ServerProcess, alice: DavClient) -> None:
    full = card("trunc-1", "Trunc Ated", "EMAIL:t@example.com", "TEL:+49 30 1234",
                "NOTE:line one\\nline two", "CATEGORIES:A,B")
    lines = full.split("\r\n")
    before = fingerprint(srv.data_dir)
    for n in range(1, len(lines) - 2):
        body = "\r\n".join(lines[:n]) + "\r\n"
        status, text = send(alice, "PUT", f"{alice.book}trunc-1.vcf", body,
                            {"Content-Type": "text/vcard"})
        assert_refused(status, text, 400)
    assert fingerprint(srv.data_dir) == before


BAD_BODIES = [
    ("enormous NOTE", card("big-note", "Big Note", "NOTE:" + "n" * 6_000_000), (413,)),
    ("enormous photo", card("big-photo", "Big Photo", "PHOTO;ENCODING=b;TYPE=JPEG:"
                            + base64.b64encode(random.Random(SEED).randbytes(4_000_000)).decode()),
     (413,)),
    ("invalid UTF-8", card("bad-utf8", "Bad Utf").replace("FN:Bad", "FN:\udcff\udcfeBad"),
     (400,)),
    ("overlong UTF-8", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ovl\r\nFN:\udcc0\udcaf\r\n"
     "END:VCARD\r\n", (400,)),
    ("thousands of cards", "".join(card(f"many-{i}", f"Many {i}") for i in range(3000)),
     (400,)),
    ("nested vCard", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:n\r\nFN:N\r\n" * 500
     + "END:VCARD\r\n" * 500, (400,)),
    ("only BEGIN", "BEGIN:VCARD\r\n", (400,)),
    ("UTF-16", card("utf16", "Utf Sixteen").encode("utf-16").decode("latin-1"), (400, 415)),
]


@pytest.mark.parametrize("label, body, codes", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_cards_are_refused_and_change_nothing(srv: ServerProcess, alice: DavClient,
                                                  label: str, body: str,
                                                  codes: tuple[int, ...]) -> None:
    before = fingerprint(srv.data_dir)
    raw = body.encode("utf-8", "surrogateescape") if label != "UTF-16" else body.encode(
        "latin-1")
    status, text = send(alice, "PUT", f"{alice.book}bad.vcf", raw,
                        {"Content-Type": "text/vcard; charset=utf-8"})
    assert_refused(status, text, *codes)
    assert fingerprint(srv.data_dir) == before
    assert "must survive" in alice.get("keep-1.vcf")[2]


def test_long_lines_and_many_properties_do_not_break_the_server(srv: ServerProcess,
                                                                alice: DavClient) -> None:
    """Big but legal cards: stored whole, or refused cleanly; never a 500."""
    bodies = {
        "long-line": card("long-line", "Long Line", "NOTE:" + "z" * 1_000_000),
        "many-props": card("many-props", "Many Props",
                           *(f"EMAIL:user{i}@example.com" for i in range(20_000))),
        "many-params": card("many-params", "Many Params",
                            "TEL;" + ";".join(f"X-P{i}=v" for i in range(5000)) + ":+1"),
        "control-chars": card("control-chars", "Control Chars",
                              "NOTE:a\x00b\x01c\x1bd\x7fe"),
    }
    for name, body in bodies.items():
        status, text = send(alice, "PUT", f"{alice.book}{name}.vcf", body,
                            {"Content-Type": "text/vcard"})
        if status in (200, 201, 204):
            got_status, _, got = alice.get(f"{name}.vcf")
            assert got_status == 200
            # A control character would make every multiget/sync answer invalid XML.
            assert not any(ord(ch) < 32 and ch not in "\r\n\t" for ch in got)
            [entry] = alice.multiget([f"{alice.book}{name}.vcf"])
            assert entry.status == 200 and entry.data
            assert alice.delete(f"{name}.vcf") in (200, 204)
        else:
            assert_refused(status, text)


# -- paths ----------------------------------------------------------------------------
HOSTILE_PATHS = [
    "/alice/contacts/../../bob/contacts/bob-1.vcf",
    "/alice/contacts/..%2f..%2fbob%2fcontacts%2fbob-1.vcf",
    "/alice/contacts/%2e%2e/%2e%2e/bob/contacts/bob-1.vcf",
    "/alice/contacts/%2e%2e%2f%2e%2e%2fbob%2fcontacts%2fbob-1.vcf",
    "/alice/contacts/..\\..\\bob\\contacts\\bob-1.vcf",
    "/bob/contacts/bob-1.vcf",
    "/bob/contacts/new.vcf",
    "/bob/",
    "/%62ob/contacts/bob-1.vcf",
    "/alice/contacts/" + "a" * 300 + ".vcf",
    "/alice/" + "b" * 300 + "/x.vcf",
    "/alice/contacts/.Radicale.props",
    "/alice/contacts/.cardfile-categories.json",
    "/alice/contacts/.Radicale.cache/x",
    "/alice/contacts/%00.vcf",
    "/alice/contacts/a%00b.vcf",
    "/../../../../etc/passwd",
    "/alice/contacts/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/alice/contacts/~backup.vcf~",
    "//alice//contacts//x.vcf",
    "/alice/contacts/%C0%AE%C0%AE/x.vcf",
    "/alice/contacts/\u202etxt.vcf".encode("utf-8").decode("latin-1"),
    "/alice/contacts/%F0%9F%98%80" * 40 + ".vcf",
    "/cardfile-index.sqlite3",
    "/htpasswd",
    "/alice/../htpasswd",
]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PROPFIND", "MOVE"])
def test_hostile_paths_never_leave_the_users_book(srv: ServerProcess, alice: DavClient,
                                                  method: str) -> None:
    before = fingerprint(srv.data_dir)
    htpasswd = (srv.data_dir / "htpasswd").read_text()
    for i, path in enumerate(HOSTILE_PATHS):
        headers = {"Content-Type": "text/vcard", "Depth": "0"}
        if method == "MOVE":
            headers["Destination"] = path
            target = f"{alice.book}keep-1.vcf"
        else:
            target = path
        body = card(f"path-{i}", "Path Test") if method == "PUT" else None
        try:
            status, _, text = alice.request(method, target, body, headers)
        except UnicodeEncodeError:
            continue
        TALLY[str(status)] += 1
        if method == "MOVE" and status == 502:
            continue  # a Destination naming another server (RFC 4918 9.9.4)
        assert status < 500, (method, path[:80], status, text[:300])
        if method == "GET":
            assert "root:" not in text and htpasswd.split(":")[0] + ":$" not in text
            assert "Bob Builder" not in text
        if 200 <= status < 300 and method in ("PUT", "MOVE"):
            # Accepted only inside Alice's own book (e.g. //alice//contacts//x.vcf).
            changed = set(fingerprint(srv.data_dir).items()) - set(before.items())
            assert all(k.startswith(f"collection-root/{USER}/contacts/") for k, _ in changed)
            if method == "MOVE":
                moved = Path(srv.data_dir, next(k for k, _ in changed))
                # Put it back for the next path.
                alice.request("MOVE", "/" + str(moved.relative_to(
                    srv.data_dir / "collection-root")), headers={
                    "Destination": f"{alice.book}keep-1.vcf"})
            else:
                for k, _ in changed:
                    alice.delete(Path(k).name)
        elif method != "GET" and method != "PROPFIND":
            assert 400 <= status < 500 or status == 404, (path, status, text)
    after = fingerprint(srv.data_dir)
    assert {k: v for k, v in after.items() if "/bob/" in k} == {
        k: v for k, v in before.items() if "/bob/" in k}
    assert (srv.data_dir / "htpasswd").read_text() == htpasswd
    assert "must survive" in alice.get("keep-1.vcf")[2]
    assert not list(srv.data_dir.parent.glob("x.vcf")) and not list(
        srv.data_dir.glob("*.vcf"))


#: Characters Radicale's address check refuses (``validate_path_value = minimal``):
#: its list, a control character, an invisible format character, and one of each
#: next to characters every accepted name below uses.
REFUSED_IN_NAMES = [":", "'", '"', "*", ",", "%7F", "%E2%80%8E", "%C2%85"]


def test_a_refused_character_is_refused_after_many_accepted_names(srv: ServerProcess,
                                                                  alice: DavClient) -> None:
    """The server remembers which characters of accepted names passed the check
    (radicale_adapter._remembered_check_format): a name made of accepted characters
    plus one refused character must still be refused, for GET and PUT alike."""
    accepted = [f"ok-{word}-{i}.vcf" for i, word in enumerate(
        ["plain", "zoë", "müller", "bjørk", "名前", "a_b", "x@y", "1~2"])]
    for i, name in enumerate(accepted):
        assert alice.put(quote(name), card(f"named-{i}", f"Named {i}"))[0] == 201, name
        assert alice.get(quote(name))[0] == 200, name
    before = fingerprint(srv.data_dir)
    for i, refused in enumerate(REFUSED_IN_NAMES):
        name = f"ok-plain-{refused}-{i}.vcf"  # only its one refused character is new
        status, _, text = alice.put(name, card(f"refused-{i}", "Refused Name"))
        assert status == 400, (name, status, text)
        assert alice.get(name)[0] == 400, name
    assert fingerprint(srv.data_dir) == before
    for name in accepted:
        assert alice.delete(quote(name)) in (200, 204), name


def test_other_users_data_is_unreachable_through_reports(srv: ServerProcess,
                                                         alice: DavClient) -> None:
    multiget = ('<?xml version="1.0"?><C:addressbook-multiget xmlns:D="DAV:" xmlns:C="'
                f'{CARDDAV}"><D:prop><C:address-data/></D:prop>'
                "<D:href>/bob/contacts/bob-1.vcf</D:href>"
                "<D:href>/alice/contacts/../../bob/contacts/bob-1.vcf</D:href>"
                "<D:href>/alice/contacts/%2e%2e/%2e%2e/bob/contacts/bob-1.vcf</D:href>"
                "</C:addressbook-multiget>")
    for path in (alice.book, "/bob/contacts/"):
        status, text = send(alice, "REPORT", path, multiget,
                            {"Content-Type": "application/xml", "Depth": "1"})
        assert "Bob Builder" not in text
    status, text = send(alice, "PROPFIND", "/bob/contacts/", None, {"Depth": "1"})
    assert status in (403, 404) and "bob-1" not in text
