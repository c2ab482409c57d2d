"""Real clients against the real server.

- vdirsyncer syncs every card of Cardfile's fixtures (tests/data) and of the
  shared corpus (where present) up to the server and down
  into a second folder; nothing a card says may get lost on the way, and
  edits and deletions made in the downloaded folder travel back.
- khard reads the server's data folder directly, as a user who points their
  address book tool at it would.
- A card dropped into the data folder by hand (or edited, or removed there)
  is seen by queries, incremental sync and GET.
- The REPORT answers clients fetch cards with stay well-formed XML for every
  corpus card (vdirsyncer itself would hide a broken one).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import os
import quopri
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    CORPUS,
    EDITS_THE_FOLDER,
    FIXTURE_FILES,
    FIXTURES,
    PASSWORD,
    USER,
    ServerProcess,
    requires_corpus,
)
from tests.davclient import DavClient, card, parse_multistatus

pytestmark = pytest.mark.slow  # measured: see README "Set up a fresh machine"

# -- reading the corpus --------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_contact_file(raw: bytes) -> str:
    """Text of a contact file: BOM first, then UTF-16 without BOM, UTF-8, cp1252."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom):].decode(encoding)
    if len(raw) >= 2 and raw[0] == 0 and raw[1] != 0:
        return raw.decode("utf-16-be")
    if len(raw) >= 2 and raw[0] != 0 and raw[1] == 0:
        return raw.decode("utf-16-le")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def crlf(text: str) -> str:
    """Line ends as CRLF (LF, CRLF and CR CR LF alike); a CR inside a line is data."""
    return re.sub(r"\r*\n", "\r\n", text)


def split_cards(text: str) -> list[str]:
    """The complete ``BEGIN:VCARD``...``END:VCARD`` blocks of a file, CRLF-terminated."""
    cards: list[str] = []
    current: list[str] | None = None
    depth = 0
    for line in text.split("\r\n"):
        word = line.strip().upper()
        if word == "BEGIN:VCARD":
            depth += 1
            if depth == 1:
                current = []
        if current is not None:
            current.append(line)
        if word == "END:VCARD" and depth:
            depth -= 1
            if depth == 0 and current is not None:
                cards.append("\r\n".join(current) + "\r\n")
                current = None
    return cards  # a block left open at the end of the file is no card


@dataclass(frozen=True)
class Prop:
    name: str  # upper case, with group: ITEM1.EMAIL
    params: tuple[tuple[str, tuple[str, ...]], ...]  # (NAME, values) as written
    value: str  # as written, unfolded (QP soft line breaks joined)


class CardSyntaxError(ValueError):
    pass


_QP = re.compile(r"QUOTED-PRINTABLE", re.IGNORECASE)


def _header_end(line: str) -> int:
    """Index of the colon that ends name and parameters (quotes respected)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return i
    return -1


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def content_lines(text: str) -> list[str]:
    """Unfold: leading space/tab continues a line; a QP value ending in ``=`` too."""
    lines: list[str] = []
    for physical in text.replace("\r\n", "\n").split("\n"):
        if lines and physical[:1] in (" ", "\t"):
            lines[-1] += physical[1:]
        elif (lines and lines[-1].endswith("=") and _header_end(lines[-1]) > 0
              and _QP.search(lines[-1][:_header_end(lines[-1])])):
            lines[-1] = lines[-1][:-1] + physical
        elif physical.strip():
            lines.append(physical)
    return lines


def parse_card(text: str) -> list[Prop]:
    """A tolerant vCard 2.1/3.0/4.0 reader that keeps every property as written."""
    props = []
    for line in content_lines(text):
        end = _header_end(line)
        if end <= 0:
            raise CardSyntaxError(f"no property name and colon in {line[:60]!r}")
        head, value = line[:end], line[end + 1:]
        name, *raw_params = _split_outside_quotes(head, ";")
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)?", name):
            raise CardSyntaxError(f"bad property name {name!r}")
        params = []
        for raw in raw_params:
            key, eq, val = raw.partition("=")
            if not eq:  # vCard 2.1 bare parameter: TEL;CELL
                key, val = _bare_parameter_key(raw), raw
            values = tuple(v.strip('"') for v in _split_outside_quotes(val, ","))
            params.append((key.strip().upper(), values))
        props.append(Prop(name.upper(), tuple(params), value))
    if not props or props[0].name != "BEGIN" or props[-1].name != "END":
        raise CardSyntaxError("not one BEGIN:VCARD ... END:VCARD block")
    return props


def _bare_parameter_key(value: str) -> str:
    upper = value.upper()
    if upper in ("BASE64", "B", "QUOTED-PRINTABLE", "8BIT", "7BIT"):
        return "ENCODING"
    if upper in ("URL", "URI", "INLINE", "CONTENT-ID", "CID"):
        return "VALUE"
    return "TYPE"


def uid_of(props: list[Prop]) -> str | None:
    for prop in props:
        if prop.name == "UID":
            return prop.value
    return None


@dataclass
class CorpusCard:
    source: str  # corpus file and card number, for messages
    text: str  # CRLF, with a UID
    uid: str


#: Where the cards come from: Cardfile's own fixtures always, the shared corpus where present.
SOURCES = [pytest.param("fixtures"), pytest.param("corpus", marks=[requires_corpus,
                                                                  pytest.mark.slow])]
_MIN_CARDS = {"fixtures": 15, "corpus": 60}


def corpus_cards(source: str = "corpus") -> list[CorpusCard]:
    """Every parseable card of the source's vCard files, one UID each."""
    root = FIXTURES if source == "fixtures" else CORPUS
    files = [p for p in FIXTURE_FILES if p.suffix == ".vcf"] if source == "fixtures" else (
        sorted((CORPUS / "vcard").rglob("*.vcf")) + sorted((CORPUS / "thunderbird").glob("*.vcf")))
    cards = []
    for path in files:
        if path.name == "unparsable.vcf":
            continue
        rel = path.relative_to(root).as_posix()
        for number, text in enumerate(split_cards(crlf(decode_contact_file(path.read_bytes())))):
            try:
                props = parse_card(text)
            except CardSyntaxError:
                continue
            if any(p.name.rsplit(".", 1)[-1] in ("KIND", "X-ADDRESSBOOKSERVER-KIND")
                   and p.value.strip().lower() == "group" for p in props):
                continue  # becomes CATEGORIES of its members (DESIGN 4, test_categories.py)
            uid = uid_of(props)
            if uid is None:
                digest = hashlib.sha256(f"{rel}#{number}".encode()).hexdigest()[:20]
                uid = f"corpus-{digest}"
                text = re.sub(r"(?im)^END:VCARD\r\n\Z", f"UID:{uid}\r\nEND:VCARD\r\n", text)
            if not any(p.name == "VERSION" for p in props):
                # CardDAV needs VERSION (the server refuses a card without, as stock
                # Radicale does); only an import repairs that (tests/test_import.py).
                text = re.sub(r"(?i)^BEGIN:VCARD\r\n", "BEGIN:VCARD\r\nVERSION:3.0\r\n", text)
            if not any(p.name == "FN" for p in props) and not re.search(
                    r"(?im)^VERSION:\s*2\.1\s*$", text):
                # vCard 3.0 and 4.0 require FN (the server refuses a card without
                # one, as stock Radicale does); a user's client would add one too.
                text = re.sub(r"(?im)^END:VCARD\r\n\Z", f"FN:{uid}\r\nEND:VCARD\r\n", text)
            cards.append(CorpusCard(f"{rel} card {number + 1}", text, uid))
    return cards


# -- comparing cards by meaning ------------------------------------------------

_BINARY_PROPS = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
_STRUCTURED = {"N": True, "ADR": True, "ORG": False, "GENDER": False, "CLIENTPIDMAP": False}
_LISTS = frozenset({"CATEGORIES", "NICKNAME"})
_ESCAPES = {"n": "\n", "N": "\n"}
_DATA_URI = re.compile(r"data:([^,]*?)(;base64)?,(.*)", re.IGNORECASE | re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]{64,}={0,2}\s*")


def _split_unescaped(value: str, sep: str) -> list[str]:
    parts, buf, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            buf.append(value[i:i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def unescape(value: str) -> str:
    text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value,
                  flags=re.DOTALL)
    # Control characters (a QP ``=0C``) mean nothing a CardDAV client could receive:
    # vCard 3/4 text cannot hold them and XML 1.0 cannot carry them.
    return _CONTROL.sub("", re.sub(r"\r\n|\r", "\n", text))


def _param(prop: Prop, key: str) -> list[str]:
    return [v for k, values in prop.params if k == key for v in values]


def _decoded_text(prop: Prop) -> str:
    """The value as text, quoted-printable and charset undone."""
    encodings = {v.upper() for v in _param(prop, "ENCODING")}
    if "QUOTED-PRINTABLE" not in encodings:
        return prop.value
    raw = quopri.decodestring(prop.value.encode("latin-1", errors="replace"))
    charset = (_param(prop, "CHARSET") or [""])[0]
    try:
        # A stray byte in a value that declares its charset is one bad character.
        return raw.decode(charset, errors="replace") if charset else raw.decode("utf-8")
    except LookupError:
        pass
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _binary(prop: Prop) -> bytes | None:
    """Decoded content of an inline PHOTO/LOGO/SOUND/KEY (base64 or data: URI)."""
    encodings = {v.upper() for v in _param(prop, "ENCODING")}
    value = prop.value
    try:
        if encodings & {"B", "BASE64"}:
            return base64.b64decode(re.sub(r"\s+", "", value))
        match = _DATA_URI.fullmatch(unescape(value))
        if match:
            data = match.group(3)
            if match.group(2):
                return base64.b64decode(re.sub(r"\s+", "", data))
            return data.encode()
        if _BASE64.fullmatch(value):
            return base64.b64decode(re.sub(r"\s+", "", value))
    except binascii.Error:
        return None
    return None


def _strip_trailing_empty(parts: list) -> tuple:
    while len(parts) > 1 and parts[-1] in ("", ("",)):
        parts.pop()
    return tuple(parts)


def meaning(prop: Prop) -> object:
    """What a property says, independent of how it is spelled."""
    base_name = prop.name.rsplit(".", 1)[-1]
    if base_name in _BINARY_PROPS:
        data = _binary(prop)
        if data is not None:
            return ("binary", hashlib.sha256(data).hexdigest(), len(data))
    value = _decoded_text(prop)
    if base_name in _STRUCTURED:
        comma_lists = _STRUCTURED[base_name]
        parts: list = []
        for component in _split_unescaped(value, ";"):
            if comma_lists:
                parts.append(tuple(unescape(v) for v in _split_unescaped(component, ",")))
            else:
                parts.append(unescape(component))
        return _strip_trailing_empty(parts)
    if base_name in _LISTS:
        return tuple(unescape(v) for v in _split_unescaped(value, ","))
    return unescape(value)


_SPELLING_PARAMS = frozenset({"ENCODING", "CHARSET"})  # how a value is written, not what
_CASELESS_PARAMS = frozenset({"TYPE", "VALUE"})


def param_meaning(prop: Prop) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Parameters as a set per name: ``TEL;CELL;VOICE`` == ``TEL;TYPE=cell,voice``."""
    merged: dict[str, set[str]] = {}
    for key, values in prop.params:
        if key in _SPELLING_PARAMS:
            continue
        merged.setdefault(key, set()).update(
            v.upper() if key in _CASELESS_PARAMS else v for v in values if v)
    return tuple(sorted((k, tuple(sorted(v))) for k, v in merged.items() if v))


def card_meaning(props: list[Prop]) -> Counter:
    return Counter((p.name, meaning(p), param_meaning(p)) for p in props
                   if p.name not in ("BEGIN", "END"))


def describe(counter: Counter) -> str:
    return "\n".join(f"    {n} x {name} {params} {value!r:.160}"
                     for (name, value, params), n in sorted(counter.items(), key=repr))


def meaning_changes(before: list[Prop], after: list[Prop]) -> str:
    """'' if both say the same, else what was lost and what appeared instead."""
    old, new = card_meaning(before), card_meaning(after)
    if old == new:
        return ""
    return f"  lost:\n{describe(old - new)}\n  instead:\n{describe(new - old)}"


def test_the_comparison_sees_the_losses_design_section_5_names() -> None:
    """The round trip below is only as strict as this comparison: check it first."""
    def same(a: str, b: str) -> bool:
        wrap = "BEGIN:VCARD\r\nVERSION:3.0\r\n{}\r\nEND:VCARD\r\n"
        return not meaning_changes(parse_card(wrap.format(a)), parse_card(wrap.format(b)))

    photo = base64.b64encode(bytes(range(256))).decode()
    assert same("NOTE:Met in Berlin, 2019", "NOTE:Met in Berlin\\, 2019")
    assert not same("NOTE:Met in Berlin, 2019", "NOTE:Met in Berlin")
    assert same("TEL;CELL:1", "TEL;TYPE=cell:1")
    assert not same("TEL;CELL:1", "TEL:1")
    assert same("URL:http\\://x.org", "URL:http://x.org")
    assert same(f"PHOTO:data:image/png;base64,{photo}", f"PHOTO;ENCODING=b:{photo}")
    assert not same(f"PHOTO:data:image/png;base64,{photo}", "PHOTO:data:image/png;base64")
    assert same("N:Doe;John", "N:Doe;John;;;")
    assert not same("CATEGORIES:a,b", "CATEGORIES:a\\,b")
    assert same("NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:=C3=91=0D=0Ax", "NOTE:\u00d1\\nx")
    assert not same("ITEM1.EMAIL:a@b.c", "EMAIL:a@b.c")


# -- talking to the server and running the clients ---------------------------------


def server_cards(dav: DavClient) -> dict[str, tuple[str, str, str]]:
    """UID -> (href, etag, text) of every card on the server, each read by GET."""
    result = {}
    for href in sorted(dav.etags()):
        status, headers, text = dav.request("GET", href)
        assert status == 200, (href, status, text)
        uid = uid_of(parse_card(text))
        assert uid, f"{href} has no UID:\n{text}"
        assert uid not in result, f"UID {uid} is on the server twice"
        result[uid] = (href, headers.get("etag", ""), text)
    return result


def run_tool(*args: str, cwd: Path, stdin: str = "", timeout: int = 300
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def vdirsyncer(config: Path, *args: str, server: ServerProcess
               ) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("vdirsyncer")
    assert exe, "vdirsyncer is not installed"
    # "y" answers any "create this collection?" question discover might ask.
    result = run_tool(exe, "-c", str(config), *args, cwd=config.parent, stdin="y\n" * 10)
    assert result.returncode == 0, (
        f"vdirsyncer {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}\n"
        f"server log:\n{server.log()[-3000:]}")
    return result


def vdirsyncer_config(tmp_path: Path, server: ServerProcess) -> Path:
    """Pair "up": vdir "up" <-> the server; pair "down": the server <-> vdir "down"."""
    carddav = (f'type = "carddav"\nurl = "{server.url}/{USER}/contacts/"\n'
               f'username = "{USER}"\npassword = "{PASSWORD}"\n')
    config = tmp_path / "vdirsyncer.conf"
    config.write_text(
        f'[general]\nstatus_path = "{tmp_path / "vdirsyncer-status"}/"\n\n'
        '[pair up]\na = "up_local"\nb = "up_server"\ncollections = null\n\n'
        f'[storage up_local]\ntype = "filesystem"\npath = "{tmp_path / "up"}/"\n'
        'fileext = ".vcf"\n\n'
        f"[storage up_server]\n{carddav}\n"
        '[pair down]\na = "down_server"\nb = "down_local"\ncollections = null\n\n'
        f"[storage down_server]\n{carddav}\n"
        f'[storage down_local]\ntype = "filesystem"\npath = "{tmp_path / "down"}/"\n'
        'fileext = ".vcf"\n')
    return config


def read_vdir(folder: Path) -> dict[str, tuple[Path, list[Prop]]]:
    """UID -> (file, properties) of every card file in a vdir."""
    cards = {}
    for path in sorted(folder.glob("*.vcf")):
        props = parse_card(decode_contact_file(path.read_bytes()))
        uid = uid_of(props)
        assert uid, f"{path.name} has no UID"
        assert uid not in cards, f"UID {uid} twice in {folder.name}"
        cards[uid] = (path, props)
    return cards


@dataclass
class Synced:
    cards: list[CorpusCard]
    up: Path
    down: Path
    config: Path


def sync_corpus_up_and_down(tmp_path: Path, server: ServerProcess,
                            source: str = "corpus") -> Synced:
    """The source's cards as a vdir, synced up to the server, then down into an empty vdir."""
    cards = corpus_cards(source)
    assert len(cards) >= _MIN_CARDS[source], f"{source} yielded only {len(cards)} cards"
    assert len({c.uid for c in cards}) == len(cards), "corpus UIDs must be distinct"
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    down.mkdir()
    for number, c in enumerate(cards):
        stem = re.sub(r"[^A-Za-z0-9]+", "-", c.source).strip("-")
        (up / f"{number:03d}-{stem}.vcf").write_bytes(c.text.encode("utf-8"))
    config = vdirsyncer_config(tmp_path, server)
    vdirsyncer(config, "discover", "up", server=server)
    vdirsyncer(config, "sync", "up", server=server)
    vdirsyncer(config, "discover", "down", server=server)
    vdirsyncer(config, "sync", "down", server=server)
    return Synced(cards, up, down, config)


# -- 1. vdirsyncer ----------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_vdirsyncer_round_trip_keeps_every_card_and_property(
        tmp_path: Path, server: ServerProcess, dav: DavClient, source: str) -> None:
    synced = sync_corpus_up_and_down(tmp_path, server, source)
    uids = sorted(c.uid for c in synced.cards)
    assert sorted(server_cards(dav)) == uids
    uploaded, downloaded = read_vdir(synced.up), read_vdir(synced.down)
    assert len(downloaded) == len(synced.cards)
    assert sorted(downloaded) == uids

    changed, compared = [], 0
    for c in synced.cards:
        before, after = uploaded[c.uid][1], downloaded[c.uid][1]
        compared += len(before) - 2  # BEGIN and END are not properties
        change = meaning_changes(before, after)
        if change:
            changed.append(f"{c.source} (UID {c.uid}):\n{change}")
    print(f"\nvdirsyncer round trip: {len(synced.cards)} cards, {compared} properties "
          f"compared, {len(changed)} card(s) changed")
    assert not changed, "cards changed on the way up and down again:\n" + "\n".join(changed)


def _simple_fn_card(downloaded: dict[str, tuple[Path, list[Prop]]]) -> str:
    """UID of a card whose FN is one plain, unfolded line (easy to edit by hand)."""
    for uid, (path, _) in sorted(downloaded.items()):
        if re.search(r"(?m)^FN:[ -~]+\r?\n(?![ \t])", path.read_text("utf-8")):
            return uid
    raise AssertionError("no card with a plain FN line was downloaded")


@pytest.mark.parametrize("source", SOURCES)
def test_vdirsyncer_brings_edits_and_deletions_in_the_vdir_back(
        tmp_path: Path, server: ServerProcess, dav: DavClient, source: str) -> None:
    synced = sync_corpus_up_and_down(tmp_path, server, source)
    downloaded = read_vdir(synced.down)
    before = server_cards(dav)

    uid = _simple_fn_card(downloaded)
    path = downloaded[uid][0]
    text = path.read_text("utf-8")
    edited = re.sub(r"(?m)^FN:[^\r\n]*", "FN:Edited In The Vdir", text, count=1)
    path.write_bytes(edited.encode("utf-8"))
    vdirsyncer(synced.config, "sync", "down", server=server)
    href, old_etag = before[uid][:2]
    status, headers, body = dav.request("GET", href)
    assert status == 200, body
    # Stored as vdirsyncer sent it, its line ends included.
    assert "FN:Edited In The Vdir\n" in body.replace("\r\n", "\n"), body
    assert headers.get("etag") != old_etag
    assert not meaning_changes(parse_card(edited), parse_card(body)), body

    victim = next(u for u in sorted(downloaded) if u != uid)
    victim_href = before[victim][0]
    downloaded[victim][0].unlink()
    vdirsyncer(synced.config, "sync", "down", server=server)
    assert dav.request("GET", victim_href)[0] == 404
    after = server_cards(dav)
    assert sorted(after) == sorted(set(before) - {victim})
    assert "FN:Edited In The Vdir\n" in after[uid][2].replace("\r\n", "\n")


@pytest.mark.parametrize("source", SOURCES)
def test_corpus_cards_come_back_in_well_formed_reports(server: ServerProcess,
                                                       dav: DavClient, source: str) -> None:
    """What vdirsyncer does to fetch cards (multiget, query), checked with a strict parser.

    vdirsyncer quietly strips characters XML cannot carry before parsing, so a
    broken REPORT answer would not show as a sync failure there; other clients
    (and Python's own parser) reject the whole answer, every card in it.
    """
    gets = {}
    for number, c in enumerate(corpus_cards(source)):
        name = f"corpus-{number:03d}.vcf"
        status, _, body = dav.put(name, c.text)
        assert status == 201, f"{c.source}: {status} {body}"
        gets[dav.book + name] = (c.source, dav.get(name)[2])
    refs = "".join(f"<D:href>{h}</D:href>" for h in sorted(gets))
    body = (f'<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
            f'</D:prop>{refs}</C:addressbook-multiget>')
    status, text = dav.report(body)
    assert status == 207, text
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if _not_xml_char(ch)})
    culprits = [source for source, card_text in gets.values()
                if any(_not_xml_char(ch) for ch in card_text)]
    assert not bad, (f"the multiget answer holds characters XML 1.0 forbids ({bad}), so it "
                     f"is not well-formed; they come from the stored cards of {culprits}")
    entries = parse_multistatus(text)[1]
    assert {e.href for e in entries} == set(gets)
    for e in entries:
        # An XML parser reads CR LF as LF (XML 1.0, 2.11): compare with that in mind.
        assert e.status == 200 and e.data == gets[e.href][1].replace("\r\n", "\n"), (
            f"{gets[e.href][0]}: multiget and GET differ")


def _not_xml_char(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in "\t\n\r") or 0xD800 <= code <= 0xDFFF or code in (
        0xFFFE, 0xFFFF)


# -- 2. khard ---------------------------------------------------------------------

KHARD_CARDS = {
    "ada.vcf": card("khard-ada", "Ada Lovelace", "EMAIL;TYPE=home:ada@example.org",
                    "TEL;TYPE=cell:+44 20 7946 0000"),
    "grace.vcf": card("khard-grace", "Grace Hopper", "ORG:US Navy",
                      "NOTE:Found a moth\\, taped it in the log"),
    "jose.vcf": card("khard-jose", "José Muñoz", "EMAIL:jose@example.org", version="4.0"),
}


def khard(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("khard")
    assert exe, "khard is not installed"
    result = run_tool(exe, "-c", str(config), *args, cwd=config.parent, timeout=120)
    assert result.returncode == 0, (
        f"khard {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def test_khard_reads_the_data_folder(tmp_path: Path, server: ServerProcess,
                                     dav: DavClient) -> None:
    for name, text in KHARD_CARDS.items():
        status, _, body = dav.put(name, text, if_none_match="*")
        assert status == 201, body
    # An update too, so that whatever the server keeps beside the cards exists.
    status, _, body = dav.put("ada.vcf", KHARD_CARDS["ada.vcf"].replace("0000", "0001"))
    assert status in (200, 201, 204), body
    dav.sync()
    dav.query('<C:prop-filter name="FN"><C:text-match>Ada</C:text-match></C:prop-filter>')
    book = server.book_dir()
    config = tmp_path / "khard.conf"
    config.write_text(f"[addressbooks]\n[[cardfile]]\npath = {book}\n\n"
                      "[vcard]\nskip_unparsable = no\n")

    listing = khard(config, "list", "--parsable")
    rows = [line.split("\t") for line in listing.stdout.splitlines() if line.strip()]
    assert sorted(row[0] for row in rows) == ["khard-ada", "khard-grace", "khard-jose"], (
        f"{listing.stdout}\nfolder holds: {sorted(p.name for p in book.iterdir())}")
    for fn in ("Ada Lovelace", "Grace Hopper", "José Muñoz"):
        assert any(fn in row for row in rows), listing.stdout
    assert "unparsable" not in listing.stderr.lower(), listing.stderr

    shown = khard(config, "show", "--format", "vcard", "uid:khard-grace")
    assert not meaning_changes(parse_card(KHARD_CARDS["grace.vcf"]),
                               parse_card(crlf(shown.stdout))), shown.stdout
    by_name = khard(config, "show", "--format", "vcard", "Muñoz")
    assert not meaning_changes(parse_card(KHARD_CARDS["jose.vcf"]),
                               parse_card(crlf(by_name.stdout))), by_name.stdout
    updated = khard(config, "show", "--format", "vcard", "uid:khard-ada")
    assert "TEL;TYPE=cell:+44 20 7946 0001" in updated.stdout, updated.stdout


# -- 3. a card written into the data folder by hand ---------------------------------


def _names(entries: list) -> list[tuple[str, int]]:
    return sorted((e.href.rsplit("/", 1)[-1], e.status) for e in entries)


# A person edits files seconds apart, not within one tick of the file system's
# clock (a few ms), which is the finest change a folder's mtime can show.
HUMAN_PAUSE = 0.05


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_card_written_into_the_folder_by_hand(server: ServerProcess, dav: DavClient) -> None:
    status, _, body = dav.put("before.vcf", card("hand-before", "Before Hand"))
    assert status == 201, body
    status, token, _ = dav.sync()
    assert status == 207 and token

    time.sleep(HUMAN_PAUSE)
    path = server.book_dir() / "by-hand.vcf"
    path.write_bytes(card("hand-made", "Zebediah Handwritten",
                          "EMAIL:zeb@example.org").encode("utf-8"))

    found = dav.query('<C:prop-filter name="FN"><C:text-match collation="i;unicode-casemap" '
                      'match-type="contains">zebediah</C:text-match></C:prop-filter>')
    assert _names(found) == [("by-hand.vcf", 200)], found
    assert found[0].data and "UID:hand-made" in found[0].data

    status, token2, entries = dav.sync(token)
    assert status == 207
    assert _names(entries) == [("by-hand.vcf", 200)]
    first_etag = entries[0].etag
    status, headers, body = dav.get("by-hand.vcf")
    assert status == 200 and "FN:Zebediah Handwritten\r\n" in body, body
    assert first_etag and headers.get("etag") == first_etag

    # Edited in place, as a text editor does: same name, new (longer) content.
    time.sleep(HUMAN_PAUSE)
    path.write_bytes(card("hand-made", "Zebediah Rewritten", "EMAIL:zeb@example.org",
                          "NOTE:edited with a text editor").encode("utf-8"))
    status, headers, body = dav.get("by-hand.vcf")
    assert status == 200
    assert "FN:Zebediah Rewritten\r\n" in body and "NOTE:edited with a text editor" in body, (
        body)
    assert headers.get("etag") and headers["etag"] != first_etag
    status, token3, entries = dav.sync(token2)
    assert status == 207
    assert _names(entries) == [("by-hand.vcf", 200)]
    assert entries[0].etag == headers["etag"]

    # Removed by hand: the next incremental sync reports it as gone.
    time.sleep(HUMAN_PAUSE)
    os.remove(path)
    status, _, entries = dav.sync(token3)
    assert status == 207
    assert _names(entries) == [("by-hand.vcf", 404)]
    assert dav.get("by-hand.vcf")[0] == 404
    assert [h.rsplit("/", 1)[-1] for h in dav.etags()] == ["before.vcf"]
