#!/usr/bin/env python3
"""What the history costs a write: PUT and DELETE with history on against off.

Seeds one book of ``-n`` cards as files (the index is built at start), copies
it into two data folders, and starts ``cardfile serve`` on each, one with
``[storage] history_days = 30`` (the default) and one with ``history_days = 0``
(off). Against each, in alternating rounds so the shared machine's noise falls
on both: PUT updates of existing cards (each a new version), PUT of new cards
and DELETEs (each a trash entry), one at a time over a fresh connection, as a
phone syncs. Prints p50/mean per operation and the ratio on/off, then the
history's size per recorded version (from the database's pages in use), and
what a 100,000-card book's year of edits would take at that rate.

    python bench/history_cost.py -n 10000 --rounds 3 --ops 300
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "bench", "bench password 123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def card(i: int, rev: int = 0) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i:06d}\r\nFN:Person{i} Family{i % 977}"
            f"\r\nN:Family{i % 977};Person{i};;;\r\nEMAIL;TYPE=WORK:p{i}@example.org\r\n"
            f"TEL;TYPE=CELL:+49 30 {i:07d}\r\nORG:Company {i % 313}\r\n"
            f"ADR;TYPE=HOME:;;{i} Main Street;Berlin;;10{i % 1000:03d};Germany\r\n"
            f"NOTE:revision {rev}\r\nCATEGORIES:Group{i % 20}\r\nEND:VCARD\r\n")


def cardfile() -> list[str]:
    exe = shutil.which("cardfile")
    return [exe] if exe else [sys.executable, "-m", "cardfile.cli.main"]


def seed(data: Path, n: int) -> None:
    subprocess.run([*cardfile(), "user", "add", USER, "--password-stdin", "--allow-weak",
                    "--data-dir", str(data)], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    book = data / "collection-root" / USER / "contacts"
    book.mkdir(parents=True)
    (book / ".Radicale.props").write_text('{"tag": "VADDRESSBOOK"}')
    for i in range(n):
        (book / f"bench-{i:06d}.vcf").write_bytes(card(i).encode())


class Server:
    def __init__(self, data: Path, history_days: str) -> None:
        self.data = data
        self.port = free_port()
        config = data.parent / f"config-{data.name}"
        config.write_text(f"[storage]\nhistory_days = {history_days}\n"
                          "[auth]\ndelay = 0\n")
        self.log = open(data.parent / f"server-{data.name}.log", "w")
        self.process = subprocess.Popen(
            [*cardfile(), "serve", "--port", str(self.port), "--data-dir", str(data),
             "--config", str(config), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.1)
        self.auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.request("PROPFIND", f"/{USER}/contacts/", headers={"Depth": "0"})

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body.encode() if body else None,
                         headers={"Authorization": self.auth, "User-Agent": "bench/1",
                                  "Content-Type": "text/vcard", **(headers or {})})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def timed(server: Server, method: str, path: str, body: str | None = None) -> float:
    started = time.perf_counter()
    status = server.request(method, path, body)
    elapsed = time.perf_counter() - started
    assert status < 300, (method, path, status)
    return elapsed * 1000


def run_round(server: Server, n: int, ops: int, rev: int, fresh: int,
              rng: random.Random) -> dict[str, list[float]]:
    book = f"/{USER}/contacts/"
    out: dict[str, list[float]] = {"PUT update": [], "PUT new": [], "DELETE": []}
    for i in rng.sample(range(n), ops):
        out["PUT update"].append(timed(server, "PUT", f"{book}bench-{i:06d}.vcf", card(i, rev)))
    new = range(fresh, fresh + ops)
    for i in new:
        out["PUT new"].append(timed(server, "PUT", f"{book}bench-{i:06d}.vcf", card(i)))
    for i in new:
        out["DELETE"].append(timed(server, "DELETE", f"{book}bench-{i:06d}.vcf"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cardfile-history-bench-"))
    try:
        seed(root / "on", args.n)
        shutil.copytree(root / "on", root / "off")
        servers = {"on": Server(root / "on", "30"), "off": Server(root / "off", "0")}
        results: dict[str, dict[str, list[float]]] = {k: {} for k in servers}
        try:
            for r in range(args.rounds):
                order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
                for label in order:
                    rng = random.Random(r)  # the same cards for both
                    got = run_round(servers[label], args.n, args.ops, r + 1,
                                    10**6 + r * args.ops, rng)
                    for op, values in got.items():
                        results[label].setdefault(op, []).extend(values)
        finally:
            for server in servers.values():
                server.stop()
        print(f"{args.n} contacts, {args.rounds} rounds x {args.ops} of each operation "
              "(ms per request, one at a time)")
        print(f"{'operation':12} {'on p50':>8} {'off p50':>8} {'ratio':>6} "
              f"{'on mean':>8} {'off mean':>9} {'ratio':>6}")
        for op in results["on"]:
            on, off = results["on"][op], results["off"][op]
            p50 = statistics.median(on), statistics.median(off)
            mean = statistics.fmean(on), statistics.fmean(off)
            print(f"{op:12} {p50[0]:8.2f} {p50[1]:8.2f} {p50[0] / p50[1]:6.2f} "
                  f"{mean[0]:8.2f} {mean[1]:9.2f} {mean[0] / mean[1]:6.2f}")
        history = root / "on" / "history" / USER / "contacts" / "history.sqlite3"
        db = sqlite3.connect(history)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        versions = db.execute("SELECT COUNT(*) FROM events WHERE before IS NOT NULL"
                              ).fetchone()[0]
        texts, raw = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM texts"
                                ).fetchone()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        page = db.execute("PRAGMA page_size").fetchone()[0]
        db.close()
        size = pages * page
        per_version = size / max(versions, 1)
        print(f"history: {events} changes, {versions} with a prior text ({texts} distinct, "
              f"{raw / max(texts, 1):.0f} bytes each uncompressed), {size / 1024:.0f} KiB "
              f"on disk ({os.path.getsize(history) / 1024:.0f} KiB file): "
              f"{per_version:.0f} bytes per recorded version")
        for per_day in (1000, 10000, 100000):
            year = per_version * per_day * 365
            print(f"100,000 cards, {per_day} edits a day for a year: "
                  f"{year / 1024**2:,.0f} MiB (kept 365 days)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
