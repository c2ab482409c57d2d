#!/usr/bin/env python3
"""Starting a server on a seeded book: with the index rebuilt, deleted, cold and warm.

The issue's start goals: "index rebuild of 100,000 cards <= 10 s; start with
the index present <= 1 s; memory at 100,000 <= 200 MB". This seeds each
server's folder with the yardstick's cards (``--write-vcards``, same
``-n``/``--seed`` as ``run_bench.py``), then for each scenario launches it
and times:

- ``start``: from launch until a PROPFIND Depth 0 of the book, logged in,
  is answered with 207 (getetag, getctag and sync-token: Radicale reads
  every card for those, Cardfile needs its index). Not until the port
  accepts: Cardfile's Granian binds the port before its workers have built
  or checked the index. The time includes the one bcrypt login check of that
  request (Xandikos has no login);
- ``port``: until the port accepted a connection, for comparison;
- ``first PROPFIND Depth 1`` (getetag of every card) and ``second``;
- ``GET`` of one card (median of 50, fresh connection each);
- memory over the whole process tree (Cardfile: master and workers): the sum
  of each process's VmHWM (an upper bound of the peak) and the PSS now.

Scenarios: ``fresh`` (first start after seeding: the index is built),
``index deleted`` (Cardfile's index files / Radicale's item cache removed,
the cards kept; Xandikos keeps nothing outside Git, so this is a restart),
``cold`` (index present, page cache dropped through /proc/sys/vm/drop_caches
when this process may, which is reported), ``warm`` (a plain restart).

``run_bench.py --with-start`` uses ``start_records`` (fresh, then warm) for
its goal table.

    python bench/cold_start.py -n 10000
    python bench/cold_start.py -n 10000 --servers radicale,xandikos,cardfile --out cold.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import proctree
from servers import (
    HOST,
    LABELS,
    LOGIN_PROPFIND,
    BenchError,
    Server,
    dav,
    find_yardstick,
    free_port,
    prepare,
    remove_index,
    seed_book,
    set_port,
    uses_auth,
    wait_until_book_answers,
)

USER = "bench"
BOOK = "book"
DEFAULT_YARDSTICK = find_yardstick()
#: What each start finds: see the module's docstring.
SCENARIOS = ("fresh", "index deleted", "cold", "warm")
PROPFIND_ETAGS = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                  "</D:prop></D:propfind>")


def drop_page_cache() -> bool:
    """Ask the kernel to drop clean caches; False where that is not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Prepared:
    """One server's seeded folder, ready to be started again and again."""

    def __init__(self, label: str, root: Path, vcards: Path, user: str, book: str,
                 env: dict[str, str]) -> None:
        self.label, self.root, self.user, self.book, self.env = label, root, user, book, env
        secret = secrets.token_urlsafe(18)
        self.password = secret if uses_auth(label) else None
        self.argv, self.storage = prepare(label, root, 0, [user], secret, env)
        seed_book(label, self.storage, user, book, vcards)
        self.hrefs = sorted(p.name for p in vcards.iterdir())

    def measure(self, scenario: str, timeout: float, probes: bool = True
                ) -> dict[str, object]:
        """Launch, time until the book answers, probe, read the tree's memory, stop."""
        server = Server(self.label, free_port(), self.root, self.root / "server.log")
        argv = set_port(self.argv, self.label, self.root, server.port)
        os.sync()  # the last run's writeback must not land in this start
        started = time.perf_counter()
        server.launch(argv, self.env)
        try:
            start_s, port_s = wait_until_book_answers_noting_port(server, self, timeout,
                                                                  started)
            rec: dict[str, object] = {"scenario": scenario, "server": self.label,
                                      "start_s": round(start_s, 3),
                                      "port_s": None if port_s is None else round(port_s, 3)}
            ok = True
            # Every Cardfile worker checks a password once; which one a fresh
            # connection reaches is the kernel's choice, so log in a few times
            # untimed before the probes (the start itself included one check).
            for _ in range(8 if self.password is not None else 0):
                dav(server.port, self.user, self.password, "PROPFIND", f"/{self.user}/",
                    LOGIN_PROPFIND, {"Depth": "0"}, timeout)
            if probes:
                book = server.book_path(self.user, self.book)
                first = dav(server.port, self.user, self.password, "PROPFIND", book,
                            PROPFIND_ETAGS, {"Depth": "1"}, timeout)
                second = dav(server.port, self.user, self.password, "PROPFIND", book,
                             PROPFIND_ETAGS, {"Depth": "1"}, timeout)
                gets = [dav(server.port, self.user, self.password, "GET",
                            book + self.hrefs[i * 97 % len(self.hrefs)], "", {}, timeout)
                        for i in range(50)]
                ok = first[0] == second[0] == 207 and all(st == 200 for st, _ in gets)
                rec.update({"propfind1_first_s": round(first[1], 4),
                            "propfind1_second_s": round(second[1], 4),
                            "get_p50_ms": round(statistics.median(s for _, s in gets) * 1000,
                                                3)})
            memory = proctree.tree_memory_kb(server.pid or 0)
            each = proctree.per_process_kb(server.pid or 0)
            rec.update({"ok": ok, "processes": memory["processes"],
                        "pss_each_mb": [round(p.get("pss_kb", 0) / 1024, 1) for p in each],
                        "peak_mb": round(memory["hwm_kb"] / 1024, 1),
                        "pss_mb": round(memory["pss_kb"] / 1024, 1)
                        if "pss_kb" in memory else None})
            return rec
        finally:
            server.stop()


def wait_until_book_answers_noting_port(server: Server, prepared: Prepared, timeout: float,
                                        started: float) -> tuple[float, float | None]:
    """(seconds until the book answered, seconds until the port accepted) from launch."""
    port_s = None
    deadline = time.monotonic() + timeout
    while port_s is None and time.monotonic() < deadline:
        server.check_running()
        if port_open(server.port):
            port_s = time.perf_counter() - started
        else:
            time.sleep(0.01)
    wait_until_book_answers(server, prepared.user, prepared.book, prepared.password,
                            max(1.0, deadline - time.monotonic()))
    return time.perf_counter() - started, port_s


def start_records(labels: list[str], vcards: Path, root: Path, user: str, book: str,
                  timeout: float) -> Iterator[tuple[str, dict[str, object]]]:
    """For run_bench's goal table: start with no index, then with it; the larger memory.

    Yields (server label, record) with ops ``start_rebuild``, ``start_present``
    and ``start_memory`` (kb: the larger sum of VmHWM of the two starts).
    """
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
    for label in labels:
        prepared = Prepared(label, root / label, vcards, user, book, env)
        fresh = prepared.measure("fresh", timeout)
        warm = prepared.measure("warm", timeout)
        for rec in (fresh, warm):
            print(f"[start] {label:<8} {rec['scenario']:<6} book answered "
                  f"{rec['start_s']:>8.3f}s (port {rec['port_s']}s), "
                  f"sum of VmHWM {rec['peak_mb']} MB", file=sys.stderr)
        yield label, {"op": "start_rebuild", "ok": bool(fresh["ok"]),
                      "seconds": fresh["start_s"], "port_s": fresh["port_s"]}
        yield label, {"op": "start_present", "ok": bool(warm["ok"]),
                      "seconds": warm["start_s"], "port_s": warm["port_s"]}
        peak = max(float(fresh["peak_mb"]), float(warm["peak_mb"]))  # type: ignore[arg-type]
        yield label, {"op": "start_memory", "ok": True, "kb": round(peak * 1024)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--servers", default="cardfile",
                   help=f"comma-separated, from {','.join(LABELS)} (cardfile)")
    p.add_argument("--yardstick", type=Path, default=DEFAULT_YARDSTICK)
    p.add_argument("--start-timeout", type=float, default=900)
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"comma-separated, in order, from {','.join(SCENARIOS)} (all); "
                        "'cold' empties the page cache of the whole machine")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        p.error(f"--scenarios: choose from {','.join(SCENARIOS)}")
    labels = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not labels or set(labels) - set(LABELS):
        p.error(f"--servers: choose from {','.join(LABELS)}")
    script = args.yardstick / "carddav_bench.py" if args.yardstick.is_dir() else args.yardstick
    results = []
    with tempfile.TemporaryDirectory(prefix="cardfile-cold-") as tmp:
        root = Path(tmp)
        vcards = root / "vcards"
        subprocess.run([sys.executable, str(script), "-n", str(args.count), "--seed",
                        str(args.seed), "--write-vcards", str(vcards)], cwd=script.parent,
                       check=True, stdout=subprocess.DEVNULL)
        env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
        try:
            for label in labels:
                prepared = Prepared(label, root / label, vcards, USER, BOOK, env)
                for scenario in scenarios:
                    note = ""
                    if scenario == "index deleted":
                        note = remove_index(label, prepared.storage)
                    if scenario == "cold":
                        note = "page cache dropped" if drop_page_cache() else \
                            "page cache NOT dropped (not permitted here)"
                    rec = prepared.measure(scenario, args.start_timeout)
                    rec.update({"n": args.count, **({"note": note} if note else {})})
                    results.append(rec)
                    print(json.dumps(rec), file=sys.stderr)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps(rec) + "\n")
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(f"n={args.count}: launch -> the book's PROPFIND Depth 0 answered ('start'), "
          "memory summed over the process tree")
    head = (f"{'server':<9} {'scenario':<14} {'start s':>8} {'port s':>7} "
            f"{'PROPFIND1 first s':>18} {'second s':>9} {'GET p50 ms':>10} "
            f"{'sum VmHWM MB':>12} {'PSS MB':>7}  PSS per process MB (master first)")
    print(head)
    for r in results:
        print(f"{r['server']:<9} {r['scenario']:<14} {r['start_s']:>8} {r['port_s']!s:>7} "
              f"{r['propfind1_first_s']:>18} {r['propfind1_second_s']:>9} "
              f"{r['get_p50_ms']:>10} {r['peak_mb']:>12} {r['pss_mb']!s:>7}  "
              + " + ".join(str(v) for v in r["pss_each_mb"])  # type: ignore[attr-defined]
              + (f"  ({r['note']})" if r.get("note") else "")
              + ("" if r["ok"] else "  FAILED"))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
