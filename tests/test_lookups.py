"""``cardfile contacts list|show`` and ``cardfile search`` (khard-style and mutt output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._sample_csv import import_json, listing, new_data_dir
from tests.conftest import CORPUS, run_cli


@pytest.fixture
def data(tmp_path: Path) -> Path:
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
