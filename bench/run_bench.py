#!/usr/bin/env python3
"""Benchmark Cardfile against stock Radicale and Xandikos with the shared CardDAV yardstick.

The servers are started side by side on free loopback ports, each in its own
temporary data folder, and the shared yardstick (``carddav_bench.py``, never
copied into this repository) is run against each with the same ``-n`` and
``--seed``, so all see identical contacts. Absolute times drift on a shared
machine; what this prints is meant to be read as the ratios
Cardfile / Radicale and Cardfile / Xandikos from one run (below 1 means
Cardfile is faster), and then the issue's goals checked against the figures.

Big address books take stock Radicale a very long time to load by PUT, so
above a threshold (``--seed-mode auto``) the servers are seeded out of band:
the yardstick writes the cards as files once, they are copied where each
server reads them before it starts (``servers.seed_book``), and the
yardstick then runs without its ``load`` operation. The first request to the
seeded book (where Radicale fills its item cache and Cardfile builds or
checks its index) is timed here.

Standard library only (plus ``bcrypt`` for stock Radicale's htpasswd file).

    python bench/run_bench.py -n 1000
    python bench/run_bench.py -n 10000 --with-start --out results.jsonl
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import quote

import cold_start
import floor
import goals
import least_work
import proctree
from servers import (
    FIRST_PROPFIND,
    HOST,
    LABELS,
    LOGIN_PROPFIND,
    BenchError,
    Server,
    dav,
    find_yardstick,
    free_port,
    prepare,
    seed_book,
    tail,
    uses_auth,
)

USER = "bench"
BOOK = "book"
ALL_OPS = ("load", "propfind", "multiget", "sync", "query", "get", "insert", "update",
           "delete", "count")
DEFAULT_YARDSTICK = find_yardstick()
# Fresh connections that log in before the first-access probe (see time_first_access).
LOGIN_ROUNDS = 8

# Records the yardstick prints that are not timings of an operation.
NOT_TIMINGS = {"meta", "mkcol", "setup", "abort"}

# Per-item operations are compared by their median latency (a total would
# just scale with --get-count etc.); whole-collection operations by the time
# the one request (or the batch series) took.
P50_OPS = {"get_single", "put_create", "put_update", "delete", "sync_modify_puts",
           "api_categories", "api_search", "api_category_page"}
# Resource rows, printed after the timings.
RESOURCE_OPS = ("server_cpu", "peak_rss", "rss_now", "pss_now")
MB_OPS = {"peak_rss", "rss_now", "pss_now", "start_memory"}

ROW_LABELS = {
    "first_access": "first access after seeding (index build)",
    "second_access": "second PROPFIND Depth 0 (warm)",
    "api_categories": "JSON API: category list (Cardfile only)",
    "api_search": "JSON API: search by name (Cardfile only)",
    "api_category_page": "JSON API: first page of a category",
    "start_rebuild": "start, no index: launch -> book answered",
    "start_present": "start, index present: launch -> book answered",
    "start_memory": "start: sum of VmHWM over the tree (upper bound)",
    "server_cpu": "server CPU, whole run, process tree",
    "peak_rss": "peak RSS: sum of VmHWM over the tree (upper bound)",
    "rss_now": "RSS at the end: sum over the tree",
    "pss_now": "PSS at the end: sum over the tree (shared pages split)",
}


def fmt(value: float) -> str:
    return goals.fmt(value)


def password_for(label: str, password: str) -> str | None:
    """The password a client sends to this server (None: no credentials, Xandikos)."""
    return password if uses_auth(label) else None


# -- HTTP probes ----------------------------------------------------------------
def time_first_access(server: Server, password: str | None, timeout: float
                      ) -> list[dict[str, Any]]:
    """Time the first and second PROPFIND Depth 0 of the seeded book.

    Untimed PROPFINDs of the principal log in first, so bcrypt's cost (the
    same for the servers that check logins, then cached) is not counted as
    index building.
    """
    # Each of Cardfile's worker processes checks a password once (then caches
    # it), and which worker takes a fresh connection is the kernel's choice, so
    # several logins on fresh connections come first.
    for _ in range(LOGIN_ROUNDS if password is not None else 0):
        status, _ = dav(server.port, USER, password, "PROPFIND", f"/{USER}/", LOGIN_PROPFIND,
                        {"Depth": "0"}, timeout)
        if status != 207:
            raise BenchError(f"{server.label}: login PROPFIND /{USER}/ answered HTTP "
                             f"{status}\n{tail(server.log)}")
    records = []
    for op in ("first_access", "second_access"):
        status, secs = dav(server.port, USER, password, "PROPFIND", f"/{USER}/{BOOK}/",
                           FIRST_PROPFIND, {"Depth": "0"}, timeout)
        rec: dict[str, Any] = {"op": op, "ok": status == 207, "status": status,
                               "seconds": round(secs, 4)}
        if status != 207:
            rec["error"] = f"PROPFIND Depth 0 answered HTTP {status}"
        records.append(rec)
    return records


def time_api(server: Server, password: str, timeout: float, repeats: int = 7
             ) -> list[dict[str, Any]]:
    """Median latency of what the web page asks most (Cardfile's JSON API only).

    The category list with member counts, a search by a family name taken
    from the book itself, and the first page of the biggest category.
    """
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()

    def get(path: str) -> tuple[int, float, Any]:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
        try:
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
            resp = conn.getresponse()
            data = resp.read()
            secs = time.perf_counter() - t0
            return resp.status, secs, json.loads(data) if resp.status == 200 else None
        finally:
            conn.close()

    base = f"/api/books/{BOOK}"
    _, _, first = get(f"{base}/contacts?sort=family&limit=1&fields=family")
    _, _, cats = get(f"{base}/categories")
    family = ((first or {}).get("items") or [{}])[0].get("family") or "a"
    biggest = max((cats or {}).get("items") or [{"name": ""}], key=lambda c: c.get("count", 0))
    paths = {"api_categories": f"{base}/categories",
             "api_search": f"{base}/contacts?q={quote(family)}&limit=50",
             "api_category_page": f"{base}/contacts?category={quote(biggest['name'])}&limit=50"}
    records = []
    for op, path in paths.items():
        runs = [get(path) for _ in range(repeats)]
        ok = all(status == 200 for status, _, _ in runs)
        body = runs[-1][2] or {}
        records.append({"op": op, "ok": ok, "path": path, "requests": repeats,
                        "p50_ms": round(statistics.median(s for _, s, _ in runs) * 1000, 2),
                        "total": body.get("total"),
                        **({} if ok else {"error": f"HTTP {runs[-1][0]}"})})
    return records


# -- the yardstick --------------------------------------------------------------
def yardstick_script(path: Path) -> Path:
    """Accept the script itself or the folder holding it."""
    script = path / "carddav_bench.py" if path.is_dir() else path
    if not script.is_file():
        raise BenchError(f"yardstick not found: {script}")
    return script


def run_yardstick(script: Path, server: Server, args: argparse.Namespace, ops: list[str],
                  password: str | None, create: bool, log_prefix: str
                  ) -> tuple[int, list[dict[str, Any]]]:
    """Run the yardstick against one server; echo a short line per op to stderr."""
    argv = [sys.executable, str(script), server.url(USER, BOOK), "-n", str(args.count),
            "--seed", str(args.seed), "--ops", ",".join(ops) or "none",
            "--workers", str(args.workers), "--load-deadline", str(args.load_deadline),
            "--label", server.label]
    if server.pid is not None:
        argv += ["--server-pid", str(server.pid)]
    if create:
        argv.append("--create")
    argv += args.yardstick_arg
    env = dict(os.environ)
    if password is not None:
        argv += ["--user", USER]
        env["CARDDAV_PASSWORD"] = password
    records: list[dict[str, Any]] = []
    proc = subprocess.Popen(argv, cwd=script.parent, env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                print(f"{log_prefix} {line}", file=sys.stderr)
                continue
            records.append(rec)
            op = rec.get("op")
            if op == "meta":
                continue
            state = "ok" if rec.get("ok", True) else f"FAILED: {rec.get('error', '')}"
            secs = rec.get("seconds")
            shown = f"{secs:.3f}s" if isinstance(secs, int | float) else ""
            print(f"{log_prefix} {op:<26} {shown:>10}  {state}", file=sys.stderr)
        return proc.wait(), records
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class Results:
    """Every record, by server label, plus notes about anything unusual."""

    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Stop every started server however the block is left."""
    try:
        yield
    finally:
        # A second Ctrl-C must not leave a server behind half-way through this.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for s in servers:
                s.stop()
        finally:
            signal.signal(signal.SIGINT, previous)


def emitter(results: Results, out: TextIO | None, args: argparse.Namespace, index: int,
            seeding: str) -> Any:
    """A function that tags a record with the run's facts, keeps it and writes it out."""

    def emit(label: str, rec: dict[str, Any]) -> None:
        rec = {**rec, "label": label, "repeat": index, "n": args.count, "seed": args.seed,
               "seed_mode": seeding}
        results.records.append(rec)
        if out is not None:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()

    return emit


def one_repeat(index: int, args: argparse.Namespace, script: Path, base: Path,
               vcards: Path | None, ops: list[str], results: Results,
               out: TextIO | None) -> None:
    """Fresh servers, (seeding,) first-access probe, yardstick for each, tree CPU/memory."""
    root = base / f"repeat{index}"
    password = secrets.token_urlsafe(18)
    # Cardfile would otherwise layer ~/.config/cardfile/config over its defaults.
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
    servers: list[Server] = []
    argvs: dict[str, list[str]] = {}
    for label in args.servers:
        sroot = root / label
        server = Server(label, args.port.get(label) or free_port(), sroot, sroot / "server.log")
        argv, storage = prepare(label, sroot, server.port, [USER], password, env)
        if vcards is not None:
            seed_book(label, storage, USER, BOOK, vcards)
        servers.append(server)
        argvs[label] = argv
    emit = emitter(results, out, args, index, "files" if vcards is not None else "put")

    with running(servers):
        for server in servers:
            server.start(argvs[server.label], env, args.start_timeout)
            print(f"[repeat {index + 1}/{args.repeat}] {server.label} pid {server.pid} "
                  f"on {HOST}:{server.port}", file=sys.stderr)
        cpu_start = {s.label: proctree.tree_cpu_seconds(s.pid) for s in servers if s.pid}
        # Rotate who goes first so slow drift of the machine does not always
        # hit the same server.
        shift = index % len(servers)
        order = servers[shift:] + servers[:shift]
        for server in order:
            prefix = f"[repeat {index + 1}/{args.repeat}] {server.label:<8}"
            secret = password_for(server.label, password)
            # The server before wrote its caches (Radicale: one file per card);
            # their writeback must not land in the next server's timings.
            os.sync()
            if vcards is not None:
                for rec in time_first_access(server, secret, args.request_timeout):
                    print(f"{prefix} {rec['op']:<26} {rec['seconds']:>9.3f}s  "
                          f"{'ok' if rec['ok'] else 'FAILED: ' + rec['error']}",
                          file=sys.stderr)
                    emit(server.label, rec)
            rc, recs = run_yardstick(script, server, args, ops, secret,
                                     create=vcards is None, log_prefix=prefix)
            for rec in recs:
                emit(server.label, rec)
            if server.label == "cardfile" and not args.no_api:
                for rec in time_api(server, password, args.request_timeout):
                    print(f"{prefix} {rec['op']:<26} {rec['p50_ms']:>9.2f}ms  "
                          f"{'ok' if rec['ok'] else 'FAILED: ' + rec['error']}",
                          file=sys.stderr)
                    emit(server.label, rec)
            if rc != 0:
                meaning = {1: "some operations failed", 2: "setup failed",
                           3: "load hit --load-deadline, later ops skipped"}.get(rc, "?")
                results.notes.append(f"repeat {index}: yardstick against {server.label} "
                                     f"exited {rc} ({meaning})")
            if not server.alive():
                results.notes.append(f"repeat {index}: {server.label} died during the run "
                                     f"(status {server.proc and server.proc.returncode})\n"
                                     f"{tail(server.log)}")
        for server in servers:
            if server.pid is None or not server.alive():
                continue
            memory = proctree.tree_memory_kb(server.pid)
            cpu = proctree.tree_cpu_seconds(server.pid)
            emit(server.label, {"op": "peak_rss", "ok": True, "kb": memory["hwm_kb"],
                                "processes": memory["processes"]})
            emit(server.label, {"op": "rss_now", "ok": True, "kb": memory["rss_kb"]})
            if "pss_kb" in memory:
                emit(server.label, {"op": "pss_now", "ok": True, "kb": memory["pss_kb"]})
            start = cpu_start.get(server.label)
            if cpu is not None and start is not None:
                emit(server.label, {"op": "server_cpu", "ok": True,
                                    "seconds": round(cpu - start, 2)})
        for server in servers:
            log = tail(server.log, 100000)
            warnings = [ln for ln in log.splitlines()
                        if re.search(r"\bERROR\b|\bCRITICAL\b|^Traceback", ln)]
            if warnings:
                results.notes.append(f"repeat {index}: {server.label} logged errors "
                                     f"(see {server.log}):\n  " + "\n  ".join(warnings[:5]))


# -- the tables -------------------------------------------------------------------
def headline(rec: dict[str, Any]) -> tuple[str, float] | None:
    """(metric name, value) compared for one record; None if it has no usable figure."""
    op = rec.get("op")
    if op in MB_OPS and isinstance(rec.get("kb"), int | float):
        return "MB", rec["kb"] / 1024
    if op in P50_OPS and isinstance(rec.get("p50_ms"), int | float):
        return "p50 ms", float(rec["p50_ms"])
    if op == "server_cpu":
        return "cpu s", float(rec["seconds"])
    if isinstance(rec.get("seconds"), int | float):
        return "total s", float(rec["seconds"])
    return None


def cell(values: list[float] | None, repeats: int) -> str:
    if values is None:
        return "-"  # not measured for this server (the JSON API is Cardfile's)
    if not values:
        return "FAIL"
    med = statistics.median(values)
    if repeats == 1 and len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} [{fmt(min(values))}..{fmt(max(values))}]"


@dataclass
class Figures:
    """Every headline figure by (operation, server), in the order first seen."""

    order: list[str] = field(default_factory=list)
    metric: dict[str, str] = field(default_factory=dict)
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)

    def medians(self) -> dict[tuple[str, str], float]:
        return {key: statistics.median(vals) for key, vals in self.values.items() if vals}


def collect(results: Results, args: argparse.Namespace) -> Figures:
    figs = Figures()
    for rec in results.records:
        op = rec.get("op")
        if not isinstance(op, str) or op in NOT_TIMINGS:
            continue
        if op not in figs.order:
            figs.order.append(op)
        key = (op, rec["label"])
        figs.values.setdefault(key, [])
        fig = headline(rec) if rec.get("ok", True) else None
        if fig is None:
            figs.failed[key] = figs.failed.get(key, 0) + 1
            continue
        if op == "load" and rec.get("skipped"):
            results.notes.append(f"{rec['label']} load stopped at --load-deadline after "
                                 f"{rec.get('items')} of {args.count} cards (repeat "
                                 f"{rec.get('repeat')}); its time is not comparable")
        figs.metric[op] = fig[0]
        figs.values[key].append(fig[1])
    figs.order = ([o for o in figs.order if o not in RESOURCE_OPS]
                  + [o for o in RESOURCE_OPS if o in figs.order])
    return figs


def table(results: Results, figs: Figures, args: argparse.Namespace, mode: str) -> str:
    """Fixed-width table: operation | metric | one column per server | ratios."""
    labels = list(args.servers)
    others = [lb for lb in labels if lb != "cardfile"] if "cardfile" in labels else []
    header = ("operation", "metric", *labels, *(f"cf/{lb[:3]}" for lb in others))
    rows = [header]
    for op in figs.order:
        ratios = []
        card = figs.values.get((op, "cardfile"), [])
        for other in others:
            theirs = figs.values.get((op, other), [])
            ratio = "-"
            if theirs and card and statistics.median(theirs) > 0:
                ratio = f"{statistics.median(card) / statistics.median(theirs):.2f}"
            ratios.append(ratio)
        rows.append((ROW_LABELS.get(op, op), figs.metric.get(op, "-"),
                     *(cell(figs.values.get((op, lb)), args.repeat) for lb in labels),
                     *ratios))
        for label in labels:
            if figs.failed.get((op, label)):
                errs = [r.get("error", "") for r in results.records
                        if r.get("op") == op and r["label"] == label and not r.get("ok", True)]
                results.notes.append(f"{label} {op} failed {figs.failed[(op, label)]}x: "
                                     f"{errs[0] if errs else ''}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"n={args.count} seed={args.seed} seeding={mode} repeats={args.repeat} "
        f"workers={args.workers}"
        + ("  (median [min..max])" if args.repeat > 1 else ""),
        "cf/rad = cardfile / radicale, cf/xan = cardfile / xandikos"
        + (" (of medians)" if args.repeat > 1 else "")
        + "; below 1 means Cardfile faster (smaller)",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(
            row[c].ljust(widths[c]) if c < 2 else row[c].rjust(widths[c])
            for c in range(len(row))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def goal_table(figs: Figures, args: argparse.Namespace) -> str:
    """The issue's goals with each server's figure (medians) and Cardfile's verdict."""
    rows = goals.rows_for(goals.SINGLE_SERVER_GOALS, figs.medians(), args.count,
                          list(args.servers))
    if not rows:
        return ""
    return (f"goals of issue 17 at n={args.count} (the 50-client mix: bench/mix_bench.py)\n"
            + goals.render(rows, list(args.servers)))


def consistency_notes(results: Results) -> None:
    """All servers must have seen the same data: compare the item counts they report."""
    for op in ("propfind_depth1", "count_check", "sync_initial"):
        for rep in sorted({r["repeat"] for r in results.records}):
            items = {r["label"]: r.get("items") for r in results.records
                     if r.get("op") == op and r["repeat"] == rep and r.get("ok", True)}
            if len(items) > 1 and len(set(items.values())) > 1:
                results.notes.append(f"repeat {rep}: {op} item counts differ: {items}")


# -- main --------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run the shared CardDAV yardstick against stock Radicale, Xandikos and "
                    "Cardfile and print the figures, their ratios and the issue's goals.")
    p.add_argument("-n", "--count", type=int, default=1000, help="contacts (1000)")
    p.add_argument("--seed", type=int, default=42, help="data seed (42)")
    p.add_argument("--servers", default=",".join(LABELS),
                   help=f"which servers, comma-separated ({','.join(LABELS)})")
    p.add_argument("--ops", default=",".join(ALL_OPS),
                   help="yardstick operations (default: all; 'load' is dropped when "
                        "seeding from files)")
    p.add_argument("--workers", type=int, default=4, help="PUT threads for load (4)")
    p.add_argument("--load-deadline", type=float, default=0,
                   help="stop a server's load after this many seconds (0 = no limit)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run everything K times with fresh servers (1)")
    p.add_argument("--seed-mode", choices=["auto", "put", "files"], default="auto",
                   help="load by PUT, or copy card files into the storages before "
                        "start; auto = files when n > --files-threshold or 'load' is "
                        "not in --ops")
    p.add_argument("--files-threshold", type=int, default=2000,
                   help="n above which --seed-mode auto seeds from files (2000)")
    p.add_argument("--with-start", action="store_true",
                   help="also time each server's start (index rebuilt / present) and its "
                        "memory, in separate folders first (bench/cold_start.py)")
    p.add_argument("--yardstick", type=Path, default=DEFAULT_YARDSTICK,
                   help=f"carddav_bench.py or its folder ({DEFAULT_YARDSTICK})")
    p.add_argument("--yardstick-arg", action="append", default=[], metavar="ARG",
                   help="extra argument passed to the yardstick (repeatable), "
                        "e.g. --yardstick-arg=--get-count=500")
    p.add_argument("--out", type=Path, help="write every raw JSON record to this file")
    p.add_argument("--no-api", action="store_true",
                   help="skip timing Cardfile's JSON API (category list, search)")
    p.add_argument("--no-floor", action="store_true",
                   help="skip measuring the floor under the GET, multiget and PUT figures "
                        "(bench/floor.py: Granian answering canned bytes) and the least "
                        "work over it (bench/least_work.py: an application that only reads)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary folders (data, configs, server logs)")
    for label in LABELS:
        p.add_argument(f"--{label}-port", type=int, default=0,
                       help="fixed port (0 = free one)")
    p.add_argument("--start-timeout", type=float, default=900,
                   help="seconds to wait for a server to accept connections, or with "
                        "--with-start to answer (900)")
    p.add_argument("--request-timeout", type=float, default=900,
                   help="timeout of the first-access PROPFIND (900)")
    a = p.parse_args(argv)
    if a.repeat < 1 or a.count < 1:
        p.error("--repeat and -n must be at least 1")
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    unknown = sorted(set(a.servers) - set(LABELS))
    if unknown or not a.servers:
        p.error(f"--servers: unknown {','.join(unknown) or '(none given)'}; "
                f"choose from {','.join(LABELS)}")
    a.port = {label: getattr(a, f"{label}_port") for label in LABELS}
    return a


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the run like Ctrl-C, so the servers are stopped on the way out."""
    raise KeyboardInterrupt


def write_vcards(script: Path, folder: Path, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(script), "--write-vcards", str(folder),
                    "-n", str(args.count), "--seed", str(args.seed)],
                   cwd=script.parent, check=True)
    print(f"wrote {args.count} cards for seeding in {time.perf_counter() - t0:.1f}s",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Also when started in the background (SIGINT inherited as ignored), Ctrl-C
    # or kill -INT must end the run through the cleanup that stops the servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        script = yardstick_script(args.yardstick)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mode = args.seed_mode
    ops = [o.strip() for o in args.ops.split(",") if o.strip() and o.strip() != "none"]
    if mode == "auto":
        # Without "load" in --ops the book would stay empty: seed it from files.
        mode = "files" if args.count > args.files_threshold or "load" not in ops else "put"
    if mode == "files" and "load" in ops:
        ops.remove("load")
    base = Path(tempfile.mkdtemp(prefix="cardfile-bench-"))
    results = Results()
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    status = 0
    floor_line = ""
    try:
        cards = base / "vcards"
        if mode == "files" or args.with_start:
            write_vcards(script, cards, args)
        if args.with_start:
            emit = emitter(results, out, args, 0, "files")
            for label, rec in cold_start.start_records(
                    args.servers, cards, base / "start", USER, BOOK, args.start_timeout):
                emit(label, rec)
        for index in range(args.repeat):
            one_repeat(index, args, script, base, cards if mode == "files" else None,
                       ops, results, out)
        if not args.no_floor and {"get", "multiget", "insert", "update"} & set(ops):
            floor_line = floor.describe(
                floor.floor(script, cards if cards.is_dir() else None), args.count)
            if cards.is_dir() and {"get", "multiget"} & set(ops):
                floor_line += "\n" + least_work.describe(
                    least_work.least_work(script, cards), args.count)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        status = 130
    except (BenchError, subprocess.CalledProcessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    finally:
        if out is not None:
            out.close()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    if results.records:
        consistency_notes(results)
        figs = collect(results, args)
        print(table(results, figs, args, mode))
        checked = goal_table(figs, args)
        if checked:
            print()
            print(checked)
        if floor_line:
            print(floor_line)
        if results.notes:
            print("\nnotes:")
            for note in dict.fromkeys(results.notes):
                print(f"- {note}")
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
