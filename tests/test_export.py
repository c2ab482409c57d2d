"""``cardfile export``: vCard 3.0/4.0 with photos in each version's form, correct
folding, jCard and CSV; import -> export -> import is stable."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests._sample_csv import import_json, listing, new_data_dir
from tests.conftest import CORPUS, run_cli

PHOTOS = [CORPUS / "thunderbird" / "v3-binary-png.vcf", CORPUS / "vcard" / "khard" /
          "photov4.vcf", CORPUS / "thunderbird" / "v4-uri-jpeg.vcf"]


def _physical_lines(text: str) -> list[str]:
    return text.splitlines()


def test_vcard3_and_vcard4_photos_and_folding(tmp_path: Path) -> None:
    data = new_data_dir(tmp_path)
    import_json(data, *map(str, PHOTOS), str(CORPUS / "vcard" / "khard" / "korean-c.vcf"))
    v3 = run_cli("export", "--format", "vcard3", data_dir=data).stdout
    v4 = run_cli("export", "--format", "vcard4", data_dir=data).stdout
    for text, version in ((v3, "3.0"), (v4, "4.0")):
        assert text.count("BEGIN:VCARD") == 4
        assert text.count(f"VERSION:{version}") == 4
        assert all(len(line.encode()) <= 75 for line in _physical_lines(text))
        unfolded = re.sub(r"\r?\n ", "", text)
        photos = [ln for ln in unfolded.splitlines() if ln.startswith("PHOTO")]
        assert len(photos) == 3
        if version == "3.0":
            assert all(p.startswith(("PHOTO;ENCODING=b;TYPE=PNG:", "PHOTO;ENCODING=b;TYPE=JPEG:"))
                       and "data:" not in p for p in photos), [p[:60] for p in photos]
        else:
            assert all(p.startswith(("PHOTO:data:image/png;base64,",
                                     "PHOTO:data:image/jpeg;base64,")) for p in photos), [
                p[:60] for p in photos]
    assert "최유림" in re.sub(r"\r?\n ", "", v4)


def test_import_export_import_is_stable(tmp_path: Path) -> None:
    first = new_data_dir(tmp_path, "first")
    files = [str(p) for p in sorted((CORPUS / "vcard").rglob("*.vcf"))]
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
