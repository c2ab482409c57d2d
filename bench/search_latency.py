#!/usr/bin/env python3
"""What the web page asks of a big book: accent-free search, UCA order, positions, A-Z.

Seeds a Cardfile data folder with ``-n`` generated contacts whose names carry
accents and letters without a decomposition (Zoë Müller, Łukasz, Øyvind,
Jürgen, Édouard ...), starts ``cardfile serve`` (timing the index build), then
times the JSON API requests the page makes, median of ``--repeats``:

- search by a name typed without accents, by a name with them, by a whole
  email address (exact match first), by a phone number in another format;
- the first page by first name and by last name, a page at a position deep in
  the book (the scrollbar dragged), the A-Z index, a page at a letter.

    python bench/search_latency.py -n 10000
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import run_bench as rb
import servers

GIVEN = ["Zoë", "Zoe", "Jürgen", "Édouard", "Łukasz", "Øyvind", "Ada", "Mona", "Lars", "Ölaf",
         "Sébastien", "Ana", "José", "Chloé", "Søren", "Ines", "Grace", "Ken", "Émilie", "Dvořák"]
FAMILY = ["Müller", "Muller", "Nowak", "Berg", "Lovelace", "Łęcka", "García", "Ørsted",
          "Dubois", "Ñúñez", "Klopp", "Smith", "Żak", "Ševčík", "O'Brien", "Brontë", "Hopper"]


def card(i: int) -> str:
    given, family = GIVEN[i % len(GIVEN)], FAMILY[(i * 7) % len(FAMILY)]
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:person-{i:06d}\r\n"
            f"FN:{given} {family} {i:05d}\r\nN:{family} {i:05d};{given};;;\r\n"
            f"EMAIL;TYPE=INTERNET:p{i}.{i % 97}@example.org\r\n"
            f"TEL;TYPE=CELL:+49 30 {5550000 + i}\r\nEND:VCARD\r\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--count", type=int, default=10000)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cardfile-search-") as tmp:
        root = Path(tmp)
        vcards = root / "vcards"
        vcards.mkdir()
        for i in range(args.count):
            (vcards / f"person-{i:06d}.vcf").write_text(card(i), encoding="utf-8")
        password = secrets.token_urlsafe(18)
        env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
        argv_, data = servers.prepare_cardfile(root / "cardfile", 0, [rb.USER], password, env)
        servers.seed_book("cardfile", data, rb.USER, rb.BOOK, vcards)
        server = servers.Server("cardfile", servers.free_port(), root, root / "server.log")
        argv_ = [*argv_[:argv_.index("--port") + 1], str(server.port),
                 *argv_[argv_.index("--port") + 2:]]
        started = time.perf_counter()
        server.start(argv_, env, args.timeout)
        token = base64.b64encode(f"{rb.USER}:{password}".encode()).decode()

        def get(path: str) -> tuple[int, float, Any]:
            conn = http.client.HTTPConnection(servers.HOST, server.port, timeout=args.timeout)
            try:
                t0 = time.perf_counter()
                conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
                resp = conn.getresponse()
                body = resp.read()
                return resp.status, time.perf_counter() - t0, json.loads(body)
            finally:
                conn.close()

        try:
            base = f"/api/books/{rb.BOOK}"
            status, _, _ = get(f"{base}/contacts?limit=1")
            build_s = time.perf_counter() - started
            deep = args.count * 3 // 4
            letters = get(f"{base}/letters")[2]["items"]
            l_offset = next(x["offset"] for x in letters if x["letter"] == "L")
            fields = "&fields=name,emails,phones,photo,categories,etag&limit=100"
            paths = {
                "search 'zoe muller' (no accents)": f"{base}/contacts?q=zoe+muller{fields}",
                "search 'Łukasz' (accents)": f"{base}/contacts?q={quote('Łukasz')}{fields}",
                "search a whole email": f"{base}/contacts?q={quote('p1234.70@example.org')}"
                                        f"{fields}",
                "search a phone, other format": f"{base}/contacts?q={quote('030 5551234')}"
                                                f"{fields}",
                "first page by first name": f"{base}/contacts?sort=name{fields}",
                "first page by last name": f"{base}/contacts?sort=family{fields}",
                f"page at position {deep}": f"{base}/contacts?offset={deep}{fields}",
                "A-Z index": f"{base}/letters",
                "page at letter L": f"{base}/contacts?offset={l_offset}{fields}",
            }
            print(f"n={args.count}: index built and first answer in {build_s:.1f} s "
                  f"(status {status}); median of {args.repeats} requests:")
            for label, path in paths.items():
                runs = [get(path) for _ in range(args.repeats)]
                assert all(r[0] == 200 for r in runs), (label, runs[-1][0])
                body = runs[-1][2]
                found = body.get("total", len(body.get("items", [])))
                first = (body.get("items") or [{}])[0]
                print(f"  {label:34s} {statistics.median(r[1] for r in runs) * 1000:7.1f} ms"
                      f"   total {found}, first: {first.get('name', first.get('letter', ''))}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
