"""A whole address book PUT in one request reaches PostgreSQL, not just one server's cache.

Radicale writes a whole-collection PUT (allowed with ``[rights]
permit_overwrite_collection = True``) straight into a new folder. With the
PostgreSQL store that folder is only this server's cache: found by Radicale's
own request tests (bench/radicale_request_tests.py --store postgresql), the
cards were answered 201 and then vanished when the cache caught up with a
database that never had them, and no other server ever saw them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import USER, ServerProcess, start_server
from tests.davclient import DavClient, card

pytestmark = pytest.mark.slow

NEW_BOOK = f"/{USER}/friends/"
#: The predefined book: every server has its folder (a book made on one server by
#: MKCOL or PUT gets no folder on the others; only its cards are in the database).
SHARED_BOOK = f"/{USER}/contacts/"


def _server(tmp_path: Path, name: str, url: str) -> ServerProcess:
    folder = tmp_path / name
    folder.mkdir()
    return start_server(folder, extra_config=(f"[storage]\nbackend = {url}\n"
                                              "[rights]\npermit_overwrite_collection = True\n"))


@pytest.fixture
def two_servers(tmp_path: Path, database_url: str) -> Iterator[tuple[DavClient, DavClient]]:
    started = []
    try:
        for name in ("a", "b"):
            started.append(_server(tmp_path, name, database_url))
        clients = tuple(s.client() for s in started)
        for client in clients:
            assert client.request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})[0] == 207
        yield clients[0], clients[1]
    finally:
        for srv in started:
            srv.stop()


def _cards(client: DavClient, book: str) -> list[str]:
    """The FN line of every card the book lists, each read back by GET, sorted."""
    found = []
    for href in client.etags_of(book):
        if href.rstrip("/") == book.rstrip("/"):
            continue
        status, _, text = client.request("GET", book + href.rsplit("/", 1)[-1])
        assert status == 200, (href, status, text)
        found.append(next(line for line in text.splitlines() if line.startswith("FN:")))
    return sorted(found)


def _put_book(client: DavClient, book: str, *cards: str) -> None:
    status, _, text = client.request("PUT", book, "".join(cards),
                                     {"Content-Type": "text/vcard"})
    assert status in (201, 204), text


def test_a_whole_book_put_is_kept_and_reaches_every_server(
        two_servers: tuple[DavClient, DavClient]) -> None:
    a, b = two_servers
    # A new book: the server that answered 201 lists the cards (it lost them before).
    _put_book(a, NEW_BOOK, card("ann", "Ann Lee"), card("bo", "Bo Day"))
    assert _cards(a, NEW_BOOK) == ["FN:Ann Lee", "FN:Bo Day"]

    # Overwriting a book both servers have: the new cards reach the other server, the
    # old one leaves both, and a client syncing through the other server is told.
    assert b.put("old.vcf", card("old", "Old Card"))[0] == 201
    status, token, _ = b.sync(path=SHARED_BOOK)
    assert status == 207
    _put_book(a, SHARED_BOOK, card("cy", "Cy Moss"), card("di", "Di Ray"))
    assert _cards(b, SHARED_BOOK) == ["FN:Cy Moss", "FN:Di Ray"]
    assert _cards(a, SHARED_BOOK) == ["FN:Cy Moss", "FN:Di Ray"]
    status, _, changed = b.sync(token, path=SHARED_BOOK)
    assert status == 207
    assert sorted((e.href.rsplit("/", 1)[-1], e.status) for e in changed) == [
        ("cy.vcf", 200), ("di.vcf", 200), ("old.vcf", 404)]
