"""Finding people however their names are typed, and listing them in the order people read.

Against a real ``cardfile serve`` (its book written over CardDAV): the API's
``q`` and ``cardfile search`` ignore case and accents both ways and give the
same answers in the same order (an exact email or phone number first, an
email never matched against phone digits); CardDAV's text-match keeps the
collation the client names; lists sort by the Unicode collation, by first or
last name; the A-Z index and positions (``offset``) agree with cursor paging.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import USER, ServerProcess, run_cli, start_server
from tests.davclient import card
from tests.test_api import BOOK, Api

#: (uid, FN, N as "family;given", extra lines)
PEOPLE = [
    ("zoe-1", "Zoë Müller", "Müller;Zoë", ["EMAIL:zoe@muller.example"]),
    ("zoe-2", "Zoe Muller", "Muller;Zoe", ["TEL;TYPE=CELL:+41 44 123 45 67"]),
    ("jurgen", "Jürgen Klopp", "Klopp;Jürgen", ["EMAIL:jk@lfc.example"]),
    ("edouard", "Édouard Manet", "Manet;Édouard", []),
    ("lukasz", "Łukasz Nowak", "Nowak;Łukasz", []),
    ("zack", "Zack Zimmer", "Zimmer;Zack", []),
    ("ada", "Ada Lovelace", "Lovelace;Ada", ["EMAIL:ada@lovelace.example"]),
    ("eve", "eve adams", "adams;eve", []),
    ("oscar", "Øscar Ørsted", "Ørsted;Øscar", []),
    ("mona", "Mona Lisa", "Lisa;Mona", []),
    ("digits", "4 Seasons Hotel", "", ["ORG:4 Seasons"]),
    # The phone's digits are in the other person's email address: an email
    # search must find only the owner of that address.
    ("phone", "Phil Phone", "Phone;Phil", ["TEL:+49 30 5550123"]),
    ("mail", "Mae Mail", "Mail;Mae", ["EMAIL:x5550123@mail.example"]),
    # Someone whose email merely contains the searched address ranks after its owner.
    ("fan", "Aaron Fanmail", "Fanmail;Aaron", ["EMAIL:fan.ada@lovelace.example.org"]),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("search"), store_config=module_store_config)
    try:
        dav = server.client()
        assert dav.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
        for uid, fn, n, extra in PEOPLE:
            lines = [f"N:{n};;;"] if n else []
            text = card(uid, fn, *extra).replace(
                f"N:{fn.split()[-1]};{fn.split()[0]};;;\r\n", "".join(f"{x}\r\n" for x in lines))
            assert dav.put(f"{uid}.vcf", text)[0] == 201
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(site: ServerProcess) -> Api:
    return Api(site)


def api_uids(api: Api, q: str, sort: str = "name") -> list[str]:
    page = api.ok("GET", f"{BOOK}/contacts?q={quote(q)}&sort={sort}&fields=uid&limit=1000")
    return [item["uid"] for item in page["items"]]


def cli_uids(site: ServerProcess, *terms: str) -> list[str]:
    done = run_cli("search", *terms, "--json", data_dir=site.data_dir, check=False)
    if done.returncode == 1 and not done.stdout.strip():
        return []
    assert done.returncode == 0, done.stderr
    return [item["uid"] for item in json.loads(done.stdout)]


@pytest.mark.parametrize(("q", "expected"), [
    ("Zoe Muller", {"zoe-1", "zoe-2"}),      # the issue: found nothing
    ("Zoë Müller", {"zoe-1", "zoe-2"}),      # the issue: found two; both ways
    ("ZOË", {"zoe-1", "zoe-2"}),
    ("jurgen", {"jurgen"}),                  # the issue: no Jürgen
    ("JÜRGEN", {"jurgen"}),
    ("edouard", {"edouard"}),
    ("lukasz", {"lukasz"}),                  # Ł has no decomposition: folded by table
    ("orsted", {"oscar"}),
    ("EVE ADAMS", {"eve"}),
    ("email:zoe@MULLER.example", {"zoe-1"}),
    ("name:müller", {"zoe-1", "zoe-2"}),
])
def test_search_ignores_case_and_accents_both_ways_in_api_and_cli(
        api: Api, site: ServerProcess, q: str, expected: set[str]) -> None:
    found = api_uids(api, q)
    assert set(found) == expected
    assert cli_uids(site, *q.split()) == found  # the same answers, in the same order


def test_an_email_query_is_never_matched_against_phone_digits(api: Api, site: ServerProcess
                                                              ) -> None:
    assert api_uids(api, "x5550123@mail.example") == ["mail"]
    assert cli_uids(site, "x5550123@mail.example") == ["mail"]
    # A phone number, typed another way, finds the phone (and not the email).
    assert api_uids(api, "030 5550123") == ["phone"]
    assert api_uids(api, "044 123 45 67") == ["zoe-2"]


def test_exact_email_and_phone_matches_come_first(api: Api, site: ServerProcess) -> None:
    # "Aaron Fanmail" sorts before "Ada Lovelace" by name, but Ada has exactly this address.
    assert api_uids(api, "ada@lovelace.example") == ["ada", "fan"]
    assert cli_uids(site, "ada@lovelace.example") == ["ada", "fan"]
    assert api_uids(api, "lovelace.example") == ["fan", "ada"]  # no exact match: by name
    # Ranked pages still page without gaps or repeats.
    page = api.ok("GET", f"{BOOK}/contacts?q=ada%40lovelace.example&limit=1&fields=uid")
    assert [i["uid"] for i in page["items"]] == ["ada"] and page["total"] == 2
    rest = api.ok("GET", page["next"])
    assert [i["uid"] for i in rest["items"]] == ["fan"] and rest["next"] is None


def test_carddav_text_match_keeps_the_collation_the_client_names(site: ServerProcess) -> None:
    """i;unicode-casemap folds case (RFC 4790/5051), not accents; i;octet folds nothing.
    The accent-free matching of the API's search never leaks into CardDAV answers."""
    dav = site.client()

    def uids(text: str, collation: str) -> set[str]:
        found = dav.query(f'<C:prop-filter name="FN"><C:text-match collation="{collation}" '
                          f'match-type="contains">{text}</C:text-match></C:prop-filter>')
        return {e.href.rsplit("/", 1)[1].removesuffix(".vcf") for e in found}

    assert uids("ZOË", "i;unicode-casemap") == {"zoe-1"}
    assert uids("zoe", "i;unicode-casemap") == {"zoe-2"}
    assert uids("jurgen", "i;unicode-casemap") == set()
    assert uids("Jürgen", "i;octet") == {"jurgen"}
    assert uids("jürgen", "i;octet") == set()


def names(api: Api, sort: str) -> list[str]:
    return [i["name"] for i in api.ok("GET", f"{BOOK}/contacts?sort={sort}&fields=name"
                                             "&limit=1000")["items"]]


def test_lists_sort_by_the_unicode_collation_by_first_or_last_name(api: Api) -> None:
    by_name = names(api, "name")
    assert by_name == ["4 Seasons Hotel", "Aaron Fanmail", "Ada Lovelace", "Édouard Manet",
                       "eve adams", "Jürgen Klopp", "Łukasz Nowak", "Mae Mail", "Mona Lisa",
                       "Øscar Ørsted", "Phil Phone", "Zack Zimmer", "Zoe Muller", "Zoë Müller"]
    by_family = names(api, "family")
    assert by_family == ["4 Seasons Hotel", "eve adams", "Aaron Fanmail", "Jürgen Klopp",
                         "Mona Lisa", "Ada Lovelace", "Mae Mail", "Édouard Manet", "Zoe Muller",
                         "Zoë Müller", "Łukasz Nowak", "Øscar Ørsted", "Phil Phone",
                         "Zack Zimmer"]
    assert names(api, "-name") == by_name[::-1]


def test_the_a_to_z_index_and_positions_agree_with_paging(api: Api) -> None:
    for sort in ("name", "family"):
        index = api.ok("GET", f"{BOOK}/letters?sort={sort}")
        letters = {i["letter"]: i for i in index["items"]}
        everyone = names(api, sort)
        assert index["total"] == len(everyone) == sum(i["count"] for i in index["items"])
        for item in index["items"]:
            if not item["count"]:
                continue
            page = api.ok("GET", f"{BOOK}/contacts?sort={sort}&fields=name&limit=100"
                                 f"&offset={item['offset']}")
            assert page["offset"] == item["offset"]
            assert [i["name"] for i in page["items"]] == everyone[item["offset"]:]
        assert letters["#"]["count"] == 1  # "4 Seasons Hotel"
        assert letters["Z"]["count"] == (3 if sort == "name" else 1)
    by_name = {i["letter"]: i["count"] for i in api.ok("GET", f"{BOOK}/letters")["items"]}
    assert by_name["E"] == 2 and by_name["L"] == 1 and by_name["O"] == 1  # Édouard, Łukasz, Ø
    # Filtered: the index of a search.
    found = api.ok("GET", f"{BOOK}/letters?q=muller")
    assert [(i["letter"], i["count"]) for i in found["items"] if i["count"]] == [("Z", 2)]
    # Past the end: an empty page; a cursor and an offset together: 400.
    assert api.ok("GET", f"{BOOK}/contacts?offset=999")["items"] == []
    assert api.call("GET", f"{BOOK}/contacts?offset=1&cursor=x")[0] == 400
    assert api.call("GET", f"{BOOK}/letters?sort=-modified")[0] == 400


def test_offset_paging_covers_the_list_like_cursor_paging(api: Api) -> None:
    cursor_ids = api.all_ids("limit=3&fields=id")
    offset_ids: list[str] = []
    for start in range(0, len(cursor_ids) + 3, 3):
        offset_ids += [i["id"] for i in api.ok(
            "GET", f"{BOOK}/contacts?limit=3&fields=id&offset={start}")["items"]]
    assert offset_ids == cursor_ids


def test_an_index_of_an_older_schema_is_rebuilt_with_a_new_epoch(tmp_path: Path) -> None:
    """Sort keys and folded values are new columns: an older index is dropped and
    rebuilt from the files, and tokens it issued are refused (a new epoch)."""
    from cardfile.plugin.store.index import SCHEMA_VERSION, CardIndex

    path = str(tmp_path / "index.sqlite3")
    index = CardIndex(path)
    coll, _ = index.collection_id("alice/contacts", 1)
    index.put(coll, "a.vcf", card("a", "Zoë Müller"), 10, 1)
    old_epoch = index.sync_state(coll).epoch
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='8' WHERE key='schema'")
    db.commit()
    db.close()
    rebuilt = CardIndex(path)
    coll2, _ = rebuilt.collection_id("alice/contacts", 1)
    assert rebuilt.sync_state(coll2).epoch != old_epoch
    assert rebuilt.rows(coll2) == {}  # refilled from the files by the storage's reconcile
    rebuilt.put(coll2, "a.vcf", card("a", "Zoë Müller"), 10, 1)
    found = rebuilt.page(coll2, 10**6, sort="name", descending=False, limit=5, cursor=None,
                         q="zoe muller")
    assert [r.uid for r in found.rows] == ["a"] and int(SCHEMA_VERSION) >= 9


#: (href, FN): plain, accented, a letter folded by table, a typographic apostrophe.
_FOLD_CARDS = [("zoe-1.vcf", "Zoë Müller"), ("zoe-2.vcf", "Zoe Muller"),
               ("eve.vcf", "eve adams"), ("lukasz.vcf", "Łukasz Nowak"),
               ("obrien.vcf", "Máire O’Brien")]
_FOLD_QUERIES = ["zoe muller", "MÜLLER", "adams", "lukasz", "łukasz", "o'brien", "maire",
                 "name:zoë", "nowak eve"]


def _found(index: object, coll: int) -> dict[str, list[str]]:
    return {q: sorted(r.href for r in index.page(  # type: ignore[attr-defined]
        coll, 10**6, sort="name", descending=False, limit=50, cursor=None, q=q).rows)
        for q in _FOLD_QUERIES}


def test_an_index_of_version_10_is_migrated_in_place_and_finds_the_same(
        tmp_path: Path) -> None:
    """Version 11 keeps a folded value only where it is not the lowercase one
    (nine in ten values are plain ASCII). An index that version 10 wrote (every
    folded value stored, and indexed) is changed in place: same epoch and
    sequence, so the tokens its clients hold stay valid, and search finds what
    it found before and what a fresh index finds."""
    from cardfile.plugin.store.index import SCHEMA_VERSION, CardIndex

    path = str(tmp_path / "index.sqlite3")
    index = CardIndex(path)
    coll, _ = index.collection_id("alice/contacts", 1)
    for number, (href, fn) in enumerate(_FOLD_CARDS):
        index.put(coll, href, card(href[:-4], fn), 10 + number, 1)
    expected = _found(index, coll)
    assert expected["zoe muller"] == ["zoe-1.vcf", "zoe-2.vcf"]
    assert expected["o'brien"] == ["obrien.vcf"] and expected["łukasz"] == ["lukasz.vcf"]
    db = sqlite3.connect(path)
    plain = db.execute("SELECT count(*) FROM props WHERE name='FN' AND fvalue=''").fetchone()
    assert plain == (2,)  # "zoe muller", "eve adams": their lowercase form is the folded one
    # As version 10 wrote it: the folded value of every searched property, all indexed.
    db.execute("UPDATE props SET fvalue = lvalue WHERE fvalue = '' AND name IN "
               "('FN', 'N', 'EMAIL', 'UID', 'TEL', 'NOTE', 'ORG')")
    db.execute("DROP INDEX props_fold")
    db.execute("CREATE INDEX props_fold ON props (name, fvalue, item)")
    db.execute("UPDATE meta SET value='10' WHERE key='schema'")
    db.commit()
    db.close()
    before = index.sync_state(coll)

    migrated = CardIndex(path)
    assert migrated.sync_state(coll) == before  # tokens stay valid: no rebuild
    assert _found(migrated, coll) == expected
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        SCHEMA_VERSION,)
    assert db.execute("SELECT count(*) FROM props WHERE name='FN' AND fvalue=''"
                      ).fetchone() == plain
    fold_index = db.execute("SELECT sql FROM sqlite_master WHERE name='props_fold'"
                            ).fetchone()[0]
    assert "WHERE fvalue != ''" in fold_index
    db.close()


def test_every_ascii_pair_collates_as_its_characters(tmp_path: Path) -> None:
    """The sort key's shortcut (an ASCII word's elements are its characters') holds:
    DUCET has no contraction among ASCII characters."""
    import pyuca

    from cardfile.plugin.store import collation

    uca = pyuca.Collator()
    chars = [chr(i) for i in range(32, 127)]
    for a in chars:
        for b in chars:
            assert (uca.collation_elements(a + b)
                    == uca.collation_elements(a) + uca.collation_elements(b)), a + b
    words = ["Zoë", "Zoe", "Łukasz", "Lars", "Mona", "O'Brien", "Anne-Marie", "anne", "李"]
    by_pyuca = sorted(words, key=uca.sort_key)
    assert sorted(words, key=collation.sort_key) == by_pyuca
