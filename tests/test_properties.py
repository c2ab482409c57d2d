"""Property tests: generated vCards survive PUT -> GET in meaning, and no importer
crashes on random or mutated input.

Examples per property: ``CARDFILE_HYPOTHESIS_EXAMPLES`` (default 50). One
server serves the whole module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardfile.plugin.contacts import importers
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import card_fields
from tests.conftest import CORPUS, FIXTURE_FILES, USER, ServerProcess, start_server
from tests.davclient import DavClient

EXAMPLES = int(os.environ.get("CARDFILE_HYPOTHESIS_EXAMPLES", "50"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory,
           module_store_config: str) -> Iterator[DavClient]:
    server: ServerProcess = start_server(tmp_path_factory.mktemp("properties"),
                                         store_config=module_store_config)
    try:
        c = server.client()
        assert c.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
        yield c
    finally:
        server.stop()


# Text a person might type: punctuation vCard must escape, any script, emoji, newlines.
_TEXT = st.text(
    alphabet=st.one_of(st.sampled_from(list(",;:\\\"'\n\t ")),
                       # (U+FFFE/U+FFFF: noncharacters XML cannot carry; a PUT
                       # removes them, as it does control characters, and says so.)
                       st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                     blacklist_characters="\x85\ufffe\uffff")),
    min_size=1, max_size=40).filter(lambda s: s.strip() != "")
_WORD = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd")),
                min_size=1, max_size=12)


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
            .replace("\n", "\\n"))


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, dict[str, list[str]]]:
    """A vCard 3.0 text and the meaning it must keep (property -> values)."""
    given_name, family = draw(_WORD), draw(_WORD)
    note = draw(_TEXT)
    org = draw(_TEXT)
    emails = draw(st.lists(st.tuples(_WORD, st.sampled_from(["example.com", "例え.jp"])),
                           min_size=0, max_size=4, unique=True))
    phones = draw(st.lists(st.integers(1000000, 99999999999), max_size=3, unique=True))
    categories = draw(st.lists(_TEXT.map(lambda s: s.strip()).filter(bool), max_size=3,
                               unique=True))
    uid = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    fn = f"{given_name} {family}"
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{_escape(fn)}",
             f"N:{_escape(family)};{_escape(given_name)};;;", f"NOTE:{_escape(note)}",
             f"ORG:{_escape(org)}"]
    lines += [f"EMAIL;TYPE=INTERNET:{local}@{domain}" for local, domain in emails]
    lines += [f"TEL;TYPE=CELL:+{number}" for number in phones]
    if categories:
        lines.append("CATEGORIES:" + ",".join(_escape(c) for c in categories))
    lines.append("END:VCARD")
    meaning = {"FN": [fn], "NOTE": [note], "ORG": [" ".join(p.strip() for p in [org]
                                                             if p.strip())],
               "EMAIL": sorted(f"{loc}@{dom}" for loc, dom in emails),
               "TEL": sorted(f"+{n}" for n in phones), "CATEGORIES": sorted(categories),
               "UID": [uid]}
    return "\r\n".join(lines) + "\r\n", meaning


def meaning_of(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in card_fields.parse_lines(text):
        if line.name in ("FN", "NOTE", "ORG", "EMAIL", "TEL", "CATEGORIES", "UID"):
            found.setdefault(line.name, []).extend(card_fields.text_values(line))
    for name in ("EMAIL", "TEL", "CATEGORIES"):
        found[name] = sorted(found.get(name, []))
    return found


@SETTINGS
@given(generated=cards())
def test_put_then_get_keeps_the_meaning(client: DavClient,
                                        generated: tuple[str, dict[str, list[str]]]) -> None:
    text, expected = generated
    assert meaning_of(text) == expected  # the generator and the parser agree
    name = f"{expected['UID'][0]}.vcf"
    status, _, body = client.put(name, text)
    assert status in (201, 204), body
    status, _, stored = client.get(name)
    assert status == 200
    assert meaning_of(stored) == expected
    assert client.delete(name) in (200, 204)


# -- importers ----------------------------------------------------------------------
def _corpus_files() -> list[bytes]:
    """Files to mutate: Cardfile's own fixtures, and the shared corpus where it is present."""
    files = [p.read_bytes() for p in [*FIXTURE_FILES, *sorted(CORPUS.rglob("*"))]
             if p.is_file() and p.suffix.lower() in (".vcf", ".csv", ".ldif", ".json", ".txt")
             and p.stat().st_size < 200_000]
    assert len(files) >= len(FIXTURE_FILES)
    return files


CORPUS_FILES = _corpus_files()


def _import_never_crashes(data: bytes, fmt: str) -> None:
    try:
        parsed = importers.read(data, "fuzz.bin", fmt)
    except Refused as e:
        assert str(e)  # a reason the user can read
        return
    assert isinstance(parsed.cards, list) and isinstance(parsed.problems, list)
    for problem in parsed.problems:
        assert str(problem)


@SETTINGS
@given(data=st.binary(max_size=3000), fmt=st.sampled_from(importers.FORMATS))
def test_importers_survive_random_bytes(data: bytes, fmt: str) -> None:
    _import_never_crashes(data, fmt)


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS_FILES)))
    for _ in range(draw(st.integers(1, 12))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 50))]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b",", b";", b"\"", b"\r\n", b"\x00", b":",
                                                b"=", b"\xff\xfe", b"BEGIN:VCARD\r\n",
                                                b"END:VCARD\r\n", b"dn: x\n", b"{", b"]"]))
        elif action == "truncate":
            del data[at:]
        else:
            data[at:at] = data[max(0, at - 200):at]
    return bytes(data)


@SETTINGS
@given(data=mutated_corpus(), fmt=st.sampled_from(importers.FORMATS))
def test_importers_survive_mutated_corpus_files(data: bytes, fmt: str) -> None:
    _import_never_crashes(data, fmt)


def test_every_corpus_file_imports_or_reports(tmp_path: Path) -> None:
    for data in CORPUS_FILES:
        _import_never_crashes(data, "auto")


# Content lines as files hold them: groups, parameters (bare, quoted, repeated), odd names.
_LINE_PART = st.sampled_from(["FN", "EMAIL", "tel", "item1.", "X-A.B", ";", ";TYPE=work",
                              ";type=\"a;b:c\"", ";CELL", "=", ".", ",", '"', " ", "é", "Ω",
                              "value", "a:b", "\\;", "\\,"])


@SETTINGS
@given(head=st.lists(_LINE_PART, min_size=1, max_size=6).map("".join),
       value=st.lists(_LINE_PART, max_size=5).map("".join))
def test_a_line_without_quotes_is_read_as_the_careful_path_reads_it(head: str,
                                                                     value: str) -> None:
    """``parse_line`` reads a line with no quote by plain splits, and one with no group
    or parameter (``NAME:value``, most of a rebuild's million) without even those;
    either must read it as the character-by-character path does."""
    line = f"{head}:{value}"
    if '"' in line[:line.find(":")]:
        return  # (the careful path's own case)
    assert card_fields.parse_line(line) == card_fields._parse_quoted_line(line)
