"""The Apple group view of a book stays cheap, however many categories a card has.

Apple clients get one synthesised group card per category. A single card
with thousands of categories must not turn every listing of the book into
thousands of entries (megabytes of XML for each sync), nor hold up other
users' requests while it is answered.
"""

from __future__ import annotations

import base64
import io
import sys
import threading
import time

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess
from tests.davclient import DavClient, card, parse_multistatus

APPLE_AGENT = "macOS/14.1 (23B74) AddressBookCore/2659.1.1"
MANY = 5000
#: group_members.MAX_GROUPS_PER_CARD: what one card may contribute to the group view.
PER_CARD = 50
QUERY_ALL = ('<?xml version="1.0" encoding="utf-8"?><C:addressbook-query xmlns:D="DAV:" '
             'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
             "</D:prop></C:addressbook-query>")


def _group_names(client: DavClient) -> list[str]:
    status, text = client.report(QUERY_ALL)
    assert status == 207, text[:300]
    return [line[3:] for entry in parse_multistatus(text)[1]
            if entry.data and "X-ADDRESSBOOKSERVER-KIND:group" in entry.data
            for line in entry.data.splitlines() if line.startswith("FN:")]


def test_a_card_with_thousands_of_categories_adds_a_bounded_group_view(
        server: ServerProcess, dav: DavClient) -> None:
    assert dav.put("one.vcf", card("one", "First Person", "CATEGORIES:Family,Work"))[0] == 201
    assert dav.put("two.vcf", card("two", "Second Person", "CATEGORIES:Family"))[0] == 201
    many = ",".join(["Family", *(f"Topic {i:04d}" for i in range(MANY))])
    assert dav.put("many.vcf", card("many", "Many Categories", f"CATEGORIES:{many}"))[0] == 201
    apple = server.client(USER, PASSWORD)
    apple.user_agent = APPLE_AGENT
    for _ in range(2):  # the second listing is served from the book's cached group cards
        started = time.monotonic()
        status, text = apple.propfind(apple.book)
        assert status == 207
        assert time.monotonic() - started < 10
        hrefs = [e.href for e in parse_multistatus(text)[1] if not e.href.endswith("/")]
        assert 3 < len(hrefs) <= 3 + PER_CARD + 1, len(hrefs)
    groups = _group_names(apple)
    assert "Family" in groups and "Work" in groups
    assert len(groups) <= PER_CARD + 1
    # The categories themselves stay on the card, for every other client.
    status, _, body = dav.get("many.vcf")
    assert status == 200 and f"Topic {MANY - 1:04d}" in body


def test_other_users_are_not_held_up_while_apple_lists_the_book(
        server: ServerProcess, dav: DavClient) -> None:
    many = ",".join(f"Topic {i:04d}" for i in range(MANY))
    assert dav.put("many.vcf", card("many", "Many Categories", f"CATEGORIES:{many}"))[0] == 201
    apple = server.client(USER, PASSWORD)
    apple.user_agent = APPLE_AGENT
    bob = server.client("bob", "bob's password")
    assert bob.request("PROPFIND", "/bob/", headers={"Depth": "1"})[0] == 207
    stop = threading.Event()
    apple_statuses: list[int] = []

    def list_as_apple() -> None:
        while not stop.is_set():
            apple_statuses.append(apple.propfind(apple.book)[0])

    workers = [threading.Thread(target=list_as_apple) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        slowest = 0.0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert bob.propfind("/bob/contacts/")[0] == 207
            slowest = max(slowest, time.monotonic() - started)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert apple_statuses and set(apple_statuses) == {207}
    assert slowest < 2, f"bob waited {slowest:.1f} s"


@pytest.mark.files_only("it writes two cards of one UID into the book's folder (a PUT of the "
                        "second is refused), and with PostgreSQL that folder is a cache")
def test_a_member_cut_from_a_small_group_is_listed_again_once_its_card_is_not_crowded(
        server: ServerProcess) -> None:
    """A UID in more than PER_CARD categories counts only in its largest ones; once
    it is in fewer, the group cards it was cut from list it again. Two card files
    of one UID (placed by hand) make it crowded; deleting one must bring it back
    into the smallest group, though that group's own members never changed."""
    from cardfile.cli import settings as settings_mod
    from cardfile.plugin.app import CardfileApp

    client = server.client(USER, PASSWORD)
    assert client.propfind(client.book)[0] == 207  # (the book is made at the first login)
    folder = server.book_dir()
    keys = [f"K{i:02d}" for i in range(PER_CARD)]
    files = {"u1.vcf": card("U", "Crowded One", f"CATEGORIES:{','.join([*keys[1:], 'Kz'])}"),
             "u2.vcf": card("U", "Crowded Two", "CATEGORIES:K00"),
             "v.vcf": card("V", "Small Member", "CATEGORIES:Kz")}
    for n, key in enumerate(keys):  # every K group larger than Kz
        files[f"a{n}.vcf"] = card(f"A{n}", f"Other A{n}", f"CATEGORIES:{key}")
        files[f"b{n}.vcf"] = card(f"B{n}", f"Other B{n}", f"CATEGORIES:{key}")
    for name, text in files.items():
        (folder / name).write_text(text, newline="")
    # In process, so that one process's kept group cards answer every request.
    settings = settings_mod.resolve(str(server.data_dir), None)
    app = CardfileApp(settings_mod.radicale_configuration(settings))
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def ask(method: str, path: str, body: str = "") -> tuple[str, str]:
        data = body.encode()
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "",
                   "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": auth,
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1", "HTTP_DEPTH": "1",
                   "HTTP_USER_AGENT": APPLE_AGENT, "CONTENT_TYPE": "application/xml",
                   "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
                   "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http"}
        statuses: list[str] = []
        chunks = app(environ, lambda status, headers, *_: statuses.append(status))
        return statuses[0], b"".join(chunks).decode()

    def members_of_kz() -> set[str]:
        status, text = ask("REPORT", f"/{USER}/contacts/", QUERY_ALL)
        assert status.startswith("207"), text[:300]
        kz = [e.data for e in parse_multistatus(text)[1]
              if e.data and "X-ADDRESSBOOKSERVER-KIND:group" in e.data and "\nFN:Kz" in e.data]
        assert len(kz) == 1
        return {line.split("urn:uuid:")[1].strip() for line in kz[0].splitlines()
                if line.startswith("X-ADDRESSBOOKSERVER-MEMBER:")}

    assert members_of_kz() == {"V"}  # U is in PER_CARD + 1 groups: cut from the smallest
    assert ask("DELETE", f"/{USER}/contacts/u2.vcf")[0].startswith(("200", "204"))
    assert members_of_kz() == {"U", "V"}


def test_a_group_card_sent_to_a_contacts_name_is_refused(server: ServerProcess,
                                                          dav: DavClient) -> None:
    """Before, it was answered 204 and the contact's file stayed under a category's
    claim: GET gave the contact, listings the group card, and a DELETE with the
    listed ETag failed for ever."""
    status, headers, _ = dav.put("gk.vcf", card("gk", "Keep Contact", "EMAIL:keep@example.org"))
    assert status == 201
    apple = server.client(USER, PASSWORD)
    apple.user_agent = APPLE_AGENT
    group = card("gk", "Team", "X-ADDRESSBOOKSERVER-KIND:group")
    status, _, body = apple.put("gk.vcf", group, if_match=headers["etag"])
    assert status == 409 and "gk.vcf is the contact 'Keep Contact'" in body
    for client in (dav, apple):
        listed = {e.href.rsplit("/", 1)[-1]: e.etag for e in
                  parse_multistatus(client.propfind(client.book)[1])[1]}
        status, got, text = client.get("gk.vcf")
        assert status == 200 and "Keep Contact" in text
        assert listed["gk.vcf"] == got["etag"] == headers["etag"]
    assert dav.delete("gk.vcf", if_match=headers["etag"]) in (200, 204)
