"""``cardfile import``: every corpus file, the expected results shipped beside them,
Cardfile's own fixtures (tests/data) quirk by quirk, Google/Outlook/LinkedIn CSV samples,
tolerance, idempotence, groups, a running server.

Tests over the shared corpus skip (with the reason) where it is absent; the fixture
tests cover the same quirks on a fresh clone."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cardfile.plugin.contacts import importers
from tests._sample_csv import (
    google_new,
    google_old,
    import_json,
    listing,
    new_data_dir,
    outlook,
)
from tests.conftest import (
    CORPUS,
    FIXTURE_FILES,
    FIXTURES,
    USER,
    ServerProcess,
    cardfile_command,
    corpus_params,
    requires_corpus,
    run_cli,
)
from tests.davclient import card as vcard

NOT_CONTACTS = {"addressbook.json", "vcard-samples-license.txt", "SOURCES.md"}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_CONTACTS
                  and p.suffix != ".yaml")


def by_name(people: list[dict[str, Any]], fn: str) -> dict[str, Any]:
    matches = [p for p in people if p["fn"] == fn]
    assert matches, f"no contact {fn!r} in {[p['fn'] for p in people]}"
    return matches[0]


@requires_corpus
def test_corpus_is_present() -> None:
    assert len(corpus_files()) >= 60


@pytest.mark.parametrize("path", corpus_params(corpus_files()),
                         ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_reads(path: Path) -> None:
    parsed = importers.read(path.read_bytes(), path.name)
    if path.name == "unparsable.vcf":
        assert not parsed.cards
        assert any("END:VCARD is missing" in p.reason and p.origin == "unparsable.vcf:1"
                   for p in parsed.problems)
        return
    assert parsed.cards, [str(p) for p in parsed.problems]
    assert not [p for p in parsed.problems if p.skipped], [str(p) for p in parsed.problems]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_every_fixture_file_reads(path: Path) -> None:
    parsed = importers.read(path.read_bytes(), path.name)
    assert parsed.cards, [str(p) for p in parsed.problems]
    assert not [p for p in parsed.problems if p.skipped], [str(p) for p in parsed.problems]


@pytest.mark.usefixtures("cli_store")
@pytest.mark.slow
@requires_corpus
def test_whole_corpus_imports_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    files = [str(p) for p in corpus_files()]
    first = import_json(data, *files)
    assert first["added"] > 50
    assert first["skipped"] == 1
    assert "unparsable.vcf:1" in first["skipped_reasons"][0]
    count = len(listing(data))
    assert count == first["added"]
    again = import_json(data, *files)
    assert again["added"] == 0
    assert again["merged"] <= first["merged"]
    third = import_json(data, *files)
    assert (third["added"], third["merged"]) == (0, 0)
    assert len(listing(data)) == count


# -- Thunderbird's expected results (addressbook.json) ---------------------------------
TB_FILES = {"basic_ldif_addressbook.ldif": "basic_addressbook",
            "bug_263304.ldif": "bug_263304", "utf16_addressbook.csv": "utf16_csv",
            "shiftjis_addressbook.csv": "shiftjis_csv", "quote.csv": "quote_csv",
            "basic_vcard_addressbook.vcf": "vcard_import",
            "emptylines_vcard_addressbook.vcf": "vcard_import",
            "dos_vcard_addressbook.vcf": "dos_vcard_import",
            "basic_csv_addressbook.csv": "csv_import", "csv_semicolon.csv": "csv_import",
            "csv_no_header.csv": "csv_import"}


def _vcard_props(text: str) -> list[tuple[str, set[str], str]]:
    """(NAME, lower-case TYPEs, value) of each unfolded line of a vCard 4.0 text."""
    text = re.sub(r"\r?\n[ \t]", "", text)
    props = []
    for line in text.splitlines():
        head, _, value = line.partition(":")
        name, *params = head.split(";")
        types = {t.lower() for p in params if p.upper().startswith("TYPE=")
                 for t in p[5:].split(",")}
        props.append((name.split(".")[-1].upper(), types, value))
    return props


def _same(name: str, expected: str, actual: str) -> bool:
    if name == "BDAY":
        return re.sub(r"\D", "", expected) == re.sub(r"\D", "", actual)
    if name in ("ORG", "N", "ADR"):
        return expected.rstrip(";") == actual.rstrip(";")
    return expected == actual


@pytest.mark.usefixtures("cli_store")
@requires_corpus
@pytest.mark.parametrize("file_name", sorted(TB_FILES))
def test_thunderbird_expected_results(tmp_path: Path, file_name: str) -> None:
    expected = json.loads((CORPUS / "thunderbird" / "addressbook.json").read_text())
    cards = expected[TB_FILES[file_name]]
    data = new_data_dir(tmp_path)
    report = import_json(data, str(CORPUS / "thunderbird" / file_name))
    assert report["added"] == len(cards) and report["skipped"] == 0
    people = listing(data)
    vcards = run_cli("export", "--format", "vcard4", data_dir=data).stdout
    for card in cards:
        person = by_name(people, card["DisplayName"])
        if "PrimaryEmail" in card:
            assert person["emails"][0]["value"] == card["PrimaryEmail"]
        if "FirstName" in card:
            assert person["n"]["given"] == card["FirstName"]
            assert person["n"]["family"] == card["LastName"]
        if "NickName" in card:
            assert person["nickname"] == card["NickName"]
        if "SecondEmail" in card:
            assert card["SecondEmail"] in [e["value"] for e in person["emails"]]
        if "_vCard" not in card:
            continue
        ours = _vcard_props(_card_of(vcards, person["uid"]))
        for line in _vcard_props("\n".join(card["_vCard"])):
            name, types, value = line
            if name in ("VERSION", "UID"):
                continue
            assert any(n == name and types <= t | {"internet"} and _same(name, value, v)
                       for n, t, v in ours), f"{line} missing from {ours}"


def _card_of(export: str, uid: str) -> str:
    for card in export.split("END:VCARD"):
        if f"UID:{uid}" in card:
            return card
    raise AssertionError(uid)


# -- khard's expected results (csv/khard/*.yaml) ----------------------------------------
@pytest.mark.usefixtures("cli_store")
@requires_corpus
@pytest.mark.parametrize("csv_name", ["neat.csv", "jumbled.csv"])
def test_khard_csv_matches_the_yaml(tmp_path: Path, csv_name: str) -> None:
    data = new_data_dir(tmp_path)
    report = import_json(data, str(CORPUS / "csv" / "khard" / csv_name))
    assert report["added"] == 3
    people = listing(data)
    vcards = run_cli("export", "--format", "vcard3", data_dir=data).stdout
    for yaml_name in ("batman.yaml", "superman.yaml", "lois_lane.yaml"):
        want = yaml.safe_load((CORPUS / "csv" / "khard" / yaml_name).read_text())
        person = by_name(people, f"{want['First name']} {want['Last name']}")
        assert person["n"]["given"] == want["First name"]
        assert person["n"]["family"] == want["Last name"]
        assert person["nickname"] == (want["Nickname"] or "")
        card = _vcard_props(_card_of(vcards, person["uid"]))
        orgs = want["Organisation"] if isinstance(want["Organisation"], list) \
            else [want["Organisation"]]
        assert sorted(v for n, _, v in card if n == "ORG") == sorted(orgs)
        for kind, values in (want["Email"] or {}).items():
            for value in values if isinstance(values, list) else [values] if values else []:
                assert any(n == "EMAIL" and kind in t and v == value for n, t, v in card)
        for kind, value in (want["Phone"] or {}).items():
            if value:
                assert any(n == "TEL" and kind in t and v == str(value) for n, t, v in card)
        for kind, addresses in (want["Address"] or {}).items():
            for adr in addresses if isinstance(addresses, list) else [addresses]:
                parts = [adr[k] or "" for k in ("Box", "Extended", "Street", "City", "Region",
                                                "Code", "Country")]
                assert any(n == "ADR" and kind in t and v == ";".join(parts)
                           for n, t, v in card), (kind, parts)


# -- Google and Outlook samples ---------------------------------------------------------
@pytest.mark.usefixtures("cli_store")
def test_google_csv_current_layout(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "google.csv"
    sample.write_bytes(google_new([
        {"First Name": "Ada", "Last Name": "Lovelace", "Nickname": "Countess",
         "Organization Name": "Analytical Engines", "Organization Title": "Programmer",
         "Birthday": "1815-12-10", "Notes": "Met in London, 1843",
         "Labels": "* myContacts ::: * starred ::: Friends ::: Math, Club",
         "E-mail 1 - Label": "* Home", "E-mail 1 - Value": "ada@example.org ::: a.l@example.net",
         "E-mail 2 - Label": "Work", "E-mail 2 - Value": "ada@engines.example",
         "Phone 1 - Label": "Mobile", "Phone 1 - Value": "+44 20 7946 0018",
         "Phone 2 - Label": "Work Fax", "Phone 2 - Value": "+44 20 7946 0019",
         "Address 1 - Label": "Home", "Address 1 - Street": "12 St James's Square",
         "Address 1 - City": "London", "Address 1 - Postal Code": "SW1Y 4JH",
         "Address 1 - Country": "United Kingdom",
         "Website 1 - Label": "Profile", "Website 1 - Value": "https://example.org/ada",
         "Event 1 - Label": "Anniversary", "Event 1 - Value": "1835-07-08"},
        {"First Name": "Charles", "Last Name": "Babbage", "Labels": "* myContacts",
         "Phone 1 - Label": "Home", "Phone 1 - Value": "+44 20 7946 0020"}]))
    report = import_json(data, str(sample))
    assert report["formats"] and list(report["formats"].values()) == ["google-csv"]
    assert report["added"] == 2
    ada = by_name(listing(data), "Ada Lovelace")
    assert [e["value"] for e in ada["emails"]] == ["ada@example.org", "a.l@example.net",
                                                   "ada@engines.example"]
    assert "pref" in ada["emails"][0]["types"] and "home" in ada["emails"][0]["types"]
    assert {p["value"]: p["types"] for p in ada["phones"]} == {
        "+44 20 7946 0018": ["cell"], "+44 20 7946 0019": ["work", "fax"]}
    assert ada["addresses"][0]["street"] == "12 St James's Square"
    assert ada["addresses"][0]["code"] == "SW1Y 4JH" and "home" in ada["addresses"][0]["types"]
    assert ada["bday"] == "1815-12-10"
    assert ada["org"] == "Analytical Engines" and ada["title"] == "Programmer"
    assert ada["note"] == "Met in London, 1843"
    assert ada["categories"] == ["Friends", "Math, Club"]
    babbage = by_name(listing(data), "Charles Babbage")
    assert babbage["categories"] == []


@pytest.mark.usefixtures("cli_store")
def test_google_csv_older_layout_in_utf16(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "google-old.csv"
    sample.write_bytes(google_old([
        {"Name": "Grace Hopper", "Given Name": "Grace", "Family Name": "Hopper",
         "Birthday": "1906-12-09", "Group Membership": "* My Contacts ::: Navy",
         "E-mail 1 - Type": "* Work", "E-mail 1 - Value": "grace@navy.example",
         "Phone 1 - Type": "Mobile", "Phone 1 - Value": "(202) 555-0143",
         "Address 1 - Type": "Work", "Address 1 - Street": "1 Navy Yard",
         "Address 1 - City": "Washington", "Address 1 - Region": "DC",
         "Organization 1 - Name": "US Navy", "Organization 1 - Title": "Rear Admiral"}]))
    report = import_json(data, str(sample))
    assert report["added"] == 1
    grace = by_name(listing(data), "Grace Hopper")
    assert grace["emails"][0]["value"] == "grace@navy.example"
    assert grace["phones"][0] == {"value": "(202) 555-0143", "types": ["cell"]}
    assert grace["addresses"][0]["city"] == "Washington"
    assert grace["bday"] == "1906-12-09" and grace["categories"] == ["Navy"]
    assert grace["org"] == "US Navy" and grace["title"] == "Rear Admiral"


@pytest.mark.usefixtures("cli_store")
@pytest.mark.parametrize("german", [False, True], ids=["english", "german-cp1252"])
def test_outlook_csv(tmp_path: Path, german: bool) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "outlook.csv"
    sample.write_bytes(outlook([
        {"First Name": "Jürgen", "Last Name": "Müller", "Company": "Bäckerei Müller",
         "Job Title": "Meister", "Business Street": "Hauptstraße 5", "Business City": "Köln",
         "Business Postal Code": "50667", "Business Country/Region": "Deutschland",
         "Business Phone": "+49 221 1234567", "Mobile Phone": "+49 171 2345678",
         "E-mail Address": "juergen@baeckerei.example", "Birthday": "5/17/1970",
         "Categories": "Kunden;Lieferanten", "Notes": "Brötchen, täglich"}], german))
    report = import_json(data, str(sample))
    assert list(report["formats"].values()) == ["outlook-csv"]
    person = by_name(listing(data), "Jürgen Müller")
    assert person["org"] == "Bäckerei Müller" and person["title"] == "Meister"
    assert person["emails"][0]["value"] == "juergen@baeckerei.example"
    assert {p["value"] for p in person["phones"]} == {"+49 221 1234567", "+49 171 2345678"}
    assert person["addresses"][0]["street"] == "Hauptstraße 5"
    assert person["addresses"][0]["city"] == "Köln" and "work" in person["addresses"][0]["types"]
    assert person["bday"] == "1970-05-17"
    assert person["categories"] == ["Kunden", "Lieferanten"]
    assert person["note"] == "Brötchen, täglich"


@pytest.mark.usefixtures("cli_store")
def test_linkedin_connections_with_preamble(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "Connections.csv"
    sample.write_text(
        'Notes:\n"When exporting your connection data, you may notice that some of the email '
        'addresses are missing."\n\nFirst Name,Last Name,URL,Email Address,Company,Position,'
        'Connected On\nAlan,Turing,https://www.linkedin.com/in/example-alan,alan@example.org,'
        'Bletchley Park,Cryptanalyst,23 Jun 2012\nJoan,Clarke,https://www.linkedin.com/in/'
        'example-joan,,Bletchley Park,Cryptanalyst,24 Jun 2012\n')
    report = import_json(data, str(sample))
    assert report["added"] == 2 and list(report["formats"].values()) == ["linkedin-csv"]
    alan = by_name(listing(data), "Alan Turing")
    assert alan["emails"][0]["value"] == "alan@example.org"
    assert alan["urls"] == ["https://www.linkedin.com/in/example-alan"]
    assert alan["org"] == "Bletchley Park" and alan["title"] == "Cryptanalyst"


@pytest.mark.usefixtures("cli_store")
def test_broken_row_is_named_and_the_rest_imports(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "broken.csv"
    sample.write_text("First Name,Last Name,E-mail Address\r\nAnn,Able,ann@example.org\r\n"
                      'Bob,"Ba"ker",bob@example.org\r\n,,\r\n'
                      "Dee,Dunn,dee@example.org,extra,more\r\nCy,Cole,cy@example.org\r\n")
    report = import_json(data, str(sample))
    assert report["added"] == 3
    assert report["skipped"] == 1
    assert report["skipped_reasons"][0].startswith(f"{sample}:3: cannot read this row")
    assert report["repairs"][0].startswith(f"{sample}:5: row has 5 fields")
    assert sorted(p["fn"] for p in listing(data)) == ["Ann Able", "Cy Cole", "Dee Dunn"]


@pytest.mark.usefixtures("cli_store")
def test_messy_vcard_is_repaired(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "phone.vcf"
    sample.write_bytes(
        b"BEGIN:VCARD\r\r\nVERSION:2.1\r\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BC"
        b"ller;J=C3=B6rg\r\r\nTEL;CELL;PREF:+49 171 555 0100\r\r\n"
        b"NOTE;ENCODING=QUOTED-PRINTABLE:line one=0D=0Aline two, with comma=\r\r\n and more"
        b"\r\r\nPHOTO;ENCODING=BASE64;JPEG:!!!not base64!!!\r\r\nEND:VCARD\r\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nEMAIL:nameless@example.org\r\nEND:VCARD\r\n"
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cut Off\r\n")
    report = import_json(data, str(sample))
    assert report["added"] == 2 and report["skipped"] == 1
    assert f"{sample}:13: END:VCARD is missing" in report["skipped_reasons"][0]
    assert any("PHOTO is not valid base64" in r for r in report["repairs"])
    jorg = by_name(listing(data), "Jörg Müller")
    assert jorg["phones"] == [{"value": "+49 171 555 0100", "types": ["cell", "pref"]}]
    assert jorg["note"] == "line one\nline two, with comma and more"
    assert by_name(listing(data), "nameless@example.org")["emails"]


@pytest.mark.usefixtures("cli_store")
def test_group_cards_and_category_option(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    sample = tmp_path / "apple.vcf"
    sample.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m1\r\nFN:Mia One\r\nN:One;Mia;;;\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:m2\r\nFN:Max Two\r\nN:Two;Max;;;\r\n"
        "CATEGORIES:Chess\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:g1\r\nFN:Book Club\r\nN:Book Club;;;;\r\n"
        "X-ADDRESSBOOKSERVER-KIND:group\r\nX-ADDRESSBOOKSERVER-MEMBER:urn:uuid:m1\r\n"
        "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:m2\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:g2\r\nFN:Runners\r\nKIND:group\r\n"
        "MEMBER:urn:uuid:m1\r\nEND:VCARD\r\n")
    report = import_json(data, str(sample), "--category", " imported ", "--category", "chess")
    assert report["added"] == 2
    people = {p["uid"]: p for p in listing(data)}
    assert set(people) == {"m1", "m2"}
    assert people["m1"]["categories"] == ["imported", "chess", "Book Club", "Runners"]
    assert people["m2"]["categories"] == ["Chess", "imported", "Book Club"]
    text = run_cli("contacts", "show", "m2", "--format", "vcard", data_dir=data).stdout
    assert "CATEGORIES:Chess,imported,Book Club" in text
    assert listing(data, "--category", "book club") and len(listing(data, "--category",
                                                                   "Runners")) == 1


@pytest.mark.usefixtures("cli_store")
@requires_corpus
def test_ldif_mailing_list_becomes_a_category(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    import_json(data, str(CORPUS / "thunderbird" / "export.ldif"))
    people = listing(data, "--category", "new list")
    assert [p["fn"] for p in people] == ["contact number one"]
    two = by_name(listing(data), "contact number two")
    assert two["title"] == '"worker"' and two["note"] == "here's some unicode text…"


@pytest.mark.usefixtures("cli_store")
def test_stdin_and_dry_run(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    text = (FIXTURES / "multi-card.vcf").read_text()
    dry = run_cli("import", "-", "--dry-run", "--json", data_dir=data, stdin=text)
    assert json.loads(dry.stdout)["added"] == 3
    assert run_cli("contacts", "list", data_dir=data, check=False).returncode != 0
    assert json.loads(run_cli("import", "-", "--json", data_dir=data, stdin=text).stdout
                      )["added"] == 3


@pytest.mark.usefixtures("cli_store")
def test_unknown_file_is_refused_with_advice(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    junk = tmp_path / "notes.txt"
    junk.write_text("just some words\nnothing here\n")
    result = run_cli("import", str(junk), data_dir=data, check=False)
    assert result.returncode == 1
    assert "skipped" in result.stderr or "no contacts" in result.stderr


@pytest.mark.parametrize("kind", ["gzip", "random"])
def test_a_binary_file_is_refused_not_read_as_csv(tmp_path: Path, kind: str) -> None:
    """An archive or an image given by mistake (``import`` for ``restore``): read as
    CSV, every line of it became a junk contact (33 from one small GIF)."""
    import gzip
    import random

    data = new_data_dir(tmp_path)
    source = tmp_path / "one.vcf"
    source.write_text(vcard("keep-1", "Kept Person", "EMAIL:kept@example.org"), newline="")
    run_cli("import", str(source), data_dir=data)
    wrong = tmp_path / ("backup.tar.gz" if kind == "gzip" else "photo.jpg")
    wrong.write_bytes(gzip.compress(("".join(vcard(f"g-{i}", f"G {i}") for i in range(200))
                                     ).encode()) if kind == "gzip"
                      else random.Random(7).randbytes(8000))
    result = run_cli("import", str(wrong), data_dir=data, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{wrong.name} is not a text file" in result.stderr
    assert [p["fn"] for p in listing(data)] == ["Kept Person"]


def test_a_csv_with_filemakers_line_breaks_inside_fields_is_text(tmp_path: Path) -> None:
    """FileMaker writes a line break inside a field as a vertical tab: such an export is
    text, however short its rows, and is read as the CSV it is."""
    data = new_data_dir(tmp_path)
    rows = "".join(f'Person {i},p{i}@example.org,"{i} High Street\x0bFlat {i}"\r\n'
                   for i in range(30))
    source = tmp_path / "filemaker.csv"
    source.write_bytes(("Name,E-mail Address,Home Address\r\n" + rows).encode())
    assert import_json(data, str(source))["added"] == 30


def test_import_while_the_server_runs(server: ServerProcess) -> None:
    client = server.client()
    status, _, _ = client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    assert status == 207
    _, token, before = client.sync()
    result = server.cli("import", str(FIXTURES / "utf16-bom.vcf"), "--user", USER, "--json")
    assert json.loads(result.stdout)["added"] == 2
    status, _, changed = client.sync(token)
    assert status == 207 and len(changed) == 2
    status, _, body = client.get(changed[0].href.rsplit("/", 1)[-1])
    assert status == 200 and "BEGIN:VCARD" in body
    assert len(client.etags()) == len(before) + 2


def test_an_imported_uid_that_is_another_cards_file_name_is_a_new_contact(
        server: ServerProcess, tmp_path: Path) -> None:
    """A card with ``UID:x.vcf`` is not the contact stored as ``x.vcf``: before, the
    import reported it added and the phone's contact was replaced (and in the trash)."""
    client = server.client()
    assert client.put("1234-abcd.vcf", vcard("1234-abcd", "Alice Phone",
                                            "EMAIL:alice@example.org"))[0] == 201
    source = tmp_path / "other.vcf"
    source.write_text(vcard("1234-abcd.vcf", "Bob Other", "EMAIL:bob@example.org"), newline="")
    report = json.loads(server.cli("import", str(source), "--user", USER, "--json").stdout)
    assert (report["added"], report["merged"]) == (1, 0)
    status, _, text = client.get("1234-abcd.vcf")
    assert status == 200 and "Alice Phone" in text and "Bob Other" not in text
    names = [card_fn(client.get(href.rsplit("/", 1)[-1])[2]) for href in client.etags()]
    assert sorted(names) == ["Alice Phone", "Bob Other"]


def card_fn(text: str) -> str:
    return next(line[3:] for line in text.splitlines() if line.startswith("FN:"))


@pytest.mark.slow  # an import of 1,500 cards
def test_a_card_a_client_puts_during_an_import_is_merged_not_replaced(
        server: ServerProcess, tmp_path: Path) -> None:
    """The import reads the book once, then stores cards in short holds of the lock;
    a phone's card stored in between with a UID the file also has is merged, as the
    import promises for a matching UID. Before, the file's card replaced it."""
    client = server.client()
    assert client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
    cards = [vcard(f"imp-{i}", f"Person {i}", f"EMAIL:person{i}@example.org")
             for i in range(1500)]
    cards.append(vcard("shared-uid-1", "Shared Person", "EMAIL:shared@example.org"))
    source = tmp_path / "many.vcf"
    source.write_text("".join(cards), newline="")
    config = ("--config", str(server.config_path)) if server.config_path else ()
    importing = subprocess.Popen(
        [*cardfile_command(), "import", str(source), "--user", USER, "--json", *config,
         "--data-dir", str(server.data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while client.get("imp-0.vcf")[0] != 200:  # the book was read, the storing began
            assert importing.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        status = client.put("shared-uid-1.vcf", vcard(
            "shared-uid-1", "Shared Person", "TEL:+1 202 555 0199", "NOTE:added on the phone"))[0]
        still_importing = importing.poll() is None
        out, err = importing.communicate(timeout=120)
    finally:
        if importing.poll() is None:
            importing.kill()
    assert status == 201 and still_importing, "the import ended before the phone's card"
    assert importing.returncode == 0, err
    report = json.loads(out)
    assert (report["added"], report["merged"]) == (1500, 1)
    status, _, text = client.get("shared-uid-1.vcf")
    assert status == 200
    assert "NOTE:added on the phone" in text and "+1 202 555 0199" in text
    assert "shared@example.org" in text


# -- Cardfile's own fixtures (tests/data), quirk by quirk ----------------------------------
def _photo_bytes(card_text: str) -> bytes:
    """The decoded PHOTO of a card, whichever of the two inline forms it is in."""
    unfolded = re.sub(r"\r?\n[ \t]", "", card_text)
    line = next(ln for ln in unfolded.splitlines() if ln.upper().startswith("PHOTO"))
    return base64.b64decode(line.rsplit(",", 1)[-1] if "base64," in line
                            else line.split(":", 1)[1])


@pytest.mark.usefixtures("cli_store")
def test_every_fixture_imports_with_its_quirk_understood(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    report = import_json(data, *map(str, FIXTURE_FILES))
    assert report["skipped"] == 0, report["skipped_reasons"]
    assert report["added"] == 27  # every person once; the three group cards are not people
    assert not [r for r in report["repairs"] if "neither in the file" in r], report["repairs"]
    assert any("X-MESSAGING/TWITTER-ALL" in r for r in report["repairs"])
    people = listing(data)
    assert len(people) == 27

    apple = by_name(people, "Dr. Chidinma Ada Okafor")  # item groups, X-AB*, https\://
    assert [e["value"] for e in apple["emails"]] == ["chidinma@lighthouse.example",
                                                     "c.okafor@mail.example"]
    assert apple["urls"] == ["https://lighthouse.example/people/chidinma"]
    assert apple["addresses"][0]["city"] == "Lagos"
    assert apple["note"] == "Prefers calls after 5pm, Lagos time."
    apple_card = run_cli("contacts", "show", apple["uid"], "--format", "vcard",
                         data_dir=data).stdout
    for kept in ("item2.X-ABLabel:Substack", "X-ABADR:ng", "X-ABShowAs:COMPANY"):
        assert kept.upper() in apple_card.upper(), apple_card

    # Group cards become categories of their members (Apple and vCard 4 alike).
    assert sorted(p["fn"] for p in listing(data, "--category", "Choir")) == [
        "Karim Haddad", "Maja Lindqvist"]
    assert sorted(p["fn"] for p in listing(data, "--category", "Cycling Club")) == [
        "Aiko Tanaka", "Tomasz Wiśniewski"]
    assert sorted(p["fn"] for p in listing(data, "--category", "Gardeners")) == [
        "Léa Dubois", "Nadia Rahman"]  # LDIF groupOfNames, one member named in base64

    for fn, fixture in (("Inês Carvalho", "vcard4-photo-data-uri.vcf"),
                        ("Oluwaseun Adeyemi", "vcard3-photo-base64.vcf")):
        uid = by_name(people, fn)["uid"]
        stored = run_cli("contacts", "show", uid, "--format", "vcard", data_dir=data).stdout
        assert _photo_bytes(stored) == _photo_bytes((FIXTURES / fixture).read_text()), fn

    renee = by_name(people, "Renée Beaulé")  # vCard 2.1 quoted-printable, UTF-8 charset
    assert renee["n"]["given"] == "Renée"
    assert renee["note"] == ("Café owner near the station.\nSecond line: opens at 7, closes "
                             "at 19, except Sundays.")  # soft line break joined
    assert renee["addresses"][0]["street"] == "3 rue de l'Église"
    assert {p["value"]: p["types"] for p in renee["phones"]} == {
        "+33 6 55 55 01 23": ["cell", "home"], "+33 4 55 55 01 24": ["work", "voice", "pref"]}
    paulo = by_name(people, "Paulo Ferreira")  # 2.1 NOTE with bare commas keeps them
    assert paulo["note"] == "Met at the market, Saturday, with Luc, Anne and the kids"

    assert by_name(people, "Zoë Ångström")["note"] == "Åsa's cousin – met in Umeå"  # UTF-16
    assert by_name(people, "Đorđe Šćepanović")["phones"][0]["value"] == "+381 11 555 0164"
    assert by_name(people, "François Lefèvre")["note"] == "Galettes à 9 €"  # cp1252
    assert by_name(people, "Jürgen Müller")["addresses"][0]["street"] == "Hauptstraße 5"

    assert by_name(people, "Vera Versionless")["emails"][0]["value"] == "vera@example.org"
    assert by_name(people, "Hiro Nakamura")["uid"] == "fixture-no-fn"  # FN made from N
    olive = by_name(people, "Olive Okonkwo")
    assert olive["emails"][0]["value"] == "olive@example.org"  # despite EMAIL;TYPE=
    ana = by_name(people, "Ana Lucía Rojas")  # LF line ends, folded note, blank lines
    assert ana["note"].startswith("A long note that a client has folded onto a second "
                                  "physical line, as RFC 6350 allows")

    sione = by_name(people, "Sione Tuilagi")  # Google CSV: ::: lists and * labels
    assert [e["value"] for e in sione["emails"]] == [
        "sione@rowing.example", "s.tuilagi@mail.example", "coach@rowing.example"]
    assert sione["categories"] == ["Rowing"] and sione["note"] == "Rows at dawn, every day"
    kwame = by_name(people, "Kwame Mensah")  # Outlook CSV: M/D/Y birthday, ; categories
    assert kwame["bday"] == "1979-04-02" and kwame["categories"] == ["Suppliers", "Textiles"]
    assert kwame["addresses"][0]["street"] == "12 Ring Road, Unit 4"
    assert by_name(people, "Ingrid Solberg")["bday"] == ""  # Outlook's 0/0/00 means none
    bjorn = by_name(people, "Björn Þórsson")  # jCard
    assert bjorn["categories"] == ["Hiking", "Volcanoes"] and bjorn["bday"] == "1975-06-17"
    assert bjorn["addresses"][0]["city"] == "Reykjavík"

    again = import_json(data, *map(str, FIXTURE_FILES))
    assert (again["added"], again["skipped"]) == (0, 0)
    assert len(listing(data)) == 27
