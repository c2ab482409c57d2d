#!/usr/bin/env python3
"""Many clients at once: the issue's 50-client mix against each server in turn.

"50 concurrent clients (a mix of sync polls, multigets, GETs and PUTs over
100 users of 1,000 contacts) with p99 <= 50 ms, and the figure in requests
per second per core; both cores used."

For each server (one at a time, so they never compete for the cores):

1. ``--users`` users, each with one address book of ``--cards`` cards (the
   yardstick's ``--write-vcards`` cards, the same set for every user), seeded
   as files before the server starts (``servers.seed_book``); Cardfile's users
   added with ``cardfile user add``, Radicale's in a bcrypt htpasswd file,
   Xandikos without authentication (it has none over plain HTTP).
2. Untimed setup: every book listed (PROPFIND Depth 1: hrefs and ETags) and
   synced once (its first sync token); every user logged in on several fresh
   connections, so each worker process has checked each password (bcrypt)
   before the clock starts; then ``--warmup`` seconds of the mix, not counted.
3. ``--clients`` client threads spread over ``--client-procs`` processes, each
   with one keep-alive ``http.client`` connection (per server), for ``--seconds``: each
   request is for a random user, and is ~40% an incremental sync-collection
   poll (with the token this client last got for that user), ~25% a
   multiget of 10 random cards, ~25% a GET of one, ~10% a PUT update of one
   with If-Match (each client updates only its own share of the cards, so
   its ETag is current and a 412 is a server fault, counted as an error).

Besides the three servers of ``servers.py``, two set-ups of Cardfile on
PostgreSQL (``pg_servers.py``): ``cardfile-pg``, one server with
``--database``, and ``cardfile-pg3``, three servers (each its own data
folder, the same database and users) with every client sending its requests
round-robin to the three ports. And ``floor``: Granian with ``cardfile
serve``'s settings answering canned bytes (``floor.py``), so the same clients
on the same cores show what part of the p99 is theirs and the HTTP server's.
The PostgreSQL set-ups' books are loaded with ``cardfile db import``; each
server's cache is filled by the untimed setup. Their CPU and memory include
PostgreSQL's processes (its postmaster's tree), and are printed split into
Cardfile's and PostgreSQL's share.

Printed per server: requests/s; server CPU seconds over the window, summed
over its process tree, and requests per CPU-second (the "requests per second
per core"); cores used (CPU s / wall s; "both cores used" when > 1.2);
p50/p95/p99, mean and max per operation and overall (a request that started
in the window counts even if it ended after it); the fewest, median and most
requests a client made (a starved client shows); errors; and the client processes'
own CPU, so a client that saturated its core (and so limited the figures)
shows. Then the goal rows for all servers.

    python bench/mix_bench.py --users 10 --cards 200 --seconds 15
    python bench/mix_bench.py                      # 100 users x 1,000 cards, 50 clients, 60 s
    python bench/mix_bench.py --servers cardfile,cardfile-pg,cardfile-pg3
    python bench/mix_bench.py --servers floor,cardfile  # the p99 with a server that does nothing
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import http.client
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from xml.sax.saxutils import escape

import floor
import goals
import pg_servers
import proctree
from servers import (
    HOST,
    LABELS,
    PROPS_JSON,
    BenchError,
    Server,
    cardfile_argv,
    find_yardstick,
    free_port,
    prepare,
    prepare_cardfile,
    seed_book,
    tail,
    uses_auth,
    wait_until_book_answers,
)

BOOK = "book"
#: Every set-up this benchmark runs: the three servers, Cardfile on PostgreSQL, and
#: the floor (``floor.py``'s canned answers: the mix when the server costs nothing).
MIX_LABELS = (*LABELS, *pg_servers.SERVER_COUNTS, "floor")
OPS = ("sync", "multiget", "get", "put")
WEIGHTS = (40, 25, 25, 10)
XML = {"Content-Type": "application/xml; charset=utf-8"}
PROPFIND_ETAGS = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:">'
                  "<D:prop><D:getetag/></D:prop></D:propfind>")
RESPONSE_RE = re.compile(rb"<(?:\w+:)?response\b.*?</(?:\w+:)?response>", re.S)
HREF_RE = re.compile(rb"<(?:\w+:)?href>([^<]+)</")
ETAG_RE = re.compile(rb"<(?:\w+:)?getetag>([^<]+)</")
TOKEN_RE = re.compile(rb"sync-token>([^<]+)</")


def sync_body(token: str) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")


def multiget_body(hrefs: list[str]) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/>'
            "</D:prop>" + "".join(f"<D:href>{escape(h)}</D:href>" for h in hrefs)
            + "</C:addressbook-multiget>")


def user_name(i: int) -> str:
    return f"u{i:03d}"


# -- what every client starts from --------------------------------------------------
@dataclass
class Book:
    """One user's book as listed in setup: card hrefs, their ETags, a sync token."""

    user: str
    hrefs: list[str]
    etags: dict[str, str]
    token: str


@dataclass
class Plan:
    """Everything a client process needs (inherited through fork)."""

    ports: list[int]  # requests go round-robin over these (one server: one port)
    password: str | None
    books: list[Book]
    cards: dict[str, str]  # file name -> vCard text, the same for every user
    clients: int
    start_at: float  # time.time() when the mix starts (warm-up begins)
    measure_at: float  # from here on requests count
    end_at: float


@dataclass
class Tally:
    """One client process's results over the measured window."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    errors: dict[str, int] = field(default_factory=lambda: {op: 0 for op in OPS})
    first_errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    #: Requests each client thread started in the window (a starved client shows).
    per_client: list[int] = field(default_factory=list)


class ClientThread:
    """One client: a keep-alive connection, its own sync tokens and ETags."""

    def __init__(self, index: int, plan: Plan, tally: Tally, lock: threading.Lock) -> None:
        self.index, self.plan, self.tally, self.lock = index, plan, tally, lock
        self.rng = random.Random(index)
        self.conns = [http.client.HTTPConnection(HOST, port, timeout=30) for port in plan.ports]
        self.turn = index  # the next request's server, round-robin from a different one each
        self.tokens = {b.user: b.token for b in plan.books}
        self.etags = {b.user: dict(b.etags) for b in plan.books}
        self.mine = {b.user: [h for i, h in enumerate(b.hrefs) if i % plan.clients == index]
                     for b in plan.books}
        self.revision = 0
        self.current = "get"
        self.auth = {}
        for b in plan.books:
            if plan.password is not None:
                token = base64.b64encode(f"{b.user}:{plan.password}".encode()).decode()
                self.auth[b.user] = {"Authorization": f"Basic {token}"}
            else:
                self.auth[b.user] = {}

    def request(self, method: str, path: str, body: str | None, headers: dict[str, str]
                ) -> tuple[int, bytes, http.client.HTTPResponse]:
        conn = self.conns[self.turn % len(self.conns)]
        self.turn += 1
        try:
            conn.request(method, path, body.encode() if body is not None else None, headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp
        except (OSError, http.client.HTTPException):
            conn.close()  # reconnects on the next request
            raise

    def one(self) -> tuple[str, bool, str]:
        """Pick and send one request; (operation, ok, error text)."""
        book = self.rng.choice(self.plan.books)
        op = self.rng.choices(OPS, WEIGHTS)[0]
        base = f"/{book.user}/{BOOK}/"
        headers = self.auth[book.user]
        if op == "put" and not self.mine[book.user]:
            op = "get"
        self.current = op  # a connection error is counted against this operation
        if op == "sync":
            status, body, _ = self.request("REPORT", base, sync_body(self.tokens[book.user]),
                                           {**headers, **XML, "Depth": "0"})
            tokens = TOKEN_RE.findall(body)
            if status == 207 and tokens:
                self.tokens[book.user] = tokens[-1].decode()
                return op, True, ""
            return op, False, f"sync HTTP {status}"
        if op == "multiget":
            hrefs = self.rng.sample(book.hrefs, min(10, len(book.hrefs)))
            status, body, _ = self.request("REPORT", base, multiget_body(hrefs),
                                           {**headers, **XML, "Depth": "1"})
            got = body.count(b"BEGIN:VCARD")
            if status == 207 and got == len(hrefs):
                return op, True, ""
            return op, False, f"multiget HTTP {status}, {got} of {len(hrefs)} cards"
        if op == "get":
            href = self.rng.choice(book.hrefs)
            status, body, _ = self.request("GET", href, None, headers)
            if status == 200 and body.startswith(b"BEGIN:VCARD"):
                return op, True, ""
            return op, False, f"GET HTTP {status}"
        href = self.rng.choice(self.mine[book.user])
        self.revision += 1
        text = self.plan.cards[href.rsplit("/", 1)[1]].replace(
            "END:VCARD", f"X-MIX-REV:{self.index}-{self.revision}\r\nEND:VCARD")
        put_headers = {**headers, "Content-Type": "text/vcard; charset=utf-8"}
        etag = self.etags[book.user].get(href)
        if etag:
            put_headers["If-Match"] = etag
        status, _, resp = self.request("PUT", href, text, put_headers)
        new = resp.getheader("ETag")
        if new:
            self.etags[book.user][href] = new
        else:
            self.etags[book.user].pop(href, None)
        if status in (200, 201, 204):
            return op, True, ""
        return op, False, f"PUT HTTP {status}"

    def run(self) -> None:
        plan = self.plan
        while time.time() < plan.start_at:
            time.sleep(0.005)
        started = 0
        while True:
            sent = time.time()
            if sent >= plan.end_at:
                break
            t0 = time.perf_counter()
            try:
                op, ok, error = self.one()
            except (OSError, http.client.HTTPException) as e:
                op, ok, error = self.current, False, f"{self.current}: {type(e).__name__}: {e}"
            secs = time.perf_counter() - t0
            if sent < plan.measure_at:
                continue
            # A request that started in the window counts even when it ends after
            # it: leaving it out would drop the slowest answers from the figures.
            started += 1
            with self.lock:
                if ok:
                    self.tally.latencies[op].append(secs)
                else:
                    self.tally.errors[op] += 1
                    if len(self.tally.first_errors) < 5:
                        self.tally.first_errors.append(error)
        for conn in self.conns:
            conn.close()
        with self.lock:
            self.tally.per_client.append(started)


def client_process(plan: Plan, first: int, count: int, queue: Any) -> None:
    """Run ``count`` client threads; put this process's Tally on the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops everything
    tally, lock = Tally(), threading.Lock()
    threads = [threading.Thread(target=ClientThread(first + i, plan, tally, lock).run)
               for i in range(count)]
    for t in threads:
        t.start()
    while time.time() < plan.measure_at:
        time.sleep(0.005)
    cpu0 = time.process_time()
    while time.time() < plan.end_at:
        time.sleep(0.01)
    tally.cpu_s = time.process_time() - cpu0
    for t in threads:
        t.join()
    queue.put(tally)


# -- setup ---------------------------------------------------------------------------
def fetch(port: int, method: str, path: str, body: str, headers: dict[str, str]
          ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=300)
    try:
        conn.request(method, path, body.encode(), headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def list_book(port: int, user: str, password: str | None) -> Book:
    """PROPFIND Depth 1 (hrefs, ETags) and a first sync (token) of one user's book."""
    auth = {}
    if password is not None:
        auth = {"Authorization": "Basic "
                + base64.b64encode(f"{user}:{password}".encode()).decode()}
    base = f"/{user}/{BOOK}/"
    status, body = fetch(port, "PROPFIND", base, PROPFIND_ETAGS, {**auth, **XML, "Depth": "1"})
    if status != 207:
        raise BenchError(f"PROPFIND {base} answered HTTP {status}")
    hrefs, etags = [], {}
    for block in RESPONSE_RE.findall(body):
        href = HREF_RE.search(block)
        if href is None or href.group(1).decode().rstrip("/") == base.rstrip("/"):
            continue
        name = href.group(1).decode()
        name = "/" + name.split("://", 1)[1].split("/", 1)[1] if "://" in name else name
        hrefs.append(name)
        etag = ETAG_RE.search(block)
        if etag:
            etags[name] = etag.group(1).decode().replace("&quot;", '"')
    status, body = fetch(port, "REPORT", base, sync_body(""), {**auth, **XML, "Depth": "0"})
    tokens = TOKEN_RE.findall(body)
    if status != 207 or not tokens:
        raise BenchError(f"initial sync of {base} answered HTTP {status}")
    return Book(user, sorted(hrefs), etags, tokens[-1].decode())


def warm_logins(port: int, users: list[str], password: str | None, rounds: int) -> None:
    """Log every user in on ``rounds`` fresh connections (each worker checks bcrypt once)."""
    if password is None:
        return

    def login(user: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        fetch(port, "PROPFIND", f"/{user}/", PROPFIND_ETAGS,
              {"Authorization": f"Basic {token}", **XML, "Depth": "0"})

    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(login, [u for u in users for _ in range(rounds)]))


# -- one server --------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Deployment:
    """What one label runs: its server(s), and PostgreSQL's for the PG set-ups."""

    label: str
    servers: list[Server]
    argvs: list[list[str]]
    database: pg_servers.Database | None = None
    notes: list[str] = field(default_factory=list)

    def pids(self) -> dict[str, list[int]]:
        """Roots of the process trees to measure: Cardfile's (or the server's), PostgreSQL's."""
        roots = {"server": [s.pid for s in self.servers if s.pid is not None]}
        if self.database is not None:
            roots["postgresql"] = [self.database.postmaster_pid()]
        return roots

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.database is not None:
            self.database.stop()


def cardfile_users(base: Path, users: list[str], secret: str, env: dict[str, str]) -> Path:
    """A Cardfile data folder holding just the users, made once and copied for each server.

    ``cardfile user add`` costs a bcrypt (about 1.5 s a user); three servers on
    one database share their users, and the runs of one invocation share the
    password, so the folder is made once.
    """
    template = base / "cardfile-users"
    if not template.exists():
        _, data = prepare_cardfile(template, 0, users, secret, env)
        return data
    return template / "data"


def serve_argv(data: Path, port: int, database: str | None) -> list[str]:
    argv = [*cardfile_argv(), "serve", "--data-dir", str(data), "--port", str(port),
            "--log-level", "warning"]
    return argv + (["--database", database] if database else [])


def deploy(label: str, args: argparse.Namespace, base: Path, vcards: Path, users: list[str],
           secret: str, env: dict[str, str]) -> Deployment:
    """Prepare and seed ``label``'s folders (and database); nothing started yet."""
    root = base / label
    root.mkdir(parents=True)
    if label == "cardfile":
        data = root / "data"
        shutil.copytree(cardfile_users(base, users, secret, env), data)
        for user in users:
            seed_book(label, data, user, BOOK, vcards)
        server = Server(label, free_port(), root, root / "server.log")
        return Deployment(label, [server], [serve_argv(data, server.port, None)])
    if label == "floor":  # nothing to seed: it lists the cards' names under every book
        server = Server(label, free_port(), root, root / "server.log")
        return Deployment(label, [server], [floor.serve_argv(server.port, root, vcards,
                                                             listing=True)])
    if label not in pg_servers.SERVER_COUNTS:
        server = Server(label, free_port(), root, root / "server.log")
        argv, storage = prepare(label, root, server.port, users, secret, env)
        for user in users:
            seed_book(label, storage, user, BOOK, vcards)
        return Deployment(label, [server], [argv])
    database = pg_servers.Database()
    deployment = Deployment(label, [], [], database, [database.described])
    try:
        staging = root / "import"
        for user in users:
            seed_book("cardfile", staging, user, BOOK, vcards)
        took = database.import_books(staging)
        shutil.rmtree(staging)
        size = database.size()
        deployment.notes.append(f"cardfile db import of {len(users)} x {args.cards} cards: "
                                f"{took:.1f}s; {size.describe(len(users) * args.cards)}")
        for n in range(pg_servers.SERVER_COUNTS[label]):
            folder = root / f"server{n}"
            data = folder / "data"
            shutil.copytree(cardfile_users(base, users, secret, env), data)
            for user in users:  # the books' folders (their cache, filled from the database)
                book = data / "collection-root" / user / BOOK
                book.mkdir(parents=True)
                (book / ".Radicale.props").write_text(PROPS_JSON)
            server = Server(f"{label}#{n}", free_port(), folder, folder / "server.log")
            deployment.servers.append(server)
            deployment.argvs.append(serve_argv(data, server.port, database.url))
    except BaseException:
        deployment.stop()
        raise
    return deployment


def folder_mb(path: Path) -> float:
    """Disk used by a folder's files (what ``du`` counts, in MiB)."""
    total = 0
    for entry in path.rglob("*"):
        try:
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_blocks * 512
        except OSError:
            continue
    return total / 2**20


def tree_cpu(roots: list[int]) -> float:
    return sum(proctree.tree_cpu_seconds(pid) or 0.0 for pid in roots)


def tree_memory(roots: list[int]) -> dict[str, int]:
    summed: dict[str, int] = {}
    for pid in roots:
        for key, value in proctree.tree_memory_kb(pid).items():
            summed[key] = summed.get(key, 0) + value
    return summed


def run_server(label: str, args: argparse.Namespace, base: Path, vcards: Path
               ) -> dict[str, Any]:
    """Set up, seed, start one set-up's server(s), run the mix against them, stop; figures."""
    users = [user_name(i) for i in range(args.users)]
    secret = args.password  # one per invocation: the users' folder is made once (cardfile_users)
    password = secret if uses_auth(label) else None
    env = {**os.environ, "XDG_CONFIG_HOME": str(base / "xdg-config")}
    t0 = time.perf_counter()
    deployment = deploy(label, args, base, vcards, users, secret, env)
    print(f"[{label}] {len(users)} users x {args.cards} cards seeded in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    for note in deployment.notes:
        print(f"[{label}] {note}", file=sys.stderr)
    cards = {p.name: p.read_text(encoding="utf-8") for p in vcards.iterdir()}
    servers = deployment.servers
    try:
        for server, argv in zip(servers, deployment.argvs, strict=True):
            server.launch(argv, env)
        ready = max(wait_until_book_answers(server, users[0], BOOK, password,
                                            args.start_timeout) for server in servers)
        t0 = time.perf_counter()
        # Every server lists and syncs every book once: fills a PostgreSQL server's cache.
        for server in servers:
            with cf.ThreadPoolExecutor(4) as pool:
                books = list(pool.map(lambda u, port=server.port: list_book(port, u, password),
                                      users))
            warm_logins(server.port, users, password, args.login_rounds)
        filled = time.perf_counter() - t0
        print(f"[{label}] pid {', '.join(str(s.pid) for s in servers)}: answered after "
              f"{ready:.1f}s; books listed and logins warmed in {filled:.1f}s", file=sys.stderr)
        now = time.time()
        plan = Plan(ports=[s.port for s in servers], password=password, books=books,
                    cards=cards, clients=args.clients, start_at=now + 1.0,
                    measure_at=now + 1.0 + args.warmup,
                    end_at=now + 1.0 + args.warmup + args.seconds)
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        procs = []
        share = [args.clients // args.client_procs
                 + (1 if i < args.clients % args.client_procs else 0)
                 for i in range(args.client_procs)]
        first = 0
        for count in share:
            if count:
                procs.append(ctx.Process(target=client_process,
                                         args=(plan, first, count, queue), daemon=True))
                first += count
        for p in procs:
            p.start()
        roots = deployment.pids()
        try:
            while time.time() < plan.measure_at:
                time.sleep(0.01)
            load_before = os.getloadavg()
            cpu0 = {part: tree_cpu(pids) for part, pids in roots.items()}
            while time.time() < plan.end_at:
                time.sleep(0.01)
            cpu1 = {part: tree_cpu(pids) for part, pids in roots.items()}
            load_after = os.getloadavg()
            memory = {part: tree_memory(pids) for part, pids in roots.items()}
            tallies = [queue.get(timeout=120) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
        alive = all(s.alive() for s in servers)
        disk = [folder_mb(Path(argv[argv.index("--data-dir") + 1]))
                for argv in deployment.argvs if "--data-dir" in argv]
    finally:
        deployment.stop()
    latencies = {op: [x for t in tallies for x in t.latencies[op]] for op in OPS}
    everything = [x for op in OPS for x in latencies[op]]
    errors = {op: sum(t.errors[op] for t in tallies) for op in OPS}
    cpu_parts = {part: cpu1[part] - cpu0[part] for part in roots}
    cpu = sum(cpu_parts.values())
    res: dict[str, Any] = {
        "label": label, "seconds": args.seconds, "requests": len(everything),
        "errors": sum(errors.values()), "errors_by_op": errors,
        "first_errors": [e for t in tallies for e in t.first_errors][:5],
        "rps": len(everything) / args.seconds, "server_cpu_s": cpu,
        "cpu_parts": cpu_parts,
        "per_cpu_s": len(everything) / cpu if cpu > 0 else None,
        "cores": cpu / args.seconds,
        "processes": sum(m["processes"] for m in memory.values()),
        "peak_mb": sum(m["hwm_kb"] for m in memory.values()) / 1024,
        "pss_mb": {part: m["pss_kb"] / 1024 for part, m in memory.items() if "pss_kb" in m},
        "servers": len(servers), "fill_s": filled, "data_dir_mb": disk,
        "load": (load_before, load_after), "notes": deployment.notes,
        "client_cpu_s": [round(t.cpu_s, 2) for t in tallies], "alive": alive,
        "per_client": sorted(n for t in tallies for n in t.per_client),
        "log": str(servers[0].log)}
    for name, values in (*latencies.items(), ("all", everything)):
        if values:
            res[name] = {"n": len(values), **{f"p{p}": pct(values, p) * 1000
                                              for p in (50, 95, 99)},
                         "mean": sum(values) / len(values) * 1000, "max": max(values) * 1000}
    return res


# -- output -----------------------------------------------------------------------------
def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"{res['label']}: {res['requests']} requests in {res['seconds']:.0f}s = "
             f"{res['rps']:.1f}/s; server CPU {res['server_cpu_s']:.1f}s over "
             f"{res['processes']} process(es) = {res['cores']:.2f} cores -> "
             + (f"{res['per_cpu_s']:.1f} requests per CPU-second" if res["per_cpu_s"]
                else "no CPU measured")
             + f"; errors {res['errors']}",
             f"  client processes' CPU s: {res['client_cpu_s']} over {res['seconds']:.0f}s"]
    parts = res["cpu_parts"]
    pss = res["pss_mb"]
    if "postgresql" in parts:
        lines.append(
            f"  {res['servers']} Cardfile server(s) + PostgreSQL, both counted in the CPU and "
            f"memory: CPU Cardfile {parts['server']:.1f}s + PostgreSQL "
            f"{parts['postgresql']:.1f}s; PSS at the end Cardfile "
            f"{pss.get('server', 0):.0f} MB + PostgreSQL {pss.get('postgresql', 0):.0f} MB")
    elif pss:
        lines.append(f"  PSS at the end {sum(pss.values()):.0f} MB (process tree)")
    for note in res["notes"]:
        lines.append(f"  {note}")
    if res["data_dir_mb"]:
        lines.append("  data folder per server after the run (cards or cache, index, "
                     "history): " + ", ".join(f"{mb:.0f} MB" for mb in res["data_dir_mb"])
                     + f"; first listing of every book on every server {res['fill_s']:.1f}s")
    before, after = res["load"]
    lines.append(f"  load average (uptime) at the start / end of the window: "
                 f"{' '.join(f'{x:.2f}' for x in before)} / "
                 f"{' '.join(f'{x:.2f}' for x in after)}")
    per_client = res["per_client"]
    if per_client:
        lines.append(f"  requests per client in the window: fewest {per_client[0]}, median "
                     f"{per_client[len(per_client) // 2]}, most {per_client[-1]}")
    busy = [c / res["seconds"] for c in res["client_cpu_s"]]
    if busy and max(busy) > 0.85:
        lines.append(f"  WARNING: a client process used {max(busy):.2f} of a core: the "
                     "client may be the bottleneck; raise --client-procs")
    lines.append(f"  {'operation':<9} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
                 f" {'mean ms':>8} {'max ms':>8} {'errors':>6}")
    for name in (*OPS, "all"):
        stats = res.get(name)
        errs = res["errors"] if name == "all" else res["errors_by_op"].get(name, 0)
        if stats:
            lines.append(f"  {name:<9} {stats['n']:>7} {stats['p50']:>8.2f} "
                         f"{stats['p95']:>8.2f} {stats['p99']:>8.2f} {stats['mean']:>8.2f} "
                         f"{stats['max']:>8.1f} {errs:>6}")
    if res["first_errors"]:
        lines.append(f"  first errors: {res['first_errors']}")
    if not res["alive"]:
        lines.append(f"  the server DIED during the run: {tail(Path(res['log']), 10)}")
    return "\n".join(lines)


def goal_rows(results: list[dict[str, Any]], args: argparse.Namespace
              ) -> list[tuple[str, dict[str, str], str]]:
    by = {r["label"]: r for r in results}
    values = {}
    for label, r in by.items():
        if "all" in r:
            values[("mix_p99", label)] = r["all"]["p99"]
        values[("mix_cores", label)] = r["cores"]
    rows = goals.rows_for((goals.MIX_P99, goals.MIX_CORES), values, 0, list(by))
    rows.insert(0, ("requests per second", {lb: f"{r['rps']:.1f}" for lb, r in by.items()},
                    "(figure)"))
    rows.insert(1, ("requests per CPU-second (per core)",
                    {lb: f"{r['per_cpu_s']:.1f}" if r["per_cpu_s"] else "-"
                     for lb, r in by.items()}, "(figure)"))
    # A p99 says nothing of the clients that got no answer in the window at all.
    rows.append(("every client answered (fewest requests of one client > 0)",
                 {lb: str(r["per_client"][0]) if r["per_client"] else "-"
                  for lb, r in by.items()},
                 "not measured" if not by.get("cardfile", {}).get("per_client")
                 else "met" if by["cardfile"]["per_client"][0] > 0 else "NOT MET"))
    rows.append(("errors", {lb: str(r["errors"]) for lb, r in by.items()},
                 "not measured" if "cardfile" not in by
                 else "met" if by["cardfile"]["errors"] == 0 else "NOT MET"))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100, help="users, one book each (100)")
    p.add_argument("--cards", type=int, default=1000, help="cards per book (1000)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    p.add_argument("--seconds", type=float, default=60, help="measured seconds (60)")
    p.add_argument("--warmup", type=float, default=3, help="mix seconds not counted (3)")
    p.add_argument("--client-procs", type=int, default=2,
                   help="client processes the threads are spread over (2)")
    p.add_argument("--login-rounds", type=int, default=6,
                   help="fresh connections each user logs in on before the run (6)")
    p.add_argument("--servers", default=",".join(LABELS),
                   help=f"comma-separated, from {','.join(MIX_LABELS)} (default "
                        f"{','.join(LABELS)})")
    p.add_argument("--seed", type=int, default=42, help="data seed (42)")
    p.add_argument("--yardstick", type=Path, default=find_yardstick())
    p.add_argument("--start-timeout", type=float, default=900)
    p.add_argument("--keep", action="store_true", help="keep the temporary folders")
    a = p.parse_args(argv)
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    a.password = secrets.token_urlsafe(18)
    if not a.servers or set(a.servers) - set(MIX_LABELS):
        p.error(f"--servers: choose from {','.join(MIX_LABELS)}")
    if min(a.users, a.cards, a.clients, a.client_procs) < 1 or a.seconds <= 0:
        p.error("--users, --cards, --clients, --client-procs and --seconds must be positive")
    return a


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    script = args.yardstick / "carddav_bench.py" if args.yardstick.is_dir() else args.yardstick
    base = Path(tempfile.mkdtemp(prefix="cardfile-mix-"))
    results = []
    status = 0
    try:
        vcards = base / "vcards"
        subprocess.run([sys.executable, str(script), "--write-vcards", str(vcards), "-n",
                        str(args.cards), "--seed", str(args.seed)], cwd=script.parent,
                       check=True)
        for label in args.servers:
            res = run_server(label, args, base, vcards)
            print(report(res, args), file=sys.stderr)
            results.append(res)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        status = 130
    except (BenchError, subprocess.CalledProcessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    if results:
        print(f"\n{args.clients} clients, {args.users} users x {args.cards} cards, "
              f"{args.seconds:.0f}s measured after {args.warmup:.0f}s warm-up; "
              f"{os.cpu_count()} cores on this machine")
        for res in results:
            print(report(res, args))
        print()
        print(goals.render(goal_rows(results, args), [r["label"] for r in results]))
        if any(r["errors"] or not r["alive"] for r in results):
            status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
