"""Categories across clients: Apple group cards and CATEGORIES agree.

Request shapes follow real clients: Apple Contacts sends vCard 3.0 group cards
(``X-ADDRESSBOOKSERVER-KIND:group`` with ``X-ADDRESSBOOKSERVER-MEMBER`` lines)
under its ``AddressBookCore`` User-Agent; Thunderbird and Evolution use
``CATEGORIES`` on each card.
"""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from cardfile.plugin.vcard import card_fields
from tests.conftest import (
    EDITS_THE_FOLDER,
    PASSWORD,
    USER,
    ServerProcess,
    run_cli,
    start_server,
)
from tests.davclient import DavClient, Entry, card

APPLE_UA = "macOS/14.1 (23B74) AddressBookCore/2659.1.1"
IOS_UA = "iOS/17.1 (21B80) dataaccessd/1.0"
THUNDERBIRD_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:115.0) Gecko/20100101 "
                  "Thunderbird/115.3.1")
EVOLUTION_UA = "Evolution/3.48.4"


def apple_group(uid: str, name: str, members: list[str]) -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", "PRODID:-//Apple Inc.//macOS 14.1//EN",
             f"N:{name}", f"FN:{name}", "X-ADDRESSBOOKSERVER-KIND:group"]
    lines += [f"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:{m}" for m in members]
    lines += ["REV:2026-11-27T10:00:00Z", f"UID:{uid}", "END:VCARD"]
    return "\r\n".join(lines) + "\r\n"


def clients(server: ServerProcess) -> tuple[DavClient, DavClient]:
    apple = DavClient(server.url, USER, PASSWORD, user_agent=APPLE_UA)
    thunderbird = DavClient(server.url, USER, PASSWORD, user_agent=THUNDERBIRD_UA)
    assert thunderbird.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
    return apple, thunderbird


def categories_of(client: DavClient, name: str) -> set[str]:
    status, _, text = client.get(name)
    assert status == 200, text
    return {v for line in card_fields.parse_lines(text) if line.name == "CATEGORIES"
            for v in card_fields.text_values(line)}


def groups_seen(client: DavClient) -> dict[str, tuple[str, set[str]]]:
    """Group cards a client sees: href -> (name, member UIDs)."""
    entries = client.multiget(list(client.etags()))
    result = {}
    for entry in entries:
        lines = card_fields.parse_lines(entry.data or "")
        if any(line.name == "X-ADDRESSBOOKSERVER-KIND" for line in lines):
            name = next(line.value for line in lines if line.name == "FN")
            members = {line.value.removeprefix("urn:uuid:") for line in lines
                       if line.name == "X-ADDRESSBOOKSERVER-MEMBER"}
            result[entry.href.rsplit("/", 1)[-1]] = (name, members)
    return result


def names(entries: list[Entry]) -> dict[str, int]:
    return {e.href.rsplit("/", 1)[-1]: e.status for e in entries}


def put_people(client: DavClient, *people: tuple[str, str]) -> None:
    for uid, fn in people:
        assert client.put(f"{uid}.vcf", card(uid, fn, f"EMAIL:{uid}@example.com"))[0] == 201


def test_apple_group_becomes_categories_for_everyone(server: ServerProcess, cli_store: str) -> None:
    apple, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"), ("bob", "Bob Jones"), ("cyd", "Cyd Brown"))
    status, headers, _ = apple.put("FAMILY-GROUP.vcf",
                                   apple_group("FAMILY-GROUP", "Family", ["ann", "bob"]))
    # Stored as a category, not as these bytes: no ETag, so Apple fetches the server's card.
    assert status == 201 and "etag" not in headers
    assert apple.get("FAMILY-GROUP.vcf")[1].get("etag")
    # The categories client sees CATEGORIES on the members, and no group card.
    assert categories_of(thunderbird, "ann.vcf") == {"Family"}
    assert categories_of(thunderbird, "bob.vcf") == {"Family"}
    assert categories_of(thunderbird, "cyd.vcf") == set()
    assert set(thunderbird.etags()) == {f"/{USER}/contacts/{n}.vcf" for n in ("ann", "bob", "cyd")}
    assert thunderbird.get("FAMILY-GROUP.vcf")[0] == 404
    assert not list(server.book_dir().glob("FAMILY*"))
    # The Apple client reads back its group with the same members.
    assert groups_seen(apple) == {"FAMILY-GROUP.vcf": ("Family", {"ann", "bob"})}
    # The CLI's Categories collection agrees.
    listed = json.loads(run_cli("categories", "list", "--json", "--user", USER,
                                data_dir=server.data_dir).stdout)
    assert [(c["name"], c["count"]) for c in listed] == [("Family", 2)]


def test_categories_client_change_reaches_apple_by_incremental_sync(
        server: ServerProcess) -> None:
    apple, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"), ("bob", "Bob Jones"))
    _, apple_token, entries = apple.sync()
    assert set(names(entries)) == {"ann.vcf", "bob.vcf"}
    _, tb_token, _ = thunderbird.sync()
    etag = thunderbird.get("ann.vcf")[1]["etag"]
    assert thunderbird.put("ann.vcf", card("ann", "Ann Smith", "EMAIL:ann@example.com",
                                           "CATEGORIES:Work"), if_match=etag)[0] == 204
    # Apple's next incremental sync: the changed card and a new group card.
    _, apple_token2, entries = apple.sync(apple_token)
    changed = names(entries)
    assert "ann.vcf" in changed and len(changed) == 2
    group_href = next(h for h in changed if h != "ann.vcf")
    assert groups_seen(apple)[group_href] == ("Work", {"ann"})
    # The categories view reports exactly the one card, never a group card.
    _, tb_token2, entries = thunderbird.sync(tb_token)
    assert names(entries) == {"ann.vcf": 200}
    # Nothing more changed: both views report nothing.
    assert apple.sync(apple_token2)[2] == [] and thunderbird.sync(tb_token2)[2] == []
    # A token of one view is refused by the other.
    assert thunderbird.sync(apple_token2)[0] == 403
    assert apple.sync(tb_token2)[0] == 403


def test_rename_and_membership_edits_from_either_side(server: ServerProcess,
                                                      cli_store: str) -> None:
    apple, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"), ("bob", "Bob Jones"))
    apple.put("G1.vcf", apple_group("G1", "Friends", ["ann", "bob"]))
    _, token, _ = apple.sync()
    # Apple renames the group and drops Bob.
    etag = apple.get("G1.vcf")[1]["etag"]
    status, _, body = apple.put("G1.vcf", apple_group("G1", "Close Friends", ["ann"]),
                                if_match=etag)
    assert status == 204, body
    assert categories_of(thunderbird, "ann.vcf") == {"Close Friends"}
    assert categories_of(thunderbird, "bob.vcf") == set()
    # Thunderbird takes Ann out by editing her card.
    etag = thunderbird.get("ann.vcf")[1]["etag"]
    thunderbird.put("ann.vcf", card("ann", "Ann Smith", "EMAIL:ann@example.com"),
                    if_match=etag)
    # The group still exists (empty) and Apple sees it without members.
    _, _, entries = apple.sync(token)
    assert "G1.vcf" in names(entries)
    assert groups_seen(apple) == {"G1.vcf": ("Close Friends", set())}
    # Renaming from the categories side (CLI) keeps the group's identity.
    run_cli("categories", "members", "Close Friends", "--add", "bob", "--user", USER,
            data_dir=server.data_dir)
    run_cli("categories", "rename", "Close Friends", "Inner Circle", "--user", USER,
            data_dir=server.data_dir)
    assert categories_of(thunderbird, "bob.vcf") == {"Inner Circle"}
    assert groups_seen(apple) == {"G1.vcf": ("Inner Circle", {"bob"})}


def test_delete_from_either_side_keeps_contacts(server: ServerProcess, cli_store: str) -> None:
    apple, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"), ("bob", "Bob Jones"))
    apple.put("G2.vcf", apple_group("G2", "Club", ["ann", "bob"]))
    assert categories_of(thunderbird, "bob.vcf") == {"Club"}
    _, token, _ = apple.sync()
    assert apple.delete("G2.vcf") in (200, 204)
    assert categories_of(thunderbird, "ann.vcf") == set()
    assert thunderbird.get("bob.vcf")[0] == 200
    assert names(apple.sync(token)[2])["G2.vcf"] == 404
    # Deleted from the categories side (CLI): the group card disappears too.
    thunderbird.put("ann.vcf", card("ann", "Ann Smith", "CATEGORIES:Team"),
                    if_match=thunderbird.get("ann.vcf")[1]["etag"])
    assert [g[0] for g in groups_seen(apple).values()] == ["Team"]
    run_cli("categories", "remove", "Team", "--user", USER, data_dir=server.data_dir)
    assert groups_seen(apple) == {}
    assert categories_of(thunderbird, "ann.vcf") == set()


def test_empty_category_survives_and_pending_members_apply_later(
        server: ServerProcess, cli_store: str) -> None:
    apple, thunderbird = clients(server)
    apple.put("EMPTY.vcf", apple_group("EMPTY", "Book Club", []))
    apple.put("LATER.vcf", apple_group("LATER", "Neighbours", ["not-yet-here"]))
    listed = json.loads(run_cli("categories", "list", "--json", "--user", USER,
                                data_dir=server.data_dir).stdout)
    by_name = {c["name"]: c for c in listed}
    assert by_name["Book Club"]["count"] == 0
    assert by_name["Neighbours"]["pending"] == ["urn:uuid:not-yet-here"]
    assert set(groups_seen(apple)) == {"EMPTY.vcf", "LATER.vcf"}
    # The contact arrives later (from a categories client) and joins the group.
    thunderbird.put("not-yet-here.vcf", card("not-yet-here", "Nat Later"))
    assert categories_of(thunderbird, "not-yet-here.vcf") == {"Neighbours"}
    # The card the client sent was written out before the save; not the one stored.
    assert not list(server.book_dir().glob(".Radicale.tmp-*"))
    assert not list(server.data_dir.glob(".staged-cards/*"))
    assert groups_seen(apple)["LATER.vcf"] == ("Neighbours", {"not-yet-here"})
    # An empty category made with the CLI is a group card for Apple too.
    run_cli("categories", "add", "Choir", "--user", USER, data_dir=server.data_dir)
    assert "Choir" in {g[0] for g in groups_seen(apple).values()}


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_group_card_files_on_disk_are_converted(server: ServerProcess, tmp_path: Path) -> None:
    apple, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"))
    (server.book_dir() / "imported-group.vcf").write_text(
        apple_group("IMPORTED", "Imported Group", ["ann"]), newline="")
    # A categories client never sees the group file as a contact.
    assert f"/{USER}/contacts/imported-group.vcf" not in thunderbird.etags()
    # The next write converts it into CATEGORIES on the member.
    put_people(thunderbird, ("bob", "Bob Jones"))
    assert categories_of(thunderbird, "ann.vcf") == {"Imported Group"}
    assert not (server.book_dir() / "imported-group.vcf").exists()
    assert groups_seen(apple) == {"imported-group.vcf": ("Imported Group", {"ann"})}


def test_client_detection_and_per_user_setting(server: ServerProcess, cli_store: str) -> None:
    apple, thunderbird = clients(server)
    evolution = DavClient(server.url, USER, PASSWORD, user_agent=EVOLUTION_UA)
    ios = DavClient(server.url, USER, PASSWORD, user_agent=IOS_UA)
    put_people(thunderbird, ("ann", "Ann Smith"))
    run_cli("categories", "add", "Family", "--user", USER, data_dir=server.data_dir)
    assert len(groups_seen(apple)) == 1 and len(groups_seen(ios)) == 1
    assert groups_seen(thunderbird) == {} and groups_seen(evolution) == {}
    run_cli("categories", "group-cards", "always", "--user", USER, data_dir=server.data_dir)
    assert len(groups_seen(evolution)) == 1
    run_cli("categories", "group-cards", "never", "--user", USER, data_dir=server.data_dir)
    assert groups_seen(apple) == {}


def test_published_category_book(server: ServerProcess, cli_store: str) -> None:
    _, thunderbird = clients(server)
    put_people(thunderbird, ("ann", "Ann Smith"), ("bob", "Bob Jones"))
    thunderbird.put("ann.vcf", card("ann", "Ann Smith", "CATEGORIES:Family"),
                    if_match=thunderbird.get("ann.vcf")[1]["etag"])
    # Off by default: only the main book exists.
    status, text = thunderbird.propfind(f"/{USER}/")
    assert text.count("<addressbook") + text.count(":addressbook ") >= 1
    assert "/contacts-family/" not in text
    path = run_cli("categories", "publish", "Family", "--user", USER,
                   data_dir=server.data_dir).stdout.strip()
    assert path == f"/{USER}/contacts-family/"
    phone = DavClient(server.url, USER, PASSWORD, user_agent="DAVx5/4.3.4-ose (dav4jvm)")
    etags = {h.rsplit("/", 1)[-1] for h in phone.etags_of(path)}
    assert etags == {"ann.vcf"}
    _, token, entries = phone.sync(path=path)
    assert names(entries) == {"ann.vcf": 200}
    # A card added on the phone joins the category in the main book.
    status, _, _ = phone.put("cyd.vcf", card("cyd", "Cyd Brown"), book=path)
    assert status == 201
    assert categories_of(thunderbird, "cyd.vcf") == {"Family"}
    # A card deleted on the phone leaves the category; the contact stays.
    assert phone.request("DELETE", path + "ann.vcf")[0] in (200, 204)
    assert thunderbird.get("ann.vcf")[0] == 200
    assert categories_of(thunderbird, "ann.vcf") == set()
    _, _, entries = phone.sync(token, path=path)
    assert names(entries) == {"ann.vcf": 404, "cyd.vcf": 200}
    # Bob, never in the category, is not in the phone's book.
    assert phone.get("bob.vcf", book=path)[0] == 404
    run_cli("categories", "unpublish", "Family", "--user", USER, data_dir=server.data_dir)
    assert phone.propfind(path)[0] == 404
    assert thunderbird.get("cyd.vcf")[0] == 200


def test_renaming_or_deleting_a_big_category_lets_other_users_in(
        tmp_path: Path, store_config: str) -> None:
    """A category of many members is renamed and deleted member by member in
    short holds of the write lock: another user's saves are answered all along
    (one between two holds at least), not once after the last member. Every
    member ends with the new name, then none."""
    from tests.test_api import BOOK, Api

    bob_password = "bob's own password"
    server = start_server(tmp_path, {USER: PASSWORD, "bob": bob_password},
                          store_config=store_config)
    try:
        members = 1000
        server.seed({f"m{i:03}.vcf": card(f"m{i:03}", f"Member {i}", "CATEGORIES:Team,Other")
                     .encode() for i in range(members)})
        api, bob = Api(server), server.client("bob", bob_password)
        assert bob.put("bob.vcf", card("bob", "Bob Own"))[0] == 201

        def saves_by_bob_during(method: str, path: str, body: object) -> tuple[int, int]:
            """(the API's status, bob's saves sent and answered while it ran)."""
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                change = pool.submit(api.call, method, path, body)
                answered = 0
                edit = 0
                while not change.done():
                    edit += 1
                    status = bob.put("bob.vcf", card("bob", f"Bob Own {edit}"))[0]
                    assert status == 204
                    answered += not change.done()
                return change.result()[0], answered

        status, answered = saves_by_bob_during("PUT", f"{BOOK}/categories/Team", {"name": "Crew"})
        assert status == 200
        assert answered >= 5, f"bob's saves waited for the whole rename ({answered} answered)"
        listed = {c["name"]: c["count"] for c in api.ok("GET", f"{BOOK}/categories")["items"]}
        assert listed == {"Crew": members, "Other": members}
        assert categories_of(server.client(), "m123.vcf") == {"Crew", "Other"}

        status, answered = saves_by_bob_during("DELETE", f"{BOOK}/categories/Crew", None)
        assert status == 204
        assert answered >= 5, f"bob's saves waited for the whole delete ({answered} answered)"
        listed = {c["name"]: c["count"] for c in api.ok("GET", f"{BOOK}/categories")["items"]}
        assert listed == {"Other": members}
        assert len(server.served_cards()) == members
        assert "Bob Own" in bob.get("bob.vcf")[2]
    finally:
        server.stop()


def test_apple_group_cards_stay_right_through_edits_that_touch_categories_or_not(
        server: ServerProcess) -> None:
    """The server makes its group cards again only when a change touched a
    category: after each kind of edit, what an Apple client gets is what the
    book's categories make, computed afresh from the index."""
    from cardfile.cli.contacts import Context
    from cardfile.plugin.contacts import categories

    apple, thunderbird = clients(server)
    for uid, fn, extra in (("ann", "Ann Smith", "CATEGORIES:Family,work"),
                           ("bob", "Bob Jones", "CATEGORIES:Work"),
                           ("cyd", "Cyd Brown", "")):
        assert thunderbird.put(f"{uid}.vcf", card(uid, fn, *([extra] if extra else [])))[0] == 201
    config = str(server.config_path) if server.config_path else None
    ctx = Context(str(server.data_dir), config, USER, "contacts")

    def served() -> list[str]:
        texts = [e.data or "" for e in apple.multiget(list(apple.etags()))]
        return sorted(t for t in texts if "X-ADDRESSBOOKSERVER-KIND:group" in t)

    def made_afresh() -> list[str]:
        with ctx.open("r") as book:
            cards = categories.Categories(book.collection).group_cards()
        return sorted(text.replace("\r\n", "\n") for _, text in cards.values())  # (as XML reads)

    edits = [
        ("cyd.vcf", card("cyd", "Cyd Brown", "TEL:+1 555 0100")),  # no category
        ("dan.vcf", card("dan", "Dan Gray")),  # a new contact in none
        ("cyd.vcf", card("cyd", "Cyd Brown", "CATEGORIES:Family")),  # joins one
        ("bob.vcf", card("bob", "Bob Jones", "CATEGORIES:work", "NOTE:x")),  # a spelling
        ("ann.vcf", card("ann", "Ann Smith", "CATEGORIES:Family,work", "NOTE:y")),  # same ones
        ("eve.vcf", card("eve", "Eve Stone", "CATEGORIES:Work")),  # a new one in one
    ]
    assert served() == made_afresh()
    for name, text in edits:
        assert thunderbird.put(name, text)[0] in (201, 204), name
        assert served() == made_afresh(), name
    for name in ("dan.vcf", "cyd.vcf"):  # in none, then in one
        assert thunderbird.delete(name) in (200, 204)
        assert served() == made_afresh(), name
    assert len(served()) == 2 and any("urn:uuid:eve" in t for t in served())
