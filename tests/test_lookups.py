"""``cardfile contacts list|show`` and ``cardfile search`` (khard-style and mutt output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._sample_csv import import_json, listing, new_data_dir
from tests.conftest import CORPUS, FIXTURES, NO_CORPUS, run_cli

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    folder = new_data_dir(tmp_path)
    import_json(folder, str(CORPUS / "csv" / "khard" / "neat.csv"), "--category", "Heroes")
    import_json(folder, str(CORPUS / "vcard" / "ez-vcard" / "rfc2426-example.vcf"))
    return folder


def test_list_json_parsable_and_category(data: Path) -> None:
    people = listing(data)
    assert [p["fn"] for p in people] == ["Bruce Wayne", "Clark Kent", "Frank Dawson",
                                         "Lois Lane", "Tim Howes"]
    assert [p["fn"] for p in listing(data, "--category", "heroes")] == [
        "Bruce Wayne", "Clark Kent", "Lois Lane"]
    lines = run_cli("contacts", "list", "--parsable", data_dir=data).stdout.splitlines()
    uid, name, email, phone = lines[0].split("\t")
    assert (name, email, phone) == ("Bruce Wayne", "thebat@justice.org", "911")
    assert uid == people[0]["uid"]


def test_show_formats(data: Path) -> None:
    uid = listing(data)[3]["uid"]
    pretty = run_cli("contacts", "show", uid, data_dir=data).stdout
    assert pretty.splitlines()[0] == "Lois Lane"
    assert "Email (internet,work): lane@dailyplanet.com" in pretty
    vcard = run_cli("contacts", "show", uid, "--format", "vcard", data_dir=data).stdout
    assert vcard.startswith("BEGIN:VCARD") and f"UID:{uid}" in vcard
    shown = json.loads(run_cli("contacts", "show", uid, "--format", "json",
                               data_dir=data).stdout)
    assert shown["n"]["family"] == "Lane" and shown["vcard"].replace("\r\n", "\n") == vcard
    by_search = run_cli("contacts", "show", "Lois", data_dir=data).stdout
    assert by_search == pretty
    missing = run_cli("contacts", "show", "nobody-at-all", data_dir=data, check=False)
    assert missing.returncode == 1 and "no contact" in missing.stderr


def _search(data: Path, *terms: str) -> list[str]:
    result = run_cli("search", *terms, "--json", data_dir=data)
    return [p["fn"] for p in json.loads(result.stdout)]


def test_search_by_name_email_phone_and_fields(data: Path) -> None:
    assert _search(data, "kent") == ["Clark Kent"]
    assert _search(data, "DAILYPLANET") == ["Clark Kent", "Lois Lane"]
    assert _search(data, "919-676-9515") == ["Frank Dawson"]
    assert _search(data, "9196769515") == ["Frank Dawson"]
    assert _search(data, "email:justice.org") == ["Bruce Wayne", "Clark Kent"]
    assert _search(data, "email:justice.org", "name:clark") == ["Clark Kent"]
    assert _search(data, "category:heroes", "org:planet") == ["Clark Kent", "Lois Lane"]
    assert _search(data, "phone:911") == ["Bruce Wayne", "Clark Kent"]
    assert _search(data, "zzz-nothing") == []


def test_mutt_query_output(data: Path) -> None:
    result = run_cli("search", "--mutt", "planet", data_dir=data)
    lines = result.stdout.splitlines()
    assert lines[0] == "3 entries found"  # every address of each matching contact
    assert "theman@justice.org\tClark Kent\tHeroes" in lines
    assert "kent@dailyplanet.com\tClark Kent\tHeroes" in lines
    assert "lane@dailyplanet.com\tLois Lane\tHeroes" in lines
    none = run_cli("search", "--mutt", "zzz-nothing", data_dir=data, check=False)
    assert none.returncode == 1 and none.stdout.startswith("No matches")


# -- the same look-ups over Cardfile's own fixtures (tests/data), for a fresh clone ------
@pytest.fixture
def book(tmp_path: Path) -> Path:
    folder = new_data_dir(tmp_path)
    import_json(folder, str(FIXTURES / "google.csv"), "--category", "Friends")
    import_json(folder, str(FIXTURES / "multi-card.vcf"), str(FIXTURES / "apple-vcard3.vcf"))
    return folder


def test_fixture_list_show_and_parsable(book: Path) -> None:
    people = listing(book)
    assert [p["fn"] for p in people] == ["Ana Lucía Rojas", "Astrid Marie Berg",
                                         "Dr. Chidinma Ada Okafor", "Mehmet Yılmaz",
                                         "Priya Raman", "Sione Tuilagi"]
    assert [p["fn"] for p in listing(book, "--category", "friends")] == [
        "Astrid Marie Berg", "Sione Tuilagi"]
    rows = [line.split("\t") for line in
            run_cli("contacts", "list", "--parsable", data_dir=book).stdout.splitlines()]
    assert rows[0] == ["fixture-multi-1", "Ana Lucía Rojas", "ana.rojas@cooperativa.example", ""]
    assert rows[3] == ["fixture-multi-2", "Mehmet Yılmaz", "", "+90 212 555 0101"]
    pretty = run_cli("contacts", "show", "Okafor", data_dir=book).stdout.splitlines()
    assert pretty[0] == "Dr. Chidinma Ada Okafor"  # Apple item1.EMAIL read as an email
    assert "  Email (internet,pref): chidinma@lighthouse.example" in pretty
    assert "  Address (home,pref): 12 Marina Road, 101001, Lagos, Nigeria" in pretty


def test_fixture_search_and_mutt(book: Path) -> None:
    assert _search(book, "Lucía") == ["Ana Lucía Rojas"]
    assert _search(book, "lighthouse") == ["Dr. Chidinma Ada Okafor"]
    assert _search(book, "+64 9 555 0120") == _search(book, "5550120") == ["Sione Tuilagi"]
    assert _search(book, "category:friends", "org:rowing") == ["Sione Tuilagi"]
    assert _search(book, "email:example.org") == ["Astrid Marie Berg"]
    lines = run_cli("search", "--mutt", "rowing", data_dir=book).stdout.splitlines()
    assert lines[0] == "3 entries found"  # Google's ::: put two addresses in one cell
    assert "s.tuilagi@mail.example\tSione Tuilagi\tRowing, Friends" in lines
