"""``cardfile export``: vCard 3.0/4.0 with photos in each version's form, correct
folding, jCard and CSV; import -> export -> import is stable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests._sample_csv import import_json, listing, new_data_dir
from tests.conftest import (
    CORPUS,
    FIXTURE_FILES,
    FIXTURES,
    TWO_DATA_FOLDERS,
    requires_corpus,
    run_cli,
)

#: Every command of these tests on the store under test (conftest.cli_store).
pytestmark = pytest.mark.usefixtures("cli_store")

PHOTOS = [CORPUS / "thunderbird" / "v3-binary-png.vcf", CORPUS / "vcard" / "khard" /
          "photov4.vcf", CORPUS / "thunderbird" / "v4-uri-jpeg.vcf"]
# (files, cards, photos, a name that must survive folding): Cardfile's fixtures, the corpus.
PHOTO_SETS = [
    pytest.param([FIXTURES / "vcard4-photo-data-uri.vcf", FIXTURES / "vcard3-photo-base64.vcf",
                  FIXTURES / "utf16-bom.vcf"], 4, 2, "Đorđe Šćepanović", id="fixtures"),
    pytest.param([*PHOTOS, CORPUS / "vcard" / "khard" / "korean-c.vcf"], 4, 3, "최유림",
                 id="corpus", marks=requires_corpus)]


def _physical_lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.parametrize(("files", "cards", "photo_count", "name"), PHOTO_SETS)
def test_vcard3_and_vcard4_photos_and_folding(tmp_path: Path, files: list[Path], cards: int,
                                              photo_count: int, name: str) -> None:
    data = new_data_dir(tmp_path)
    import_json(data, *map(str, files))
    v3 = run_cli("export", "--format", "vcard3", data_dir=data).stdout
    v4 = run_cli("export", "--format", "vcard4", data_dir=data).stdout
    for text, version in ((v3, "3.0"), (v4, "4.0")):
        assert text.count("BEGIN:VCARD") == cards
        assert text.count(f"VERSION:{version}") == cards
        assert all(len(line.encode()) <= 75 for line in _physical_lines(text))
        unfolded = re.sub(r"\r?\n ", "", text)
        photos = [ln for ln in unfolded.splitlines() if ln.startswith("PHOTO")]
        assert len(photos) == photo_count
        if version == "3.0":
            assert all(p.startswith(("PHOTO;ENCODING=b;TYPE=PNG:", "PHOTO;ENCODING=b;TYPE=JPEG:"))
                       and "data:" not in p for p in photos), [p[:60] for p in photos]
        else:
            assert all(p.startswith(("PHOTO:data:image/png;base64,",
                                     "PHOTO:data:image/jpeg;base64,")) for p in photos), [
                p[:60] for p in photos]
    assert name in re.sub(r"\r?\n ", "", v4)


@pytest.mark.files_only(TWO_DATA_FOLDERS)
@pytest.mark.slow  # three exports and re-imports: ~11 s
@pytest.mark.parametrize("source", ["fixtures", pytest.param("corpus", marks=requires_corpus)])
def test_import_export_import_is_stable(tmp_path: Path, source: str) -> None:
    first = new_data_dir(tmp_path, "first")
    files = [str(p) for p in (FIXTURE_FILES if source == "fixtures"
                              else sorted((CORPUS / "vcard").rglob("*.vcf")))]
    import_json(first, *files)
    before = {p["uid"]: p for p in listing(first)}
    for fmt in ("vcard3", "vcard4", "jcard"):
        out = tmp_path / f"export.{fmt}"
        run_cli("export", "--format", fmt, "-o", str(out), data_dir=first)
        second = new_data_dir(tmp_path, f"second-{fmt}")
        report = import_json(second, str(out))
        assert report["skipped"] == 0 and report["added"] == len(before)
        after = {p["uid"]: p for p in listing(second)}
        assert after.keys() == before.keys()
        for uid, person in before.items():
            if person["n"] or fmt != "vcard3":  # 3.0 requires N: export derives it
                assert after[uid]["n"] == person["n"], (fmt, uid)
            assert [e["value"] for e in after[uid]["emails"]] == [
                e["value"] for e in person["emails"]]
            for key in ("fn", "categories", "org", "bday", "nickname"):
                assert after[uid][key] == person[key], (fmt, uid, key)
            assert [p["value"] for p in after[uid]["phones"]] == [
                p["value"] for p in person["phones"]]
        again = import_json(second, str(out))
        assert (again["added"], again["merged"]) == (0, 0)


@pytest.mark.files_only(TWO_DATA_FOLDERS)
@requires_corpus
def test_jcard_and_csv_exports(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    import_json(data, str(CORPUS / "jcard" / "ez-vcard" / "jcard-example.json"),
                str(CORPUS / "csv" / "khard" / "neat.csv"), "--category", "Heroes")
    cards = json.loads(run_cli("export", "--format", "jcard", data_dir=data).stdout)
    assert len(cards) == 4 and all(c[0] == "vcard" for c in cards)
    simon = next(c for c in cards if ["fn", {}, "text", "Simon Perreault"] in c[1])
    assert ["n", {}, "text", ["Perreault", "Simon", "", "", "ing. jr,M.Sc."]] in simon[1]
    csv_text = run_cli("export", "--format", "csv", "--category", "heroes",
                       data_dir=data).stdout
    assert len(csv_text.splitlines()) == 5  # header + 3 heroes + Simon
    copy = new_data_dir(tmp_path, "copy")
    out = tmp_path / "heroes.csv"
    out.write_text(csv_text, newline="")
    report = import_json(copy, str(out))
    assert report["added"] == 4
    bruce = next(p for p in listing(copy) if p["fn"] == "Bruce Wayne")
    assert bruce["categories"] == ["Heroes"] and bruce["nickname"] == "Batman"


@pytest.mark.files_only(TWO_DATA_FOLDERS)
def test_jcard_and_csv_exports_of_the_fixtures(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    import_json(data, str(FIXTURES / "jcard.json"), str(FIXTURES / "google.csv"),
                "--category", "Heroes")
    cards = json.loads(run_cli("export", "--format", "jcard", data_dir=data).stdout)
    assert len(cards) == 4 and all(c[0] == "vcard" for c in cards)
    bjorn = next(c for c in cards if ["fn", {}, "text", "Björn Þórsson"] in c[1])
    assert ["n", {}, "text", ["Þórsson", "Björn", "", "", ""]] in bjorn[1]
    csv_text = run_cli("export", "--format", "csv", "--category", "heroes",
                       data_dir=data).stdout
    assert len(csv_text.splitlines()) == 5  # header + 4 heroes
    copy = new_data_dir(tmp_path, "copy")
    out = tmp_path / "heroes.csv"
    out.write_text(csv_text, newline="")
    report = import_json(copy, str(out))
    assert report["added"] == 4
    sione = next(p for p in listing(copy) if p["fn"] == "Sione Tuilagi")
    assert sione["categories"] == ["Rowing", "Heroes"] and sione["nickname"] == "Si"
    assert sione["urls"] == ["https://rowing.example/sione"]


@pytest.mark.parametrize("fmt", ["vcard3", "jcard", "csv"])
def test_an_export_to_a_file_is_the_one_to_standard_output(tmp_path: Path, fmt: str) -> None:
    """Written as it is made, a card at a time: a file already there is replaced by the
    whole export (never left half old, half new); a device stays the device."""
    data = new_data_dir(tmp_path)
    import_json(data, str(FIXTURES / "jcard.json"), str(FIXTURES / "google.csv"))
    shown = run_cli("export", "--format", fmt, data_dir=data).stdout
    target = tmp_path / f"contacts.{fmt}"
    target.write_text("an older export, longer than this one will be\n" * 2000)
    written = run_cli("export", "--format", fmt, "-o", str(target), data_dir=data)
    assert target.read_text(encoding="utf-8") == shown
    assert "Exported 4 contact(s)" in written.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    link = tmp_path / "latest"
    link.symlink_to(target)
    target.write_text("older\n")
    run_cli("export", "--format", fmt, "-o", str(link), data_dir=data)
    assert link.is_symlink() and target.read_text(encoding="utf-8") == shown
    run_cli("export", "--format", fmt, "-o", "/dev/null", data_dir=data)
    assert Path("/dev/null").is_char_device()
