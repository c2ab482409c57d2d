"""One import: the CLI and the API (the web page's import) give the same book and report."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import card

# Two cards of one person (same email, compatible names) and a third person: an
# import that matches people merges the first two.
FILE = (card("p1", "Grace Hopper", "EMAIL:grace@navy.example", "TEL:+1 202 555 0101")
        + card("p2", "Grace B. Hopper", "EMAIL:GRACE@navy.example", "TITLE:Rear Admiral")
        + card("p3", "Alan Turing", "EMAIL:alan@bletchley.example"))


def api_import(server: ServerProcess, body: bytes, content_type: str = "text/vcard") -> dict:
    request = urllib.request.Request(
        f"{server.url}/api/books/contacts/import", data=body, method="POST",
        headers={"Content-Type": content_type, "Authorization": "Basic " + base64.b64encode(
            f"{USER}:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def book_meaning(server: ServerProcess) -> list[tuple[str, ...]]:
    """Each card's sorted content lines, minus what differs by nature (REV, PRODID)."""
    out = []
    for text in server.served_cards().values():
        lines = text.replace("\r\n", "\n").split("\n")
        out.append(tuple(sorted(ln for ln in lines if ln and not ln.startswith(
            ("REV:", "PRODID:", "X-CARDFILE-MERGED")))))
    return sorted(out)


def test_the_same_file_through_the_cli_and_the_api_gives_the_same_book(
        tmp_path: Path, store_config: str, second_store_config: str) -> None:
    source = tmp_path / "people.vcf"
    source.write_text(FILE, newline="")
    (tmp_path / "cli").mkdir()
    (tmp_path / "api").mkdir()
    by_cli = start_server(tmp_path / "cli", store_config=store_config)
    by_api = start_server(tmp_path / "api", store_config=second_store_config)
    try:
        for srv in (by_cli, by_api):
            srv.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        cli_report = json.loads(by_cli.cli("import", str(source), "--json", "--user",
                                           USER).stdout)
        api_report = api_import(by_api, FILE.encode())
        for key in ("read", "added", "merged", "unchanged", "skipped"):
            assert cli_report[key] == api_report[key], key
        assert api_report["added"] == 2 and api_report["merged"] == 1
        assert book_meaning(by_cli) == book_meaning(by_api)
        # The same file again: nothing changes, and both say "unchanged".
        again_cli = json.loads(by_cli.cli("import", str(source), "--json", "--user",
                                          USER).stdout)
        again_api = api_import(by_api, FILE.encode())
        assert again_api["added"] == again_cli["added"] == 0
        assert again_api["unchanged"] == again_cli["unchanged"] > 0
    finally:
        by_cli.stop()
        by_api.stop()


def test_a_damaged_vcf_is_read_as_vcards_not_as_csv(server: ServerProcess) -> None:
    server.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
    damaged = ("Exported by SomePhone, please keep\r\n" * 60
               + card("d1", "Dee One") + "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cut off\r\n")
    report = api_import(server, damaged.encode())
    assert report["format"] == "vcard" and report["added"] == 1
    assert report["skipped"] == 1 and any("END:VCARD" in p["reason"]
                                          for p in report["problems"])
    assert not any("FN:BEGIN" in text for text in server.served_cards().values())


def test_an_oversized_card_is_reported_not_hidden(tmp_path: Path, store_config: str) -> None:
    server = start_server(tmp_path, extra_config="[server]\nmax_resource_size = 20000\n",
                          store_config=store_config)
    try:
        server.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        big = card("big", "Big Photo", "NOTE:" + "x" * 30000) + card("small", "Small One")
        source = tmp_path / "big.vcf"
        source.write_text(big, newline="")
        result = server.cli("import", str(source), "--json", "--user", USER)
        report = json.loads(result.stdout)
        assert report["added"] == 1 and report["skipped"] == 1
        assert any("max_resource_size" in r for r in report["skipped_reasons"])
        # What is stored is listed: no card on disk that CardDAV would never serve.
        listed = {h.rsplit("/", 1)[-1] for h in server.client().etags()}
        assert listed == {p.name for p in server.book_dir().glob("*.vcf")}
    finally:
        server.stop()
