#!/usr/bin/env python3
"""What a request costs when its core was idle just before: the same GET, three ways.

A client that sends one request at a time (the yardstick, a phone's first
sync) leaves the server's core idle between two requests, for as long as the
client takes to read an answer and send the next request. This times
Cardfile's application call (in process, no HTTP, on one core) for a GET of
a different card each time:

- back to back: the core never idles;
- after an idle gap (``time.sleep``): the core halts in between, as it does
  between a sequential client's requests;
- after a busy gap of the same length (a spin): the core runs, but not this
  request's work.

The difference between the first two is what an idle core costs the next
request (caches, and on a virtual machine the host's scheduling of the idle
virtual CPU); the third says whether that is the idling itself or only time
passing. On the machine of bench/README.md's results an idle gap of 0.5 ms
made the GET cost about 1.7 times its back-to-back time, and a busy gap did
not. This is why a GET's application time inside the server is about twice
the back-to-back time measured in process (bench/README.md).

    python bench/idle_wake.py                # 1,000 cards, gaps of 0.5 and 2 ms
    python bench/idle_wake.py --gaps 0.2,1,5 --cards 2000
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servers import BenchError, prepare_cardfile

USER, PASSWORD = "bench", "idle-wake-bench-password-1"


def _environ(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5232",
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:5232",
               "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": f"Basic {auth}",
               "HTTP_USER_AGENT": "idle_wake/1", "wsgi.input": io.BytesIO(body),
               "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               "CONTENT_LENGTH": str(len(body))}
    if body:
        environ["CONTENT_TYPE"] = "text/vcard; charset=utf-8"
    return environ


def _call(app: Any, environ: dict[str, Any]) -> str:
    """The application's status, its whole answer read (as a server would)."""
    status: list[str] = []
    answer = app(environ, lambda s, _h, _e=None: status.append(s))
    b"".join(answer)
    if hasattr(answer, "close"):
        answer.close()
    return status[0]


def _card(i: int) -> bytes:
    uid = uuid.UUID(int=i)
    return (f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Person {i}\r\n"
            f"N:{i};Person;;;\r\nEMAIL;TYPE=INTERNET:person{i}@example.org\r\n"
            f"TEL;TYPE=CELL:+1 555 {i:07d}\r\nCATEGORIES:Friends\r\nEND:VCARD\r\n").encode()


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(app: Any, hrefs: list[str], gaps_ms: list[float], count: int
            ) -> dict[str, float]:
    """p50 (ms) of ``count`` GETs back to back, and after each idle and busy gap."""
    ways: list[tuple[str, Callable[[], None]]] = [("back to back", lambda: None)]
    for gap in gaps_ms:
        ways.append((f"after {gap:g} ms idle", lambda g=gap: time.sleep(g / 1000)))
        ways.append((f"after {gap:g} ms busy", lambda g=gap: _spin(g / 1000)))
    figures: dict[str, float] = {}
    for name, before in ways:
        times = []
        for i in range(count):
            environ = _environ("GET", hrefs[(i * 97) % len(hrefs)])
            before()
            started = time.perf_counter()
            if _call(app, environ)[:3] != "200":
                raise BenchError("a GET of a stored card was not answered 200")
            times.append(time.perf_counter() - started)
        figures[name] = round(statistics.median(times) * 1000, 3)
    return figures


def run(cards: int, gaps_ms: list[float], count: int, core: int) -> dict[str, float]:
    os.sched_setaffinity(0, {core})  # one core: the comparison is of that core's state
    with tempfile.TemporaryDirectory(prefix="cardfile-idle-wake-") as folder:
        env = {**os.environ, "XDG_CONFIG_HOME": folder}
        os.environ["XDG_CONFIG_HOME"] = folder  # the defaults, not this machine's config
        _, data = prepare_cardfile(Path(folder), 0, [USER], PASSWORD, env)
        from cardfile.cli.server import Recipe
        from cardfile.plugin.app import CardfileApp

        configuration = Recipe(data_dir=str(data), config_file=None, overrides={
            "storage": {"rescan_interval": "0"}}).configuration()
        app = CardfileApp(configuration)
        app.warm_up()
        book = f"/{USER}/contacts/"
        hrefs = []
        for i in range(cards):
            href = f"{book}card-{i}.vcf"
            if _call(app, _environ("PUT", href, _card(i)))[:3] != "201":
                raise BenchError(f"storing card {i} failed")
            hrefs.append(href)
        for href in hrefs[:200]:  # the first look at each part of the book
            _call(app, _environ("GET", href))
        return measure(app, hrefs, gaps_ms, count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=1000, help="cards in the book (1000)")
    parser.add_argument("--gaps", default="0.5,2", help="gaps in ms, comma-separated (0.5,2)")
    parser.add_argument("--count", type=int, default=2000, help="GETs per way (2000)")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)),
                        help="the core to run on (the last usable one)")
    args = parser.parse_args(argv)
    try:
        gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
        figures = run(args.cards, gaps, args.count, args.core)
    except (BenchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(figures))
    base = figures["back to back"]
    for name, value in figures.items():
        print(f"GET p50 {name:>20}: {value:.3f} ms ({value / base:.2f} x back to back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
