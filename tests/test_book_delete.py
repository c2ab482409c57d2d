"""Deleting a whole address book: its rows leave the index, the other books stay whole.

A large book's rows leave without their index entries (``CardIndex._drop_collection``:
the secondary indexes are built again from what remains), and its cards go to
the trash read as text alone: these check that the other books still answer
their searches, that the index has every one of its indexes afterwards, that
nothing of the deleted book comes back, and that its cards are in its trash.
"""

from __future__ import annotations

import sqlite3

import pytest

from cardfile.plugin.contacts.storage import INDEX_FILE_NAME
from cardfile.plugin.store.index import BULK_LOAD
from tests.conftest import EDITS_THE_FOLDER, ServerProcess
from tests.davclient import DavClient, card
from tests.source_servers import MKCOL_BOOK
from tests.test_api import Api

BIG = "/alice/big/"


def _index_names(server: ServerProcess) -> set[str]:
    with sqlite3.connect(f"file:{server.data_dir / INDEX_FILE_NAME}?mode=ro", uri=True) as db:
        return {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}


def _email_query(address: str) -> str:
    return ('<C:prop-filter name="EMAIL"><C:text-match collation="i;unicode-casemap" '
            f'match-type="equals">{address}</C:text-match></C:prop-filter>')


@pytest.mark.files_only(EDITS_THE_FOLDER)
def test_deleting_a_large_book_keeps_the_other_books_and_every_index(
        server: ServerProcess, dav: DavClient) -> None:
    for n in range(3):
        assert dav.put(f"k{n}.vcf", card(f"keep-{n}", f"Kept Person{n}",
                                         f"EMAIL:kept{n}@example.org"))[0] == 201
    assert dav.request("MKCOL", BIG, MKCOL_BOOK)[0] == 201
    folder = server.book_dir(book="big")
    for n in range(BULK_LOAD):  # written as a sync tool would, then found by the server
        (folder / f"b{n:05d}.vcf").write_text(
            card(f"big-{n}", f"Big Person{n}", f"EMAIL:big{n}@example.org"), newline="")
    assert len(dav.etags_of(BIG)) == BULK_LOAD
    before = _index_names(server)

    assert dav.request("DELETE", BIG)[0] in (200, 204)
    # Its files went after the lock was released, before the answer: none is left.
    assert sorted(p.name for p in folder.parent.iterdir()) == ["contacts"]

    assert _index_names(server) == before
    assert set(dav.etags()) == {f"/alice/contacts/k{n}.vcf" for n in range(3)}
    found = dav.query(_email_query("kept1@example.org"))
    assert [e.href for e in found] == ["/alice/contacts/k1.vcf"]
    assert dav.query(_email_query("big7@example.org")) == []
    # A new book at the same address starts empty: no row of the old one is left.
    assert dav.request("MKCOL", BIG, MKCOL_BOOK)[0] == 201
    assert dav.etags_of(BIG) == {}
    # Every card of the deleted book is in its trash, with its own text to restore.
    api = Api(server)
    trash = api.ok("GET", "/api/books/big/trash")
    assert trash["total"] == BULK_LOAD
    item = trash["items"][0]
    n = int(item["uid"].removeprefix("big-"))
    assert item["name"] == f"Big Person{n}" and item["href"] == f"b{n:05d}.vcf"
    assert api.ok("GET", item["url"])["vcard"] == card(
        f"big-{n}", f"Big Person{n}", f"EMAIL:big{n}@example.org")
    # The mass-change guard saw every card of the book go, and the book's own size.
    alerts = api.ok("GET", "/api/books/big/alerts")["items"]
    assert [(a["deleted"], a["book_size"]) for a in alerts] == [(BULK_LOAD, BULK_LOAD)]
    assert dav.put("n.vcf", card("new-1", "New Person"), book=BIG)[0] == 201
    assert list(dav.etags_of(BIG)) == [f"{BIG}n.vcf"]
