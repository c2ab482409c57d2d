#!/usr/bin/env python3
"""The least real work under the yardstick's GET and multiget: a server that only reads.

``floor.py`` measures a server that does nothing: Granian, with ``cardfile
serve``'s settings, answering canned bytes. Issue 17's goals for a GET (p50
0.5 ms) and for multigets of 10 (1,000 of them in 1 s) sit so close to that
floor that the question is whether any Python application could meet them
on this machine. This answers it by measurement: the same Granian settings,
serving an application that does only what every correct answer must do,
and nothing Cardfile or Radicale adds:

- the login is one comparison of the Authorization header with the one
  expected (what a cached login decision costs at best; no rights, no path
  checks, no throttle, no grants, no log line);
- a shared ``flock`` on a lock file for the read, as a storage lock is;
- one SQLite lookup in an index of (name, ETag) it builds from the cards at
  its start (``build_index``), so a card changed by a writer could be seen;
- each card's file read, and for a multiget the request's XML parsed and the
  multistatus written with every text escaped.

A Cardfile figure minus this one is what Cardfile's checks and layers cost;
this one minus the floor is the least a real answer costs here.

    python bench/least_work.py --cards /folder/of/vcards   # 1,000 GETs, 1,000 multigets

``run_bench.py`` runs it after the floor, on the cards it seeded the servers
with, and prints it under the goal table.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from floor import BATCH
from servers import HOST, BenchError, Server, find_yardstick, free_port

USER, BOOK, PASSWORD = "bench", "book", "least-work"
_PREFIX = f"/{USER}/{BOOK}/"
_INDEX_NAME = "least-work-index.sqlite3"
_LOCK_NAME = "least-work.lock"


def build_index(cards: Path, folder: Path) -> Path:
    """An index of every card's name and ETag (a SHA-256 of its bytes) in ``folder``."""
    path = folder / _INDEX_NAME
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (href TEXT PRIMARY KEY, etag TEXT NOT NULL)")
        connection.executemany("INSERT INTO items VALUES (?, ?)", (
            (card.name, f'"{hashlib.sha256(card.read_bytes()).hexdigest()}"')
            for card in sorted(cards.glob("*.vcf"))))
    connection.close()
    return path


def application(cards: Path, index: Path, authorization: str
                ) -> Callable[..., Iterable[bytes]]:
    """A WSGI application answering GET of a card and multigets, and nothing else."""
    connections = threading.local()
    lock_path = index.with_name(_LOCK_NAME)

    def database() -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(connections, "one", None)
        if connection is None:
            connection = connections.one = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
        return connection

    def answer(start_response: Callable[..., Any], status: str, content_type: str,
               body: bytes, *headers: tuple[str, str]) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), *headers,
                                ("Content-Length", str(len(body)))])
        return [body]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") != authorization:
            return answer(start_response, "401 Unauthorized", "text/plain", b"")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = environ["wsgi.input"].read(length) if length else b""
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_SH)
            if method == "GET" and path.startswith(_PREFIX):
                name = path[len(_PREFIX):]
                row = database().execute("SELECT etag FROM items WHERE href = ?",
                                         (name,)).fetchone()
                if row is None or "/" in name:
                    return answer(start_response, "404 Not Found", "text/plain", b"")
                return answer(start_response, "200 OK", "text/vcard; charset=utf-8",
                              (cards / name).read_bytes(), ("ETag", row[0]))
            if method == "REPORT":
                return answer(start_response, "207 Multi-Status", "text/xml; charset=utf-8",
                              _multistatus(cards, database(), request))
            return answer(start_response, "405 Method Not Allowed", "text/plain", b"")
        finally:
            os.close(lock)

    return app


def _multistatus(cards: Path, database: sqlite3.Connection, request: bytes) -> bytes:
    """A multiget's answer: each named card's ETag and text, one query for the ETags."""
    hrefs = [unquote(e.text or "") for e in ET.fromstring(request).iter("{DAV:}href")]
    names = [href.rpartition("/")[2] for href in hrefs]
    marks = ",".join("?" * len(names))
    etags = dict(database.execute(f"SELECT href, etag FROM items WHERE href IN ({marks})",
                                  names).fetchall())
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<multistatus xmlns="DAV:" '
             'xmlns:CR="urn:ietf:params:xml:ns:carddav">']
    for href, name in zip(hrefs, names, strict=True):
        if name not in etags:
            parts.append(f"<response><href>{escape(quote(href))}</href>"
                         "<status>HTTP/1.1 404 Not Found</status></response>")
            continue
        text = (cards / name).read_text(encoding="utf-8")
        parts.append(f"<response><href>{escape(quote(href))}</href><propstat><prop>"
                     f"<getetag>{escape(etags[name])}</getetag>"
                     f"<CR:address-data>{escape(text)}</CR:address-data></prop>"
                     "<status>HTTP/1.1 200 OK</status></propstat></response>")
    parts.append("</multistatus>")
    return "".join(parts).encode("utf-8")


def _authorization() -> str:
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def serve(port: int, cards: Path) -> None:
    """Index ``cards``, then serve them on loopback with ``cardfile serve``'s Granian settings."""
    from granian.server import Server as Granian

    from cardfile.cli.server import Recipe, granian_settings, stop_forked_workers_while_loading

    with tempfile.TemporaryDirectory(prefix="cardfile-least-work-") as data:
        index = build_index(cards, Path(data))
        os.environ["XDG_CONFIG_HOME"] = data  # the defaults, not this machine's config
        configuration = Recipe(data_dir=data, config_file=None).configuration()
        stop_forked_workers_while_loading()  # as cardfile serve does
        Granian("cardfile-least-work", address=HOST, port=port,
                **granian_settings(configuration)).serve(
            target_loader=lambda _target: application(cards, index, _authorization()))


def measure(yardstick: Path, port: int, names: list[str], count: int) -> dict[str, float]:
    """p50 of ``count`` GETs and of ``count`` multigets of BATCH cards, by the yardstick's
    client, over the cards in their order (a first sync's batches)."""
    sys.path.insert(0, str(yardstick.parent))
    try:
        import carddav_bench  # the shared yardstick, read in place
    finally:
        sys.path.remove(str(yardstick.parent))
    client = carddav_bench.Client(f"http://{HOST}:{port}{_PREFIX}", USER, PASSWORD,
                                  timeout=30, pool=1)
    figures: dict[str, float] = {}
    for label, method in (("get_p50_ms", "GET"), ("multiget_10_p50_ms", "REPORT")):
        times = []
        for i in range(count + count // 10):  # the first tenth warms the connection up
            if method == "GET":
                response, seconds = client.request("GET", client.url_for(names[i % len(names)]))
            else:
                start = (i * BATCH) % max(1, len(names) - BATCH)
                hrefs = "".join(f"<D:href>{_PREFIX}{quote(name)}</D:href>"
                                for name in names[start:start + BATCH])
                body = carddav_bench.xml_body(
                    "C:addressbook-multiget",
                    "<D:prop><D:getetag/><C:address-data/></D:prop>" + hrefs)
                response, seconds = client.request("REPORT", client.base_url, body,
                                                   carddav_bench.XML_HDR)
            if response.status_code not in (200, 207):
                raise BenchError(f"the least-work server answered {method} with "
                                 f"{response.status_code}")
            times.append(seconds)
        figures[label] = round(statistics.median(times[count // 10:]) * 1000, 3)
    return figures


def least_work(yardstick: Path, cards: Path, count: int = 1000,
               timeout: float = 30.0) -> dict[str, float]:
    """Serve ``cards``, measure with the yardstick's client, stop."""
    names = sorted(card.name for card in cards.glob("*.vcf"))
    if len(names) < BATCH:
        raise BenchError(f"the least-work server needs at least {BATCH} cards in {cards}")
    with tempfile.TemporaryDirectory(prefix="cardfile-least-work-") as folder:
        server = Server("least-work", free_port(), Path(folder), Path(folder) / "server.log")
        server.start([sys.executable, __file__, "--serve", str(server.port), str(cards)],
                     dict(os.environ), timeout)
        try:
            return measure(yardstick, server.port, names, count)
        finally:
            server.stop()


def describe(figures: dict[str, float], count: int) -> str:
    """The least-work figures as a line under the goal table."""
    requests = max(1, count // BATCH)
    total = figures["multiget_10_p50_ms"] * requests / 1000
    return (f"least work: the same client and Granian settings, an application that only "
            f"compares the Authorization header, takes a shared lock, looks up the ETags "
            f"and reads the files (least_work.py): GET p50 {figures['get_p50_ms']:.3f} ms; "
            f"multiget of {BATCH} p50 {figures['multiget_10_p50_ms']:.3f} ms, so "
            f"{total:.2f} s for the {requests:,} multigets of {count:,} cards")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yardstick", type=Path, default=find_yardstick())
    parser.add_argument("--cards", type=Path, help="the folder of .vcf files to serve")
    parser.add_argument("--count", type=int, default=1000, help="requests of each kind")
    parser.add_argument("-n", type=int, default=10000,
                        help="book size the multiget total is given for (10000)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "CARDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return 0
    script = args.yardstick / "carddav_bench.py" if args.yardstick.is_dir() else args.yardstick
    if not script.is_file():
        print(f"error: yardstick not found: {script}", file=sys.stderr)
        return 2
    if args.cards is None or not args.cards.is_dir():
        print("error: --cards must name a folder of .vcf files", file=sys.stderr)
        return 2
    try:
        figures = least_work(script, args.cards, args.count)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(figures))
    print(describe(figures, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
