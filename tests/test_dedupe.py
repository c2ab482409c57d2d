"""Consolidation: matching on import and with ``cardfile dedupe``, lossless merges, undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardfile.plugin.contacts import dedupe
from tests._sample_csv import cli_json, google_new, import_json, listing, new_data_dir
from tests.conftest import USER, ServerProcess, merged_config, run_cli
from tests.davclient import card

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")


def test_same_person_across_google_csv_vcard_and_ldif_becomes_one_card(tmp_path: Path,
                                                                       cli_store: str) -> None:
    data = new_data_dir(tmp_path)
    google = tmp_path / "google.csv"
    google.write_bytes(google_new([{
        "First Name": "Rosalind", "Last Name": "Franklin", "Labels": "* myContacts ::: Lab",
        "E-mail 1 - Label": "Work", "E-mail 1 - Value": "Rosalind.Franklin@KCL.example",
        "Phone 1 - Label": "Mobile", "Phone 1 - Value": "+44 20 7946 0101"}]))
    vcf = tmp_path / "phone.vcf"
    vcf.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:phone-rf\r\nFN:Rosalind E. Franklin\r\n"
                   "N:Franklin;Rosalind;E.;;\r\nTEL;TYPE=HOME:020 7946 0102\r\n"
                   "TEL;TYPE=CELL:020 7946 0101\r\nBDAY:1920-07-25\r\nEND:VCARD\r\n")
    ldif = tmp_path / "tb.ldif"
    ldif.write_text("dn: cn=R. Franklin,mail=rosalind.franklin@kcl.example\n"
                    "objectclass: top\nobjectclass: person\ncn: R. Franklin\n"
                    "givenName: Rosalind\nsn: Franklin\n"
                    "mail: rosalind.franklin@kcl.example\nmozillaSecondEmail: rf@home.example\n"
                    "homePhone: +44 20 7946 0102\n\n")
    config = tmp_path / "config"
    config.write_text(merged_config("[storage]\ntype = cardfile.plugin\ndefault_region = GB\n",
                                    cli_store))
    reports = [import_json(data, str(f), "--config", str(config)) for f in (google, vcf, ldif)]
    assert [r["added"] for r in reports] == [1, 0, 0]
    assert [r["merged"] for r in reports] == [0, 1, 1]
    people = listing(data)
    assert len(people) == 1
    rf = people[0]
    assert sorted(e["value"].lower() for e in rf["emails"]) == [
        "rf@home.example", "rosalind.franklin@kcl.example"]
    assert {p["value"] for p in rf["phones"]} == {"+44 20 7946 0101", "020 7946 0102"}
    assert rf["bday"] == "1920-07-25" and rf["categories"] == ["Lab"]
    for f in (google, vcf, ldif):  # importing any of them again adds and changes nothing
        again = import_json(data, str(f), "--config", str(config))
        assert (again["added"], again["merged"], again["unchanged"]) == (0, 0, 1)


def test_family_landline_and_shared_info_address_never_merge(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    vcf = tmp_path / "family.vcf"
    vcf.write_text("".join(
        card(uid, name, "TEL;TYPE=HOME:+1 212 555 0100", f"EMAIL:{mail}")
        for uid, name, mail in (("a", "Anna Miller", "info@miller.example"),
                                ("b", "Ben Miller", "info@miller.example"),
                                ("c", "Carl Jones", "info@miller.example"))))
    report = import_json(data, str(vcf))
    assert report["added"] == 3 and report["merged"] == 0
    result = cli_json(data, "dedupe", "--json")
    assert result["clusters"] == [] and result["merged"] == []


def test_dedupe_apply_and_undo_restores_the_originals_exactly(server: ServerProcess) -> None:
    client = server.client()
    client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    texts = {
        "one.vcf": card("u-one", "Marie Curie", "EMAIL:marie@radium.example",
                        "CATEGORIES:Physics", "item1.URL:https://example.org/marie",
                        "item1.X-ABLabel:blog", "X-CUSTOM:keep me"),
        "two.vcf": card("u-two", "Marie Sklodowska Curie", "EMAIL:MARIE@radium.example",
                        "TEL;TYPE=CELL:+33 1 23 45 67 89", "CATEGORIES:Chemistry",
                        "NOTE:Nobel prizes\\, two"),
        "three.vcf": card("u-three", "Pierre Curie", "TEL:+33 1 99 99 99 99"),
        "four.vcf": card("u-four", "Paul Langevin", "EMAIL:paul@example.org"),
        "five.vcf": card("u-five", "Jeanne Langevin", "EMAIL:paul@example.org"),
    }
    for name, text in texts.items():
        assert client.put(name, text)[0] == 201
    book = server.book_dir()
    before = {p.name: p.read_bytes() for p in book.glob("*.vcf")}
    listed = cli_json(server.data_dir, "dedupe", "--user", USER, "--json")
    assert [c["uids"] for c in listed["clusters"]] == [["u-one", "u-two"]]
    assert "email marie@radium.example" in listed["clusters"][0]["reasons"]
    assert [r["uids"] for r in listed["review"]] == [["u-five", "u-four"]]
    applied = cli_json(server.data_dir, "dedupe", "--user", USER, "--apply", "--json")
    merge_id = applied["merged"][0]
    status, _, body = client.get("two.vcf")
    survivor_href, gone = ("two.vcf", "one.vcf") if status == 200 else ("one.vcf", "two.vcf")
    status, _, body = client.get(survivor_href)
    assert status == 200 and client.get(gone)[0] == 404
    for expected in ("marie@radium.example", "+33 1 23 45 67 89", "Physics", "Chemistry",
                     "X-CUSTOM:keep me", "https://example.org/marie", "Nobel prizes",
                     "X-ABLABEL:blog"):
        assert expected.lower() in body.lower(), expected
    assert "X-CARDFILE-ALT-FN" in body and "X-CARDFILE-MERGED-UID" in body
    assert len(client.etags()) == 4
    history = cli_json(server.data_dir, "dedupe", "--user", USER, "--history", "--json")
    assert [h["id"] for h in history] == [merge_id]
    undone = run_cli("dedupe", "--user", USER, "--undo", merge_id, data_dir=server.data_dir)
    assert "Undid merge" in undone.stdout
    after = {p.name: p.read_bytes() for p in book.glob("*.vcf")}
    assert after == before
    assert client.get("one.vcf")[2] == texts_as_stored(before, "one.vcf")
    assert cli_json(server.data_dir, "dedupe", "--user", USER, "--history", "--json") == []


def test_undo_refuses_to_replace_a_card_a_client_stored_again_after_the_merge(
        server: ServerProcess) -> None:
    """A phone that still had a merged-away card stores it again: the undo would
    delete that card to put the original back, so it asks for --force first."""
    client = server.client()
    client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    assert client.put("a.vcf", card("dup-a", "Dana Dup", "EMAIL:dana@example.org",
                                    "TEL:+1 555 0111"))[0] == 201
    assert client.put("b.vcf", card("dup-b", "Dana Dup", "EMAIL:dana@example.org"))[0] == 201
    merge_id = cli_json(server.data_dir, "dedupe", "--user", USER, "--apply",
                        "--json")["merged"][0]
    gone, gone_uid = ("a.vcf", "dup-a") if client.get("a.vcf")[0] == 404 else ("b.vcf", "dup-b")
    assert client.put(gone, card(gone_uid, "Dana Dup", "EMAIL:dana@example.org",
                                 "NOTE:typed on the phone after the merge"))[0] == 201
    refused = run_cli("dedupe", "--user", USER, "--undo", merge_id, data_dir=server.data_dir,
                      check=False)
    assert refused.returncode == 1
    assert gone_uid in refused.stderr and "--force" in refused.stderr
    assert "typed on the phone" in client.get(gone)[2]
    assert len(client.etags()) == 2
    run_cli("dedupe", "--user", USER, "--undo", merge_id, "--force", data_dir=server.data_dir)
    assert "typed on the phone" not in client.get(gone)[2]
    assert sorted(client.get(name)[2].count("dana@example.org") for name in
                  ("a.vcf", "b.vcf")) == [1, 1]


def texts_as_stored(files: dict[str, bytes], name: str) -> str:
    return files[name].decode()


def test_undo_refuses_when_the_merged_card_changed(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    first = tmp_path / "a.vcf"
    first.write_text(card("x1", "Lise Meitner", "EMAIL:lise@example.org"))
    second = tmp_path / "b.vcf"
    second.write_text(card("x2", "Lise Meitner", "EMAIL:lise@example.org", "TEL:+43 1 555 0100"))
    import_json(data, str(first))
    merge_id = import_json(data, str(second))["merge_ids"][0]
    third = tmp_path / "c.vcf"
    third.write_text(card("x1", "Lise Meitner", "EMAIL:lise.m@example.org"))
    assert import_json(data, str(third))["merged"] == 1
    refused = run_cli("dedupe", "--undo", merge_id, data_dir=data, check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    run_cli("dedupe", "--undo", merge_id, "--force", data_dir=data)
    shown = json.loads(run_cli("contacts", "show", "x1", "--format", "json",
                               data_dir=data).stdout)
    assert [e["value"] for e in shown["emails"]] == ["lise@example.org"] and not shown["phones"]


def test_merge_cards_is_lossless_and_idempotent() -> None:
    base = card("b", "Emmy Noether", "EMAIL;TYPE=WORK:emmy@math.example", "BDAY:1882-03-23",
                "item1.TEL:+49 9131 85 0", "item1.X-ABLabel:office", "CATEGORIES:Algebra")
    other = card("o", "Amalie Emmy Noether", "EMAIL;TYPE=HOME:EMMY@math.example",
                 "BDAY:1882-03-24", "item1.TEL:+49 551 39 0", "item1.X-ABLabel:Göttingen",
                 "CATEGORIES:algebra,Physics", "X-SOMETHING;X-P=1:odd\\, value")
    merged, changed = dedupe.merge_cards(base, other, "DE")
    assert changed
    for needle in ("UID:b", "X-CARDFILE-MERGED-UID:o", "FN:Amalie Emmy Noether",
                   "X-CARDFILE-ALT-FN:Emmy Noether", "BDAY:1882-03-23",
                   "X-CARDFILE-ALT-BDAY:1882-03-24", "EMAIL;TYPE=WORK,HOME:emmy@math.example",
                   "item1.TEL:+49 9131 85 0", "item2.TEL:+49 551 39 0",
                   "item2.X-ABLABEL:Göttingen", "CATEGORIES:Algebra,Physics",
                   "X-SOMETHING;X-P=1:odd\\, value"):
        assert needle in merged, needle
    assert merged.count("EMAIL") == 1
    again, changed_again = dedupe.merge_cards(merged, other, "DE")
    assert not changed_again and again == dedupe.merge_cards(merged, other, "DE")[0]


def test_the_duplicates_found_do_not_depend_on_the_order_people_are_held_in() -> None:
    """Four people share an address: one name takes in each of the three others, which
    differ from each other. Whether the address still says "one person" once counted
    must not change with the order a set happens to hold them in (it changed from one
    run of the same book to the next)."""
    import itertools

    names = {"u1": "Maria Lopez Garcia Diaz", "u2": "Maria Lopez", "u3": "Garcia Diaz",
             "u4": "Lopez Diaz"}
    matcher = dedupe.Matcher()
    for uid, name in names.items():
        matcher.add(dedupe.Person(uid, dedupe.real_name(name), emails={"m@example.com"}))
    found = set()
    for order in itertools.permutations(names):
        matcher._keys["e:m@example.com"] = list(order)  # type: ignore[assignment]
        found.add(repr(dedupe.clusters(matcher)))
    assert len(found) == 1
    sure, review = dedupe.clusters(matcher)
    assert [members for members, _ in sure] == [["u1", "u2", "u3", "u4"]] and review == []


def test_dedupe_apply_leaves_a_group_someone_changed_after_it_was_matched(
        server: ServerProcess) -> None:
    """``cardfile dedupe --apply`` matches off the lock and merges in short holds:
    a card another client changes in between is not merged over, and the next
    run merges it."""
    from cardfile.cli.contacts import Context
    from cardfile.plugin.contacts.importers import book as import_book

    client = server.client()
    for uid, name, email in (("a1", "Ann Lee", "ann@example.org"),
                             ("a2", "Ann Lee", "ANN@example.org"),
                             ("b1", "Bob Ray", "bob@example.org"),
                             ("b2", "Bob Ray", "bob@example.org")):
        assert client.put(f"{uid}.vcf", card(uid, name, f"EMAIL:{email}"))[0] == 201
    config = str(server.config_path) if server.config_path else None
    ctx = Context(str(server.data_dir), config, USER, "contacts")
    with ctx.open("r") as book:  # as the command does
        found = import_book.people_of(book)
        token = import_book.changes_token(book)
    matcher = import_book.matcher_of(found, ctx.region)
    sure, _ = dedupe.clusters(matcher)
    assert sorted(sorted(uids) for uids, _ in sure) == [["a1", "a2"], ["b1", "b2"]]

    edited = card("b2", "Bob Ray", "EMAIL:bob@example.org", "NOTE:edited on the phone meanwhile")
    assert client.put("b2.vcf", edited)[0] == 204
    merged, left, refused = import_book.merge_unchanged(lambda: ctx.open("w"), ctx.merges, sure,
                                                        matcher.people, token, ctx.region)
    assert len(merged) == 1 and [sorted(uids) for uids in left] == [["b1", "b2"]]
    assert refused == []
    assert sorted(client.get(f"{u}.vcf")[0] for u in ("a1", "a2")) == [200, 404]
    assert "edited on the phone meanwhile" in client.get("b2.vcf")[2]
    assert client.get("b1.vcf")[0] == 200

    applied = cli_json(server.data_dir, "dedupe", "--user", USER, "--apply", "--json",
                       *(("--config", config) if config else ()))
    assert len(applied["merged"]) == 1 and applied["left"] == applied["refused"] == []
    survivor = next(text for u in ("b1", "b2")
                    if (got := client.get(f"{u}.vcf"))[0] == 200 for text in [got[2]])
    assert "edited on the phone meanwhile" in survivor


def test_dedupe_apply_reports_a_merge_over_the_size_limit_and_merges_the_rest(
        tmp_path: Path, store_config: str) -> None:
    from tests.conftest import start_server

    server = start_server(tmp_path, extra_config="[server]\nmax_resource_size = 700\n",
                          store_config=store_config)
    try:
        client = server.client()
        long_a, long_b = "NOTE:" + "a" * 300, "NOTE:" + "b" * 300
        for uid, extra in (("big1", long_a), ("big2", long_b), ("s1", ""), ("s2", "")):
            name = "Big Person" if uid.startswith("big") else "Small Person"
            lines = [f"EMAIL:{name.split()[0].lower()}@example.org", *([extra] if extra else [])]
            assert client.put(f"{uid}.vcf", card(uid, name, *lines))[0] == 201
        config = ("--config", str(server.config_path)) if server.config_path else ()
        applied = cli_json(server.data_dir, "dedupe", "--user", USER, "--apply", "--json",
                           *config)
        assert len(applied["merged"]) == 1 and applied["left"] == []
        [refused] = applied["refused"]
        assert sorted(refused["uids"]) == ["big1", "big2"] and refused["reason"]
        assert client.get("big1.vcf")[0] == client.get("big2.vcf")[0] == 200  # both kept
        assert sorted(client.get(f"s{i}.vcf")[0] for i in (1, 2)) == [200, 404]
        text = run_cli("dedupe", "--user", USER, "--apply", *config,
                       data_dir=server.data_dir).stdout
        assert "Not merged (" in text and "Traceback" not in text
    finally:
        server.stop()
