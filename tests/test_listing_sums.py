"""A book's comparison with its files reads no row when its fingerprint is unchanged.

The index keeps, per book, how many files its rows describe and the sum of a
stamp of each (name, size, mtime) (``listing_sums``). Comparing the folder with
the index (a server's check at start, each rescan) reads no row when the
listing's fingerprint is the one kept. These tests hold the real index and real
card files to what that must never cost: a change on disk that goes unseen.
Every way a row changes keeps the fingerprint in step; an edit in place, sizes
and mtimes swapped between two files, and an index written before fingerprints
existed are all compared row by row.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cardfile.plugin.contacts.storage import read_card_record
from cardfile.plugin.store.index import (
    BULK_LOAD,
    CardIndex,
    MirrorChange,
    etag_of,
    listing_fingerprint,
)
from cardfile.plugin.vcard import card_fields
from tests.davclient import card

BOOK = "alice/contacts"


class Book:
    """A folder of card files and its index, compared as the storage compares them."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "book"
        self.folder.mkdir()
        self.index = CardIndex(str(root / "index.sqlite3"))
        self.coll, _ = self.index.collection_id(BOOK, self.folder.stat().st_ino)

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text, newline="")

    def listing(self) -> dict[str, tuple[int, int]]:
        found = {}
        for entry in os.scandir(self.folder):
            st = entry.stat()
            found[entry.name] = (st.st_size, st.st_mtime_ns)
        return found

    def compare(self) -> int:
        """Changes found, as ``Collection.reconcile`` passes the folder to the index."""
        folder = str(self.folder)
        return self.index.apply_scan(self.coll, self.folder.stat().st_mtime_ns, self.listing(),
                                     lambda href: read_card_record(folder, href, BOOK))

    def kept(self) -> tuple[int, int] | None:
        row = self.index.connection().execute(
            "SELECT cards, total FROM listing_sums WHERE coll=?", (self.coll,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def of_rows(self) -> tuple[int, int]:
        """The fingerprint the rows have now, counted afresh."""
        rows = self.index.connection().execute(
            "SELECT href, size, mtime_ns FROM items WHERE coll=?", (self.coll,))
        return listing_fingerprint({href: (size, mtime) for href, size, mtime in rows})

    def statements_of(self, action: Callable[[], object]) -> list[str]:
        """The SQL statements this thread's connection ran for ``action()``."""
        seen: list[str] = []
        db = self.index.connection()
        db.set_trace_callback(seen.append)
        try:
            action()
        finally:
            db.set_trace_callback(None)
        return seen


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    yield Book(tmp_path)


def _reads_rows(statements: list[str]) -> bool:
    return any(s.startswith("SELECT href, size, mtime_ns") for s in statements)


def test_an_unchanged_folder_is_compared_without_reading_its_rows(book: Book) -> None:
    for i in range(20):
        book.write(f"c{i}.vcf", card(f"c{i}", f"Person {i}"))
    first = book.statements_of(book.compare)
    assert _reads_rows(first), "the first comparison has no fingerprint to trust"
    assert len(book.index.rows(book.coll)) == 20
    again = book.statements_of(book.compare)
    assert not _reads_rows(again), again
    assert book.kept() == book.of_rows() == listing_fingerprint(book.listing())


def test_an_edit_in_place_of_the_same_size_is_found(book: Book) -> None:
    book.write("a.vcf", card("a", "Anna Alpha"))
    book.write("b.vcf", card("b", "Bert Beta"))
    assert book.compare() == 2
    path = book.folder / "a.vcf"
    before = path.stat()
    book.write("a.vcf", card("a", "Anna Omega"))  # same length, new text
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert path.stat().st_size == before.st_size
    assert book.compare() == 1
    assert book.index.rows(book.coll)["a.vcf"].fn == "Anna Omega"
    assert book.compare() == 0


def test_sizes_and_mtimes_swapped_between_two_files_are_found(book: Book) -> None:
    """cp -p of each file over the other: every (size, mtime) is still in the listing,
    under the other name."""
    short, long = "NOTE:short", "NOTE:a much longer note than the other one"
    book.write("a.vcf", card("a", "Anna Alpha", short))
    book.write("b.vcf", card("b", "Bodo Brown", long))
    os.utime(book.folder / "a.vcf", ns=(1_700_000_000_000_000_000,) * 2)
    os.utime(book.folder / "b.vcf", ns=(1_700_000_000_500_000_000,) * 2)
    assert book.compare() == 2
    a, b = book.listing()["a.vcf"], book.listing()["b.vcf"]
    book.write("a.vcf", card("a", "Anna Alpha", long))
    book.write("b.vcf", card("b", "Bodo Brown", short))
    os.utime(book.folder / "a.vcf", ns=(b[1], b[1]))
    os.utime(book.folder / "b.vcf", ns=(a[1], a[1]))
    assert book.listing() == {"a.vcf": b, "b.vcf": a}
    assert book.compare() == 2
    rows = book.index.rows(book.coll)
    assert (rows["a.vcf"].size, rows["b.vcf"].size) == (b[0], a[0])


def test_an_index_without_fingerprints_compares_every_row_once(book: Book, tmp_path: Path
                                                                 ) -> None:
    """An index written by a version before fingerprints (no row in listing_sums)."""
    for i in range(5):
        book.write(f"c{i}.vcf", card(f"c{i}", f"Person {i}"))
    book.compare()
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.execute("DELETE FROM listing_sums")
    db.commit()
    db.close()
    (book.folder / "c0.vcf").unlink()
    book.write("c9.vcf", card("c9", "Person 9"))
    compared = book.statements_of(book.compare)
    assert _reads_rows(compared)
    assert sorted(book.index.rows(book.coll)) == ["c1.vcf", "c2.vcf", "c3.vcf", "c4.vcf",
                                                  "c9.vcf"]
    assert book.kept() == book.of_rows()
    assert not _reads_rows(book.statements_of(book.compare))


def test_every_way_a_row_changes_keeps_the_fingerprint_in_step(book: Book) -> None:
    """Saves, deletions, comparisons with the folder and a PostgreSQL catch-up, in a
    random order: the kept fingerprint is always the rows' own."""
    rng = random.Random(6352)
    book.write("seed.vcf", card("seed", "Seed Person"))
    book.compare()
    names = [f"p{i}.vcf" for i in range(12)]
    revision = 0
    for step in range(200):
        name = rng.choice(names)
        text = card(name[:-4], f"Person {name} {step}")
        action = rng.choice(["put", "remove", "disk", "disk-remove", "mirror", "compare"])
        if action == "put":
            book.index.put(book.coll, name, text, len(text), 10**18 + step)
        elif action == "remove":
            book.index.remove(book.coll, [name])
        elif action == "disk":
            book.write(name, text)
        elif action == "disk-remove":
            (book.folder / name).unlink(missing_ok=True)
        elif action == "mirror":
            revision += 1
            fields = card_fields.extract(text)
            gone = MirrorChange(rng.choice(names), revision, None)
            book.index.apply_mirror(book.coll, "pg", revision, 0, [
                MirrorChange(name, revision, text, len(text), 10**18 + step, fields), gone],
                full=False)
        else:
            book.compare()
        assert book.kept() == book.of_rows(), (step, action, name)
    book.compare()
    assert book.kept() == book.of_rows() == listing_fingerprint(book.listing())


def test_rows_written_while_the_folder_was_listed_are_their_writers(book: Book) -> None:
    """A rescan lists the folder without the storage lock: a card saved, one deleted and
    one changed after the listing began keep what their writers recorded, and so does
    the folder's mtime (test_serve.py shows it against a running server)."""
    for name in ("kept", "changed", "deleted"):
        book.write(f"{name}.vcf", card(name, f"Person {name.title()}"))
    assert book.compare() == 3
    listed_after = book.index.items_seq(book.coll)
    listed_mtime = book.folder.stat().st_mtime_ns
    listing = book.listing()  # the rescan's view, before the writes below

    def save(name: str, text: str) -> None:  # as the server saves: file, then rows
        book.write(name, text)
        st = (book.folder / name).stat()
        book.index.put(book.coll, name, text, st.st_size, st.st_mtime_ns,
                       dir_mtime_ns=book.folder.stat().st_mtime_ns)

    os.utime(book.folder, ns=(listed_mtime - 10**9,) * 2)  # the listing's mtime is older
    save("new.vcf", card("new", "Person New"))
    save("changed.vcf", card("changed", "Person Changed Again"))
    (book.folder / "deleted.vcf").unlink()
    book.index.remove(book.coll, ["deleted.vcf"])
    written_mtime = book.index.collection_id(BOOK, book.folder.stat().st_ino)[1]

    folder = str(book.folder)
    assert book.index.apply_scan(book.coll, listed_mtime, listing,
                                 lambda href: read_card_record(folder, href, BOOK),
                                 listed_after=listed_after) == 0
    rows = book.index.rows(book.coll)
    assert sorted(rows) == ["changed.vcf", "kept.vcf", "new.vcf"]
    assert rows["changed.vcf"].fn == "Person Changed Again"
    assert book.index.changed_since(book.coll, listed_after) == sorted(
        ["changed.vcf", "deleted.vcf", "new.vcf"])
    assert book.index.collection_id(BOOK, book.folder.stat().st_ino)[1] == written_mtime
    assert book.kept() == book.of_rows()
    assert book.compare() == 0


def test_a_first_build_indexes_every_card_whole_and_skips_what_is_no_card(book: Book) -> None:
    """A first build (BULK_LOAD cards or more: name order, indexes built after) reads
    each file to its end: a card of several read slices, one with a BOM; an empty
    file and a folder named like a card are skipped, never indexed."""
    texts = {f"c{n:05d}.vcf": card(f"uid-{n}", f"Person Number{n}", f"EMAIL:p{n}@example.org")
             for n in range(BULK_LOAD)}
    texts["big.vcf"] = card("uid-big", "Big Card", "NOTE:" + "x" * 300_000)
    texts["bom.vcf"] = "\ufeff" + card("uid-bom", "Bom Card")
    for name, text in texts.items():
        book.write(name, text)
    book.write("empty.vcf", "")
    (book.folder / "folder.vcf").mkdir()
    book.compare()
    rows = {href: (uid, etag) for href, uid, etag in book.index.connection().execute(
        "SELECT href, uid, etag FROM items WHERE coll=?", (book.coll,))}
    assert rows == {name: (card_fields.extract(text).uid, etag_of(text.lstrip("\ufeff")))
                    for name, text in texts.items()}
    # Each card's values belong to its own row (rows and values are numbered apart).
    for n in random.Random(7).sample(range(BULK_LOAD), 50):
        assert [href for (href,) in book.index.connection().execute(
            "SELECT i.href FROM props p JOIN items i ON i.id = p.item "
            "WHERE p.name = 'EMAIL' AND p.norm = ?", (f"p{n}@example.org",))] == [f"c{n:05d}.vcf"]
