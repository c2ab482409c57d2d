#!/usr/bin/env python3
"""The floor under the yardstick's GET, multiget and PUT figures: a server that does nothing.

Issue 17 asks for a GET of one card in 0.5 ms (p50), a multiget of 10
cards in 1 ms (10,000 cards in 1,000 requests, 1 s) and a PUT in 5 ms, as
the shared yardstick measures them: its client is Python ``requests``, and
its timer covers sending the request and reading the whole answer. Part of
every figure is therefore the client's own work and the HTTP server's,
whatever the application does. This measures that part: Granian serving,
with the very settings ``cardfile serve`` uses (``cli/server.py:
granian_settings``), an application that answers every GET with the same
card, every REPORT with the same multistatus of 10 cards (bytes made once,
gzipped once, as Cardfile gzips when asked) and every PUT with Cardfile's
201 (an ETag, no body), timed by the yardstick's own client the way the
yardstick times it. A Cardfile figure minus this floor is what Cardfile
itself costs.

    python bench/floor.py                  # 1,000 each of GET, multiget of 10, PUT
    python bench/floor.py --cards /folder  # canned answers made of these .vcf files

``run_bench.py`` runs it after the servers and prints it under the goal table.

The same server, given a folder of cards (``--listing``), also stands in for
a whole server in ``mix_bench.py --servers floor``: it lists those cards under
any book's path (PROPFIND), answers every sync-collection with no change and
a new token, every multiget with the canned 10 cards and every PUT of a card
that exists (``If-Match``) with a 204 and an ETag. That is the 50-client
mix's floor: what its p99 is on this machine when the server costs nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from servers import HOST, BenchError, Server, find_yardstick, free_port

#: Cards in the canned multistatus: DAVx5's batch.
BATCH = 10
_CARD_VARIABLE = "CARDFILE_FLOOR_CARD"
_REPORT_VARIABLE = "CARDFILE_FLOOR_REPORT"
_LISTING_VARIABLE = "CARDFILE_FLOOR_LISTING"
#: The ETag of the canned 201 (a SHA-256, as Cardfile's are).
_PUT_ETAG = f'"{0:064x}"'
#: A card of the yardstick's usual size, for when no seeded card is at hand.
_SAMPLE_CARD = ("BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//carddav_bench//EN\r\n"
                "UID:00007ad6-7f14-4803-a965-477afa3579d3\r\nFN:Karl Hernández\r\n"
                "N:Hernández;Karl;;;\r\nEMAIL;TYPE=INTERNET,HOME:karl.hernandez16@mail.example.com\r\n"
                "TEL;TYPE=CELL:+49 158 4555745\r\nADR;TYPE=WORK:;;Bahnhofstraße 189;Hamburg;;20235;"
                "Germany\r\nCATEGORIES:Colleagues,Press,Volunteering\r\nREV:20240304T043500Z\r\n"
                "END:VCARD\r\n")


def sample_cards(folder: Path | None) -> list[str]:
    """BATCH card texts: the first seeded ones, else the built-in sample."""
    found = sorted(folder.glob("*.vcf"))[:BATCH] if folder is not None else []
    texts = [path.read_text(encoding="utf-8") for path in found]
    return texts or [_SAMPLE_CARD] * BATCH


def multistatus(cards: list[str]) -> str:
    """The multiget answer Cardfile gives for these cards (etag and address-data)."""
    responses = "".join(
        f"<response><href>/bench/book/card{i}.vcf</href><propstat><prop>"
        f'<getetag>"{i:064x}"</getetag><CR:address-data>{escape(text)}</CR:address-data>'
        "</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
        for i, text in enumerate(cards))
    return ('<?xml version="1.0" encoding="utf-8"?>\n<multistatus xmlns="DAV:" '
            f'xmlns:CR="urn:ietf:params:xml:ns:carddav">{responses}</multistatus>')


def sync_answer() -> bytes:
    """A sync-collection answer with no change: what most of a polling client gets."""
    return (b'<?xml version="1.0" encoding="utf-8"?>\n<multistatus xmlns="DAV:">'
            b"<sync-token>http://radicale.org/ns/sync/floor</sync-token></multistatus>")


def listing_answer(path: str, names: list[str]) -> bytes:
    """A PROPFIND answer listing ``names`` (with ETags) under the collection at ``path``."""
    base = path if path.endswith("/") else path + "/"
    responses = [f"<response><href>{escape(base)}</href><propstat><prop><getetag/></prop>"
                 "<status>HTTP/1.1 404 Not Found</status></propstat></response>"]
    responses += [f"<response><href>{escape(base + name)}</href><propstat><prop>"
                  f'<getetag>"{i:064x}"</getetag></prop><status>HTTP/1.1 200 OK</status>'
                  "</propstat></response>" for i, name in enumerate(names)]
    return ('<?xml version="1.0" encoding="utf-8"?>\n<multistatus xmlns="DAV:">'
            + "".join(responses) + "</multistatus>").encode()


def canned_application(card: bytes, report: bytes, names: list[str] | None = None
                       ) -> Callable[..., Iterable[bytes]]:
    """A WSGI application whose answers cost nothing: bytes made (and gzipped) once.

    ``names``, when given, are the cards a PROPFIND Depth 1 of any collection
    lists (the mix's setup); the answers the mix then times stay canned.
    """
    answers = {
        "GET": ("200 OK", "text/vcard; charset=utf-8", card, gzip.compress(card, 1)),
        "REPORT": ("207 Multi-Status", "text/xml; charset=utf-8", report,
                   gzip.compress(report, 1)),
    }
    sync = sync_answer()
    sync_answers = (sync, gzip.compress(sync, 1))

    def application(environ: dict[str, Any], start_response: Callable[..., Any]
                    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = environ["wsgi.input"].read(length) if length else b""
        method = environ["REQUEST_METHOD"]
        if method == "PUT":  # Cardfile's answers to a new card and to an edit
            status = "204 No Content" if "HTTP_IF_MATCH" in environ else "201 Created"
            start_response(status, [("ETag", _PUT_ETAG), ("Content-Length", "0")])
            return [b""]
        if method == "PROPFIND":
            listed = names if names is not None and environ.get("HTTP_DEPTH") == "1" else []
            listing = listing_answer(environ.get("PATH_INFO", "/"), listed)
            start_response("207 Multi-Status", [("Content-Type", "text/xml; charset=utf-8"),
                                                ("Content-Length", str(len(listing)))])
            return [listing]
        status, content_type, plain, zipped = answers.get(method, answers["GET"])
        if method == "REPORT" and b"sync-collection" in request:
            plain, zipped = sync_answers
        headers = [("Content-Type", content_type)]
        answer = plain
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            answer = zipped
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(answer))))
        start_response(status, headers)
        return [answer]

    return application


def _load(_target: str) -> Callable[..., Iterable[bytes]]:
    """Granian's loader in each worker: the canned answers from the files named."""
    folder = os.environ.get(_LISTING_VARIABLE)
    names = sorted(p.name for p in Path(folder).glob("*.vcf")) if folder else None
    return canned_application(Path(os.environ[_CARD_VARIABLE]).read_bytes(),
                              Path(os.environ[_REPORT_VARIABLE]).read_bytes(), names)


def serve(port: int, card: Path, report: Path, listing: Path | None = None) -> None:
    """Serve the canned answers on loopback as ``cardfile serve`` serves (its settings)."""
    from granian.server import Server

    from cardfile.cli.server import Recipe, granian_settings, stop_forked_workers_while_loading

    with tempfile.TemporaryDirectory(prefix="cardfile-floor-") as data:
        os.environ["XDG_CONFIG_HOME"] = data  # the defaults, not this machine's config
        configuration = Recipe(data_dir=data, config_file=None).configuration()
        os.environ[_CARD_VARIABLE], os.environ[_REPORT_VARIABLE] = str(card), str(report)
        if listing is not None:
            os.environ[_LISTING_VARIABLE] = str(listing)
        stop_forked_workers_while_loading()  # as cardfile serve does
        Server("cardfile-floor", address=HOST, port=port,
               **granian_settings(configuration)).serve(target_loader=_load)


def measure(yardstick: Path, port: int, count: int, card: str = _SAMPLE_CARD
            ) -> dict[str, float]:
    """p50 of ``count`` GETs, multigets and PUTs of a new card, timed by the yardstick's client.

    The PUTs send the first canned card with the yardstick's headers for a new
    card (``If-None-Match: *``), each to an address of its own.
    """
    sys.path.insert(0, str(yardstick.parent))
    try:
        import carddav_bench  # the shared yardstick, read in place
    finally:
        sys.path.remove(str(yardstick.parent))
    client = carddav_bench.Client(f"http://{HOST}:{port}/bench/book/", "bench", "floor",
                                  timeout=30, pool=1)
    hrefs = "".join(f"<D:href>/bench/book/card{i}.vcf</D:href>" for i in range(BATCH))
    body = carddav_bench.xml_body("C:addressbook-multiget",
                                  "<D:prop><D:getetag/><C:address-data/></D:prop>" + hrefs)
    put_headers = {"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"}
    figures: dict[str, float] = {}
    for name, method, data, headers in (
            ("get_p50_ms", "GET", None, None),
            ("multiget_10_p50_ms", "REPORT", body, carddav_bench.XML_HDR),
            ("put_p50_ms", "PUT", card, put_headers)):
        times = []
        for i in range(count + count // 10):  # the first tenth warms the connection up
            url = (client.base_url if method == "REPORT" else client.url_for(
                "card0.vcf" if method == "GET" else f"new{i}.vcf"))
            response, seconds = client.request(method, url, data, headers)
            if response.status_code not in (200, 201, 207):
                raise BenchError(f"the floor server answered {method} with "
                                 f"{response.status_code}")
            times.append(seconds)
        figures[name] = round(statistics.median(times[count // 10:]) * 1000, 3)
    return figures


def serve_argv(port: int, work: Path, cards: Path | None, listing: bool = False
               ) -> list[str]:
    """The command that serves canned answers made of ``cards`` (files written to ``work``).

    With ``listing``, a PROPFIND Depth 1 lists the cards of ``cards`` under any
    collection: the stand-in ``mix_bench.py`` runs as its ``floor`` server.
    """
    texts = sample_cards(cards)
    card, report = work / "card.vcf", work / "report.xml"
    card.write_bytes(texts[0].encode("utf-8"))
    report.write_bytes(multistatus(texts).encode("utf-8"))
    argv = [sys.executable, __file__, "--serve", str(port), str(card), str(report)]
    return argv + (["--listing", str(cards)] if listing and cards is not None else [])


def floor(yardstick: Path, cards: Path | None, count: int = 1000,
          timeout: float = 30.0) -> dict[str, float]:
    """Start the canned server, measure it with the yardstick's client, stop it."""
    texts = sample_cards(cards)
    with tempfile.TemporaryDirectory(prefix="cardfile-floor-") as folder:
        server = Server("floor", free_port(), Path(folder), Path(folder) / "server.log")
        server.start(serve_argv(server.port, Path(folder), cards), dict(os.environ), timeout)
        try:
            figures = measure(yardstick, server.port, count, texts[0])
        finally:
            server.stop()
    figures["card_bytes"] = len(texts[0].encode("utf-8"))
    return figures


def describe(figures: dict[str, float], count: int) -> str:
    """The floor as a line under the goal table."""
    requests = max(1, count // BATCH)
    total = figures["multiget_10_p50_ms"] * requests / 1000
    return (f"floor: the yardstick's client against Granian answering canned bytes with "
            f"Cardfile's settings: GET p50 {figures['get_p50_ms']:.3f} ms; multiget of "
            f"{BATCH} p50 {figures['multiget_10_p50_ms']:.3f} ms, so {total:.2f} s for the "
            f"{requests:,} multigets of {count:,} cards; PUT of a new card p50 "
            f"{figures['put_p50_ms']:.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yardstick", type=Path, default=find_yardstick())
    parser.add_argument("--cards", type=Path, help="a folder of .vcf files for the answers")
    parser.add_argument("--count", type=int, default=1000, help="requests of each kind")
    parser.add_argument("-n", type=int, default=10000,
                        help="book size the multiget total is given for (10000)")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "CARD", "REPORT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--listing", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), Path(args.serve[2]), args.listing)
        return 0
    script = args.yardstick / "carddav_bench.py" if args.yardstick.is_dir() else args.yardstick
    if not script.is_file():
        print(f"error: yardstick not found: {script}", file=sys.stderr)
        return 2
    try:
        figures = floor(script, args.cards, args.count)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(figures))
    print(describe(figures, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
