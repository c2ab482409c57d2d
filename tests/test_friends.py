"""Friends through the real server: invite, accept, decline, expire, edits, ending.

Three users. Alice and Bob become friends; each one's *me* card appears in
the other's book (Friends category), cut to what its owner shares; Alice's
edit reaches Bob's vdirsyncer at its next sync. Carol declines (Alice sees
only "not accepted"), an invitation to Carol expires, and ending the
friendship leaves or removes the copy as asked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EDITS_A_GRANTS_FILE, ServerProcess
from tests.davclient import card
from tests.grants_helpers import USERS, api, cli, dav, new_device, trio_server
from tests.test_real_clients import vdirsyncer

ALICE_ME = card("alice-me", "Alice Liddell", "EMAIL:alice@example.org",
                "TEL:+44 1865 000111", "NOTE:my diary key is 1234",
                "ADR:;;1 Rabbit Hole;Oxford;;OX1;UK", "CATEGORIES:Private")
BOB_ME = card("bob-me", "Bob Builder", "EMAIL:bob@example.org", "TEL:+1 555 0100")


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    yield from trio_server(tmp_path_factory, module_store_config)


def friend_cards(server: ServerProcess, user: str) -> dict[str, str]:
    """UID -> text of the friend copies in ``user``'s book (read over CardDAV)."""
    client = dav(server, user)
    out = {}
    for path in sorted(server.book_dir(user).glob("*.vcf")):
        status, _, text = client.get(path.name)
        if status == 200 and "X-CARDFILE-FRIEND" in text:
            out[next(line[4:] for line in text.splitlines() if line.startswith("UID:"))] = text
    return out


def vdir_config(tmp_path: Path, server: ServerProcess, user: str) -> Path:
    carddav = (f'type = "carddav"\nurl = "{server.url}/{user}/contacts/"\n'
               f'username = "{user}"\npassword = "{USERS[user]}"\n')
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        f'[general]\nstatus_path = "{tmp_path / "status"}/"\n\n'
        '[pair phone]\na = "server"\nb = "local"\ncollections = null\n\n'
        f"[storage server]\n{carddav}\n"
        f'[storage local]\ntype = "filesystem"\npath = "{tmp_path / "vdir"}/"\n'
        'fileext = ".vcf"\n')
    return config


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("vdirsyncer") is None, reason="vdirsyncer is not installed")
def test_friends_see_each_others_me_card_and_edits_reach_the_next_sync(
        trio: ServerProcess, tmp_path: Path) -> None:
    alice, bob = dav(trio, "alice"), dav(trio, "bob")
    assert alice.put("alice-me.vcf", ALICE_ME)[0] in (201, 204)
    assert bob.put("bob-me.vcf", BOB_ME)[0] in (201, 204)
    alice_api, bob_api = api(trio, "alice"), api(trio, "bob")
    me = alice_api.ok("PUT", "/api/me", {"id": "alice-me", "share": ["email"]})
    assert me["shared"] == ["email", "name", "photo"]
    bob_api.ok("PUT", "/api/me", {"id": "bob-me"})  # name and photo only
    invitation = alice_api.ok("POST", "/api/friends", {"user": "bob"}, status=201)
    assert invitation["status"] == "pending" and invitation["expires"]
    # nothing is shared before Bob accepts
    assert friend_cards(trio, "bob") == {} and friend_cards(trio, "alice") == {}
    seen = bob_api.ok("GET", "/api/friends")["items"]
    assert [(f["friend"], f["status"]) for f in seen] == [("alice", "invited you")]
    # Bob's phone syncs before he accepts
    config = vdir_config(tmp_path, trio, "bob")
    vdirsyncer(config, "discover", "phone", server=trio)
    vdirsyncer(config, "sync", "phone", server=trio)
    accepted = bob_api.ok("POST", f"/api/friends/{invitation['id']}/accept")
    assert accepted["status"] == "friends"
    # each side has the other's card, cut to what its owner shares
    at_bob = friend_cards(trio, "bob")
    assert list(at_bob) == [f"friend-{invitation['id']}-alice"]
    text = next(iter(at_bob.values()))
    assert "Alice Liddell" in text and "alice@example.org" in text
    assert "CATEGORIES:Friends" in text
    for hidden in ("1865", "diary", "Rabbit", "Private"):
        assert hidden not in text, hidden
    at_alice = next(iter(friend_cards(trio, "alice").values()))
    assert "Bob Builder" in at_alice and "bob@example.org" not in at_alice
    assert "555" not in at_alice
    # ... in the Friends category of Bob's API too
    members = bob_api.ok("GET", "/api/books/contacts/categories/Friends/members")
    assert [m["name"] for m in members["items"]] == ["Alice Liddell"]
    # Bob's phone gets it at its next sync
    vdirsyncer(config, "sync", "phone", server=trio)
    synced = [p.read_text() for p in (tmp_path / "vdir").rglob("*.vcf")]
    assert any("alice@example.org" in t for t in synced)
    # Alice edits her card over CardDAV: new email, new phone (the phone stays hers)
    edited = ALICE_ME.replace("alice@example.org", "alice@wonderland.example").replace(
        "+44 1865 000111", "+44 1865 999999")
    assert alice.put("alice-me.vcf", edited)[0] in (201, 204)
    vdirsyncer(config, "sync", "phone", server=trio)
    synced = [p.read_text() for p in (tmp_path / "vdir").rglob("*.vcf")]
    mine = [t for t in synced if "X-CARDFILE-FRIEND" in t]
    assert len(mine) == 1 and "alice@wonderland.example" in mine[0]
    assert "alice@example.org" not in mine[0] and "999999" not in mine[0]
    # an edit through the API reaches Bob too; sharing more adds the phone
    alice_api.ok("PATCH", "/api/books/contacts/contacts/alice-me", {"title": "Explorer"})
    alice_api.ok("PUT", "/api/me", {"share": ["email", "phone"]})
    text = next(iter(friend_cards(trio, "bob").values()))
    assert "+44 1865 999999" in text and "Explorer" not in text  # org not shared
    # Bob's own category on the copy survives Alice's edits
    bob_api.ok("POST", "/api/books/contacts/categories", {"name": "Family"}, status=201)
    bob_api.ok("POST", "/api/books/contacts/categories/Family/members",
               {"ids": [f"friend-{invitation['id']}-alice"]})
    assert alice.put("alice-me.vcf", edited.replace("Alice Liddell", "Alice L."))[0] in (
        201, 204)
    text = next(iter(friend_cards(trio, "bob").values()))
    assert "Alice L." in text and "Family" in text and "Friends" in text
    # Bob ends it and removes Alice's card; Alice keeps Bob's as a plain card
    ended = bob_api.ok("DELETE", f"/api/friends/{invitation['id']}?keep=false")
    assert ended["ended"] and not ended["kept"]
    assert friend_cards(trio, "bob") == {}
    assert friend_cards(trio, "alice") == {}
    status, _, plain = alice.get(f"friend-{invitation['id']}-bob.vcf")
    assert status == 200 and "Bob Builder" in plain and "Friends" not in plain
    # and Alice's edits no longer reach Bob
    assert alice.put("alice-me.vcf", edited)[0] in (201, 204)
    assert friend_cards(trio, "bob") == {}
    assert alice_api.ok("GET", "/api/friends")["items"] == []


@pytest.mark.files_only(EDITS_A_GRANTS_FILE)
def test_decline_is_not_revealed_and_expired_invitations_cannot_be_accepted(
        trio: ServerProcess) -> None:
    sent = json.loads(cli(trio, "friends", "invite", "carol", "--user", "alice").stderr
                      and cli(trio, "friends", "list", "--user", "alice", "--json").stdout)
    to_carol = next(f for f in sent if f["friend"] == "carol")
    assert to_carol["status"] == "pending"
    # a second invitation while one is pending is refused with a reason
    again = cli(trio, "friends", "invite", "carol", "--user", "alice", check=False)
    assert again.returncode == 1 and "invited already" in again.stderr
    carol_api = api(trio, "carol")
    carol_api.ok("POST", f"/api/friends/{to_carol['id']}/decline")
    after = api(trio, "alice").ok("GET", "/api/friends")["items"]
    mine = next(f for f in after if f["id"] == to_carol["id"])
    assert mine["status"] == "not accepted"
    assert "declin" not in json.dumps(after)
    assert carol_api.ok("GET", "/api/friends")["items"] == []
    # expiry: Bob's invitation to Carol, its deadline moved into the past
    invited = api(trio, "bob").ok("POST", "/api/friends", {"user": "carol"}, status=201)
    grants_file = trio.data_dir / "grants" / "bob.json"
    data = json.loads(grants_file.read_text())
    for record in data["grants"]:
        if record["id"] == invited["id"]:
            record["expires"] = "2000-01-01T00:00:00Z"
    grants_file.write_text(json.dumps(data))
    assert carol_api.ok("GET", "/api/friends")["items"] == []
    status, _, problem = carol_api.call("POST", f"/api/friends/{invited['id']}/accept")
    assert status == 409 and "expired" in problem["detail"]
    bob_view = api(trio, "bob").ok("GET", "/api/friends")["items"]
    assert next(f for f in bob_view if f["id"] == invited["id"])["status"] == "not accepted"
    # a user who is not there, and yourself
    status, _, problem = carol_api.call("POST", "/api/friends", {"user": "mallory"})
    assert status == 404
    status, _, problem = carol_api.call("POST", "/api/friends", {"user": "carol"})
    assert status == 422
    # a device password cannot manage friends, even read-write
    device = new_device(trio, "carol", "Phone")
    status, _, problem = api(trio, "carol", device["password"]).call(
        "POST", "/api/friends", {"user": "alice"})
    assert status == 403 and "sign in with your password" in problem["detail"]
