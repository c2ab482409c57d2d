#!/usr/bin/env python3
"""Cardfile after a restart: rebuilding a deleted index, and a cold start with it.

The speed issue asks that the targets hold "on a cold start (index present,
OS caches dropped as far as possible) and after the index is deleted". This
seeds one Cardfile data folder with the yardstick's cards (``--write-vcards``,
same ``-n``/``--seed`` as ``run_bench.py``), then for each scenario starts
``cardfile serve`` and times:

- ``start``: from launch until the port accepts connections (the index is
  built or checked before listening, so this is the rebuild time when the
  index was deleted);
- ``first PROPFIND Depth 1`` (getetag of every card) and ``second``;
- ``GET`` of one card (median of 50).

Scenarios: ``fresh`` (no index: the first build), ``index deleted`` (the
index files removed, the cards kept), ``cold`` (index present, the page cache
dropped through ``/proc/sys/vm/drop_caches`` when this process may write it,
which is reported), ``warm`` (a plain restart).

    python bench/cold_start.py -n 10000
    python bench/cold_start.py -n 100000 --out cold.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run_bench as rb


def drop_page_cache() -> bool:
    """Ask the kernel to drop clean caches; False where that is not allowed."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def remove_index(data: Path) -> None:
    for path in data.glob("cardfile-index.sqlite3*"):
        path.unlink()


def measure(label: str, argv: list[str], env: dict[str, str], data: Path, password: str,
            hrefs: list[str], timeout: float) -> dict[str, object]:
    server = rb.Server("cardfile", rb.free_port(), data.parent, data.parent / "server.log")
    argv = [*argv[:argv.index("--port") + 1], str(server.port),
            *argv[argv.index("--port") + 2:]]
    started = time.perf_counter()
    server.start(argv, env, timeout)
    start_s = time.perf_counter() - started
    try:
        rb.dav(server.port, password, "PROPFIND", f"/{rb.USER}/", rb.LOGIN_PROPFIND,
               {"Depth": "0"}, timeout)  # log in once: bcrypt is not the index's cost
        body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                "</D:prop></D:propfind>")
        book = f"/{rb.USER}/{rb.BOOK}/"
        first = rb.dav(server.port, password, "PROPFIND", book, body, {"Depth": "1"}, timeout)
        second = rb.dav(server.port, password, "PROPFIND", book, body, {"Depth": "1"}, timeout)
        gets = [rb.dav(server.port, password, "GET", book + hrefs[i * 97 % len(hrefs)], "",
                       {}, timeout) for i in range(50)]
        ok = first[0] == second[0] == 207 and all(status == 200 for status, _ in gets)
        return {"scenario": label, "ok": ok, "start_s": round(start_s, 3),
                "propfind1_first_s": round(first[1], 4),
                "propfind1_second_s": round(second[1], 4),
                "get_p50_ms": round(statistics.median(s for _, s in gets) * 1000, 3),
                "peak_rss_mb": round(rb.proc_status(server.pid or 0).get("VmHWM", 0) / 1024, 1)}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--yardstick", type=Path, default=rb.DEFAULT_YARDSTICK)
    p.add_argument("--start-timeout", type=float, default=900)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    script = rb.yardstick_script(args.yardstick)
    with tempfile.TemporaryDirectory(prefix="cardfile-cold-") as tmp:
        root = Path(tmp)
        vcards = root / "vcards"
        subprocess.run([sys.executable, str(script), "-n", str(args.count), "--seed",
                        str(args.seed), "--write-vcards", str(vcards)], cwd=script.parent,
                       check=True, stdout=subprocess.DEVNULL)
        hrefs = sorted(p.name for p in vcards.iterdir())
        password = secrets.token_urlsafe(18)
        env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
        argv_, data = rb.prepare_cardfile(root / "cardfile", 0, password, env)
        rb.seed_folder(data, vcards)
        results = []
        for label in ("fresh", "index deleted", "cold", "warm"):
            if label == "index deleted":
                remove_index(data)
            note = ""
            if label == "cold":
                note = "page cache dropped" if drop_page_cache() else \
                    "page cache NOT dropped (not permitted here)"
            rec = measure(label, argv_, env, data, password, hrefs, args.start_timeout)
            rec.update({"n": args.count, **({"note": note} if note else {})})
            results.append(rec)
            print(json.dumps(rec), file=sys.stderr)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    print(f"n={args.count}: cardfile serve after a restart")
    print(f"{'scenario':<14} {'start s':>8} {'PROPFIND1 first s':>18} {'second s':>9} "
          f"{'GET p50 ms':>10} {'peak MB':>8}")
    for r in results:
        print(f"{r['scenario']:<14} {r['start_s']:>8} {r['propfind1_first_s']:>18} "
              f"{r['propfind1_second_s']:>9} {r['get_p50_ms']:>10} {r['peak_rss_mb']:>8}"
              + (f"  ({r['note']})" if r.get("note") else "")
              + ("" if r["ok"] else "  FAILED"))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
