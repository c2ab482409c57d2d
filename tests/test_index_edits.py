"""A card edited again and again has the index rows of the same card indexed afresh.

The index writes only what an edit changed (the columns and the values that
differ, ``CardIndex._put``), not the card's rows anew. What a search, a sort or
a category list reads must not tell the two apart: after edits that add,
remove, repeat and reorder values, rename, move a card between categories and
turn it into a group card and back, every row equals that of an index built
from the same files by a first read.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

from cardfile.plugin.contacts.storage import read_card_record
from cardfile.plugin.store.index import CardIndex
from cardfile.plugin.vcard import card_fields

BOOK = "alice/contacts"

#: Lines a card may hold; some repeat on purpose (a value twice is two rows).
LINES = [
    "EMAIL;TYPE=work:Ann@Example.org", "EMAIL;TYPE=home:ann@example.org",
    "EMAIL:second@example.net", "TEL;TYPE=cell:+1 555 0100", "TEL:(555) 0100",
    "CATEGORIES:Family,Friends", "CATEGORIES:Work", "CATEGORIES:family",
    "NOTE:Zoë's note", "ORG:Ünïcode Ltd", "NICKNAME:Annie", "ADR:;;1 Main St;Town;;;",
    "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:member-1",
]
NAMES = ["Ann Archer", "Zoë Zürich", "Bob Brown", "ann archer", "Émile Zola"]


def _card(uid: str, fn: str, lines: list[str], group: bool) -> str:
    kind = "X-ADDRESSBOOKSERVER-KIND:group\r\n" if group else ""
    body = "".join(line + "\r\n" for line in lines)
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n"
            f"N:{fn.split()[-1]};{fn.split()[0]};;;\r\n{kind}{body}END:VCARD\r\n")


def _rows(index: CardIndex, coll: int) -> tuple[dict[str, tuple[object, ...]], Counter[tuple]]:
    """Every card's row (all but its number and its change counter) and every value row."""
    db = index.connection()
    items = {r[0]: tuple(r[1:]) for r in db.execute(
        "SELECT href, uid, etag, size, mtime_ns, fn, kind, family, given, sk_name, sk_family "
        "FROM items WHERE coll=?", (coll,))}
    props = Counter(tuple(r) for r in db.execute(
        "SELECT i.href, p.name, p.value, p.lvalue, p.norm, p.fvalue "
        "FROM props p JOIN items i ON i.id = p.item WHERE p.coll=?", (coll,)))
    return items, props


def _index_afresh(tmp_path: Path, folder: Path) -> tuple[CardIndex, int]:
    index = CardIndex(str(tmp_path / "afresh.sqlite3"))
    coll, _ = index.collection_id(BOOK, folder.stat().st_ino)
    _scan(index, coll, folder)
    return index, coll


def _scan(index: CardIndex, coll: int, folder: Path) -> None:
    listing = {}
    for entry in os.scandir(folder):
        st = entry.stat()
        listing[entry.name] = (st.st_size, st.st_mtime_ns)
    index.apply_scan(coll, folder.stat().st_mtime_ns, listing,
                     lambda href: read_card_record(str(folder), href, BOOK))


def test_edited_cards_have_the_rows_of_the_same_cards_indexed_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    index = CardIndex(str(tmp_path / "index.sqlite3"))
    coll, _ = index.collection_id(BOOK, folder.stat().st_ino)
    rng = random.Random(20261130)
    hrefs = [f"card-{n}.vcf" for n in range(6)]
    for round_ in range(240):
        href = rng.choice(hrefs)
        lines = rng.choices(LINES, k=rng.randrange(0, 9))
        rng.shuffle(lines)
        text = _card(f"uid-{href}", rng.choice(NAMES), lines, group=rng.random() < 0.15)
        path = folder / href
        path.write_text(text, encoding="utf-8", newline="")
        if round_ % 2:  # as a PUT records the card it wrote
            st = path.stat()
            index.put(coll, href, text, st.st_size, st.st_mtime_ns)
        else:  # as a comparison with the folder finds it
            os.utime(folder, ns=(0, round_))  # the folder looks changed
            _scan(index, coll, folder)
        if round_ % 40 == 39:
            (tmp_path / f"afresh-{round_}").mkdir()
            fresh, fresh_coll = _index_afresh(tmp_path / f"afresh-{round_}", folder)
            items, props = _rows(index, coll)
            assert items == _rows(fresh, fresh_coll)[0]
            assert props == _rows(fresh, fresh_coll)[1]
            assert len(items) == len(list(folder.iterdir()))
            # The category list's keys, found a key at a time, are those on the cards.
            cards = [card_fields.extract(p.read_text(encoding="utf-8"))
                     for p in folder.iterdir()]
            on_cards = {card_fields.category_key(value) for fields in cards
                        if fields.kind != "group"  # (its categories make no member)
                        for name, value in fields.values if name == "CATEGORIES"}
            assert index.category_keys(coll) == sorted(on_cards)
    # Searches read those rows: an address the card no longer has finds nothing.
    found = {href for (href,) in index.connection().execute(
        "SELECT i.href FROM props p JOIN items i ON i.id = p.item "
        "WHERE p.name = 'EMAIL' AND p.norm = 'ann@example.org'")}
    assert found == {path.name for path in folder.iterdir()
                     if "ann@example.org" in path.read_text(encoding="utf-8").lower()}
