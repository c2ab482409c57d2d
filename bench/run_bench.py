#!/usr/bin/env python3
"""Benchmark Cardfile against stock Radicale with the shared CardDAV yardstick.

Both servers are started side by side on free loopback ports, each in its own
temporary data folder, and the shared yardstick (``carddav_bench.py``, never
copied into this repository) is run against each with the same ``-n`` and
``--seed``, so both see identical contacts. Absolute times drift on a shared
machine; what this prints is meant to be read as the ratio
Cardfile / Radicale from one run (below 1 means Cardfile is faster).

Big address books take stock Radicale a very long time to load by PUT, so
above a threshold (``--seed-mode auto``) both servers are seeded out of band:
the yardstick writes the cards as files once, they are copied into each
server's collection folder before it starts, and the yardstick then runs
without its ``load`` operation. The first request to the seeded book (where
Radicale fills its item cache and Cardfile builds its index) is timed here.

Standard library only (plus ``bcrypt`` for stock Radicale's htpasswd file).

    python bench/run_bench.py -n 1000
    python bench/run_bench.py -n 10000 --seed-mode files --out results.jsonl
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
import socket
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

import bcrypt

USER = "bench"
BOOK = "book"
HOST = "127.0.0.1"
LABELS = ("radicale", "cardfile")
ALL_OPS = ("load", "propfind", "multiget", "sync", "query", "get", "insert", "update",
           "delete", "count")
PROPS_JSON = '{"tag": "VADDRESSBOOK"}'
DEFAULT_YARDSTICK = Path(__file__).resolve().parents[2] / "shared" / "bench"

# Records the yardstick prints that are not timings of an operation.
NOT_TIMINGS = {"meta", "mkcol", "setup", "abort"}

# Per-item operations are compared by their median latency (a total would
# just scale with --get-count etc.); whole-collection operations by the time
# the one request (or the batch series) took.
P50_OPS = {"get_single", "put_create", "put_update", "delete", "sync_modify_puts",
           "api_categories", "api_search", "api_category_page"}

# What a client asks for when it first opens an address book; for Radicale
# getetag/getctag/sync-token mean reading every card, for Cardfile reconciling
# the folder with its index, so this request carries the seeding cost.
FIRST_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    "<D:prop><D:resourcetype/><D:displayname/><D:getetag/><CS:getctag/>"
    "<D:sync-token/></D:prop></D:propfind>")
LOGIN_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>')

ROW_LABELS = {
    "first_access": "first access after seeding (index build)",
    "second_access": "second PROPFIND Depth 0 (warm)",
    "api_categories": "JSON API: category list (Cardfile only)",
    "api_search": "JSON API: search by name (Cardfile only)",
    "api_category_page": "JSON API: first page of a category",
    "peak_rss": "server peak RSS (VmHWM)",
    "server_cpu": "server CPU, whole run",
}


class BenchError(Exception):
    """A setup step failed; the message says which and why."""


# -- small helpers --------------------------------------------------------------
def free_port() -> int:
    """A port the kernel considers free now (tiny race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM in kB from /proc: the peak is only readable while it lives."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def proc_cpu_seconds(pid: int) -> float | None:
    """User+system CPU of the server so far (both servers are single processes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def fmt(value: float) -> str:
    """Four-ish significant digits without exponents, so columns stay readable."""
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


# -- servers ----------------------------------------------------------------------
@dataclass
class Server:
    """One running server: its process, port and where its files and log live."""

    label: str
    port: int
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/{USER}/{BOOK}/"

    def start(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        """Start it in its own session (so Ctrl-C reaches only us) and wait for the port."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.label} exited with status {self.proc.returncode} "
                                 f"while starting: {' '.join(argv)}\n{tail(self.log)}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"{self.label} did not accept connections on port {self.port} "
                         f"within {timeout:.0f}s\n{tail(self.log)}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (both servers finish running requests), then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def cardfile_argv() -> list[str]:
    """The ``cardfile`` console script next to this interpreter, else the one on PATH.

    Using the script itself (not a shell wrapper) keeps the server PID the
    Python process, so /proc figures are the server's own.
    """
    beside = Path(sys.executable).with_name("cardfile")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cardfile")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from cardfile.cli.main import cli; sys.exit(cli())"]


def prepare_radicale(root: Path, port: int, password: str) -> tuple[list[str], Path]:
    """Write stock Radicale's config and htpasswd; return its argv and storage folder."""
    storage = root / "storage"
    storage.mkdir(parents=True)
    htpasswd = root / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd.write_text(f"{USER}:{hashed}\n")
    config = root / "config"
    config.write_text(
        "[server]\n"
        f"hosts = {HOST}:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = bcrypt\n"
        "cache_logins = True\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        "type = multifilesystem\n"
        f"filesystem_folder = {storage}\n"
        "[logging]\n"
        "level = warning\n")
    # --config replaces Radicale's default search path, so no system or user
    # configuration file can change what "stock" means here.
    return [sys.executable, "-m", "radicale", "--config", str(config)], storage


def prepare_cardfile(root: Path, port: int, password: str,
                     env: dict[str, str]) -> tuple[list[str], Path]:
    """Add the bench user to a fresh Cardfile data folder; return serve argv and folder."""
    data = root / "data"
    cmd = cardfile_argv()
    done = subprocess.run([*cmd, "user", "add", USER, "--password-stdin",
                           "--data-dir", str(data)],
                          input=password + "\n", text=True, capture_output=True, env=env)
    if done.returncode != 0:
        raise BenchError(f"cardfile user add failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")
    return [*cmd, "serve", "--data-dir", str(data), "--port", str(port),
            "--log-level", "warning"], data


def seed_folder(storage: Path, vcards: Path) -> None:
    """Put the generated cards where a multifilesystem storage looks for the book."""
    book = storage / "collection-root" / USER / BOOK
    book.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(vcards, book)
    (book / ".Radicale.props").write_text(PROPS_JSON)


# -- HTTP probes ----------------------------------------------------------------
def dav(port: int, password: str, method: str, path: str, body: str,
        headers: dict[str, str], timeout: float) -> tuple[int, float]:
    """One request on a fresh connection -> (status, seconds until the body is read)."""
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body.encode(), {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/xml; charset=utf-8", **headers})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - t0
    finally:
        conn.close()


def time_first_access(server: Server, password: str, timeout: float) -> list[dict[str, Any]]:
    """Time the first and second PROPFIND Depth 0 of the seeded book.

    An untimed PROPFIND of the principal logs in first, so bcrypt's cost (the
    same for both, then cached) is not counted as index building.
    """
    status, _ = dav(server.port, password, "PROPFIND", f"/{USER}/", LOGIN_PROPFIND,
                    {"Depth": "0"}, timeout)
    if status != 207:
        raise BenchError(f"{server.label}: login PROPFIND /{USER}/ answered HTTP {status}\n"
                         f"{tail(server.log)}")
    records = []
    for op in ("first_access", "second_access"):
        status, secs = dav(server.port, password, "PROPFIND", f"/{USER}/{BOOK}/",
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
                  password: str, create: bool, log_prefix: str) -> tuple[int, list[dict[str, Any]]]:
    """Run the yardstick against one server; echo a short line per op to stderr."""
    argv = [sys.executable, str(script), server.url, "-n", str(args.count),
            "--seed", str(args.seed), "--user", USER, "--ops", ",".join(ops) or "none",
            "--workers", str(args.workers), "--load-deadline", str(args.load_deadline),
            "--label", server.label]
    if server.pid is not None:
        argv += ["--server-pid", str(server.pid)]
    if create:
        argv.append("--create")
    argv += args.yardstick_arg
    env = {**os.environ, "CARDDAV_PASSWORD": password}
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


# -- one repeat --------------------------------------------------------------------
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


def one_repeat(index: int, args: argparse.Namespace, script: Path, base: Path,
               vcards: Path | None, ops: list[str], results: Results,
               out: TextIO | None) -> None:
    """Fresh servers, (seeding,) first-access probe, yardstick for each, peak RSS."""
    root = base / f"repeat{index}"
    password = secrets.token_urlsafe(18)
    # Cardfile would otherwise layer ~/.config/cardfile/config over its defaults.
    env = {**os.environ, "XDG_CONFIG_HOME": str(root / "xdg-config")}
    servers: list[Server] = []
    argvs: dict[str, list[str]] = {}
    for label in LABELS:
        sroot = root / label
        sroot.mkdir(parents=True)
        port = args.radicale_port if label == "radicale" else args.cardfile_port
        server = Server(label, port or free_port(), sroot, sroot / "server.log")
        if label == "radicale":
            argv, storage = prepare_radicale(sroot, server.port, password)
        else:
            argv, storage = prepare_cardfile(sroot, server.port, password, env)
        if vcards is not None:
            seed_folder(storage, vcards)
        servers.append(server)
        argvs[label] = argv

    def emit(label: str, rec: dict[str, Any]) -> None:
        rec = {**rec, "label": label, "repeat": index, "n": args.count, "seed": args.seed,
               "seed_mode": "files" if vcards is not None else "put"}
        results.records.append(rec)
        if out is not None:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()

    with running(servers):
        for server in servers:
            server.start(argvs[server.label], env, args.start_timeout)
            print(f"[repeat {index + 1}/{args.repeat}] {server.label} pid {server.pid} "
                  f"on {HOST}:{server.port}", file=sys.stderr)
        cpu_start = {s.label: proc_cpu_seconds(s.pid) for s in servers if s.pid}
        # Alternate who goes first so slow drift of the machine does not
        # always hit the same server.
        order = servers if index % 2 == 0 else servers[::-1]
        for server in order:
            prefix = f"[repeat {index + 1}/{args.repeat}] {server.label:<8}"
            # The server before wrote its caches (Radicale: one file per card);
            # their writeback must not land in the next server's timings.
            os.sync()
            if vcards is not None:
                for rec in time_first_access(server, password, args.request_timeout):
                    print(f"{prefix} {rec['op']:<26} {rec['seconds']:>9.3f}s  "
                          f"{'ok' if rec['ok'] else 'FAILED: ' + rec['error']}",
                          file=sys.stderr)
                    emit(server.label, rec)
            rc, recs = run_yardstick(script, server, args, ops, password,
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
            status = proc_status(server.pid)
            cpu = proc_cpu_seconds(server.pid)
            if "VmHWM" in status:
                emit(server.label, {"op": "peak_rss", "ok": True, "kb": status["VmHWM"],
                                    "rss_kb": status.get("VmRSS")})
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


# -- the table --------------------------------------------------------------------
def headline(rec: dict[str, Any]) -> tuple[str, float] | None:
    """(metric name, value) compared for one record; None if it has no usable figure."""
    op = rec.get("op")
    if op == "peak_rss":
        return "peak MB", rec["kb"] / 1024
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


def table(results: Results, args: argparse.Namespace, mode: str) -> str:
    """Fixed-width table: operation | metric | radicale | cardfile | ratio."""
    order: list[str] = []
    metric: dict[str, str] = {}
    values: dict[tuple[str, str], list[float]] = {}
    failed: dict[tuple[str, str], int] = {}
    for rec in results.records:
        op = rec.get("op")
        if not isinstance(op, str) or op in NOT_TIMINGS:
            continue
        if op not in order:
            order.append(op)
        key = (op, rec["label"])
        values.setdefault(key, [])
        fig = headline(rec) if rec.get("ok", True) else None
        if fig is None:
            failed[key] = failed.get(key, 0) + 1
            continue
        if op == "load" and rec.get("skipped"):
            results.notes.append(f"{rec['label']} load stopped at --load-deadline after "
                                 f"{rec.get('items')} of {args.count} cards (repeat "
                                 f"{rec.get('repeat')}); its time is not comparable")
        metric[op] = fig[0]
        values[key].append(fig[1])
    # Resource rows after the timings.
    order = ([o for o in order if o not in ("peak_rss", "server_cpu")]
             + [o for o in ("server_cpu", "peak_rss") if o in order])
    rows = [("operation", "metric", "radicale", "cardfile", "ratio")]
    for op in order:
        rad, card = values.get((op, "radicale"), []), values.get((op, "cardfile"), [])
        ratio = "-"
        if rad and card and statistics.median(rad) > 0:
            ratio = f"{statistics.median(card) / statistics.median(rad):.2f}"
        rows.append((ROW_LABELS.get(op, op), metric.get(op, "-"),
                     cell(values.get((op, "radicale")), args.repeat),
                     cell(values.get((op, "cardfile")), args.repeat), ratio))
        for label in LABELS:
            if failed.get((op, label)):
                errs = [r.get("error", "") for r in results.records
                        if r.get("op") == op and r["label"] == label and not r.get("ok", True)]
                results.notes.append(f"{label} {op} failed {failed[(op, label)]}x: "
                                     f"{errs[0] if errs else ''}")
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        f"n={args.count} seed={args.seed} seeding={mode} repeats={args.repeat} "
        f"workers={args.workers}"
        + ("  (median [min..max])" if args.repeat > 1 else ""),
        "ratio = cardfile / radicale" + (" (of medians)" if args.repeat > 1 else "")
        + "; below 1 means Cardfile faster (smaller)",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(
            row[c].ljust(widths[c]) if c < 2 else row[c].rjust(widths[c]) for c in range(5)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def consistency_notes(results: Results) -> None:
    """Both servers must have seen the same data: compare the item counts they report."""
    for op in ("propfind_depth1", "count_check", "sync_initial"):
        for rep in sorted({r["repeat"] for r in results.records}):
            items = {r["label"]: r.get("items") for r in results.records
                     if r.get("op") == op and r["repeat"] == rep and r.get("ok", True)}
            if len(items) == 2 and len(set(items.values())) > 1:
                results.notes.append(f"repeat {rep}: {op} item counts differ: {items}")


# -- main --------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run the shared CardDAV yardstick against stock Radicale and Cardfile "
                    "and print both with their ratio.")
    p.add_argument("-n", "--count", type=int, default=1000, help="contacts (1000)")
    p.add_argument("--seed", type=int, default=42, help="data seed (42)")
    p.add_argument("--ops", default=",".join(ALL_OPS),
                   help="yardstick operations (default: all; 'load' is dropped when "
                        "seeding from files)")
    p.add_argument("--workers", type=int, default=4, help="PUT threads for load (4)")
    p.add_argument("--load-deadline", type=float, default=0,
                   help="stop a server's load after this many seconds (0 = no limit)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run everything K times with fresh servers (1)")
    p.add_argument("--seed-mode", choices=["auto", "put", "files"], default="auto",
                   help="load by PUT, or copy card files into both storages before "
                        "start; auto = files when n > --files-threshold")
    p.add_argument("--files-threshold", type=int, default=2000,
                   help="n above which --seed-mode auto seeds from files (2000)")
    p.add_argument("--yardstick", type=Path, default=DEFAULT_YARDSTICK,
                   help=f"carddav_bench.py or its folder ({DEFAULT_YARDSTICK})")
    p.add_argument("--yardstick-arg", action="append", default=[], metavar="ARG",
                   help="extra argument passed to the yardstick (repeatable), "
                        "e.g. --yardstick-arg=--get-count=500")
    p.add_argument("--out", type=Path, help="write every raw JSON record to this file")
    p.add_argument("--no-api", action="store_true",
                   help="skip timing Cardfile's JSON API (category list, search)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary folders (data, configs, server logs)")
    p.add_argument("--radicale-port", type=int, default=0, help="fixed port (0 = free one)")
    p.add_argument("--cardfile-port", type=int, default=0, help="fixed port (0 = free one)")
    p.add_argument("--start-timeout", type=float, default=60,
                   help="seconds to wait for a server to accept connections (60)")
    p.add_argument("--request-timeout", type=float, default=900,
                   help="timeout of the first-access PROPFIND (900)")
    a = p.parse_args(argv)
    if a.repeat < 1 or a.count < 1:
        p.error("--repeat and -n must be at least 1")
    return a


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the run like Ctrl-C, so the servers are stopped on the way out."""
    raise KeyboardInterrupt


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
    if mode == "auto":
        mode = "files" if args.count > args.files_threshold else "put"
    ops = [o.strip() for o in args.ops.split(",") if o.strip() and o.strip() != "none"]
    if mode == "files" and "load" in ops:
        ops.remove("load")
    base = Path(tempfile.mkdtemp(prefix="cardfile-bench-"))
    results = Results()
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    status = 0
    try:
        vcards: Path | None = None
        if mode == "files":
            vcards = base / "vcards"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(script), "--write-vcards", str(vcards),
                            "-n", str(args.count), "--seed", str(args.seed)],
                           cwd=script.parent, check=True)
            print(f"wrote {args.count} cards for seeding in "
                  f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
        for index in range(args.repeat):
            one_repeat(index, args, script, base, vcards, ops, results, out)
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
        print(table(results, args, mode))
        if results.notes:
            print("\nnotes:")
            for note in dict.fromkeys(results.notes):
                print(f"- {note}")
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
