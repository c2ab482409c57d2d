"""Time a connected source's first and incremental sync (issue 15).

A second Cardfile on loopback holds N cards (imported from a generated
file) and serves them; a fresh data folder connects it with ``cardfile
sources add`` (first sync: sync-collection listing + multiget in batches of
100 + writes through the one write path), then 10 cards change, 5 are added
and 5 deleted at the source and ``cardfile sources sync`` runs
(sync-collection with the token, one multiget), then a sync with no change.

    python bench/source_sync.py [--cards 10000]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cardfile(*args: str, data: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    exe = shutil.which("cardfile") or "cardfile"
    return subprocess.run([exe, *args, "--data-dir", str(data)], input=stdin, text=True,
                          capture_output=True, check=True)


def card(i: int, fn: str) -> str:
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i}\r\nFN:{fn}\r\nN:{fn};;;;\r\n"
            f"EMAIL:p{i}@example.org\r\nTEL:+4930{i:07d}\r\nEND:VCARD\r\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=10_000)
    count = parser.parse_args().cards
    tmp = Path(tempfile.mkdtemp(prefix="source-bench-"))
    os.environ["CARDFILE_KEY_FILE"] = str(tmp / "key")
    source, target = tmp / "source", tmp / "target"
    for data in (source, target):
        data.mkdir()
        cardfile("user", "add", "alice", "--password-stdin", "--allow-weak", data=data,
                 stdin="pw\n")
    (tmp / "all.vcf").write_text("".join(card(i, f"Person {i}") for i in range(count)))
    cardfile("import", str(tmp / "all.vcf"), "--user", "alice", data=source)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([shutil.which("cardfile") or "cardfile", "serve", "--port",
                               str(port), "--data-dir", str(source)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/alice/contacts/"
        started = time.monotonic()
        cardfile("sources", "add", url, "--name", "bench", "--login", "alice",
                 "--password-stdin", data=target, stdin="pw\n")
        first = time.monotonic() - started
        shown = json.loads(cardfile("sources", "show", "bench", "--json", data=target).stdout)
        print(f"first sync of {count} cards: {first:.1f} s wall (CLI start included), "
              f"{shown['seconds']:.1f} s in sync, {shown['requests']} requests, "
              f"{shown['cards']} cards")
        auth = "Basic " + base64.b64encode(b"alice:pw").decode()

        def request(method: str, path: str, body: str = "") -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request(method, path, body=body.encode() or None,
                         headers={"Authorization": auth, "Content-Type": "text/vcard"})
            assert conn.getresponse().status < 300
            conn.close()

        for i in range(10):
            request("PUT", f"/alice/contacts/bench-{i}.vcf", card(i, f"Changed {i}"))
        for i in range(count, count + 5):
            request("PUT", f"/alice/contacts/bench-{i}.vcf", card(i, f"New {i}"))
        for i in range(10, 15):
            request("DELETE", f"/alice/contacts/bench-{i}.vcf")
        for label in ("incremental (10 changed, 5 added, 5 deleted)", "incremental (none)"):
            started = time.monotonic()
            out = cardfile("sources", "sync", "bench", data=target).stdout.strip()
            wall = time.monotonic() - started
            shown = json.loads(cardfile("sources", "show", "bench", "--json",
                                        data=target).stdout)
            print(f"{label}: {wall:.2f} s wall, {shown['seconds']:.3f} s in sync, "
                  f"{shown['requests']} requests, incremental={shown['incremental']}: {out}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
