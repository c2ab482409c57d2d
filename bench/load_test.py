#!/usr/bin/env python3
"""Many clients writing one address book at once, while ``cardfile import`` writes too.

Every client thread runs a random mix of GET, conditional PUT (create with
``If-None-Match: *``, update with ``If-Match``), conditional DELETE,
``addressbook-query``, ``sync-collection`` and PROPFIND on a small shared set
of cards, so writes collide all the time. Meanwhile ``cardfile import`` of a
generated file runs again and again into the same book.

Because every write is conditional and every card text is unique, the
acknowledged writes to one card must form a single chain (absent -> etag1 ->
etag2 -> ... -> absent -> ...): two acknowledged writes made from the same
etag would be a lost update. Afterwards it checks that

- every file in the book parses as one vCard;
- the index matches the files exactly (PROPFIND hrefs and etags against
  the SHA-256 of every file on disk);
- each card's chain is whole and its end is what is on disk, with the
  content of the write that made it (every acknowledged write is present
  unless a later acknowledged write or delete replaced it);
- every GET served text whose SHA-256 is the etag it was served with;
- every imported card is present;

and prints requests per second, answers by status and the verdict.

    python bench/load_test.py --seconds 300 --clients 32
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

DAV, CARDDAV = "DAV:", "urn:ietf:params:xml:ns:carddav"
USER, PASSWORD = "loadtest", "load test password"


# -- a small client ------------------------------------------------------------------
class Client:
    """One HTTP request per connection, as Radicale's server speaks HTTP/1.0-style."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 120) -> None:
        host, _, port = url.split("://", 1)[1].rstrip("/").partition(":")
        self.host, self.port = host, int(port or 80)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.timeout = timeout

    def request(self, method: str, path: str, body: str | bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body.encode() if isinstance(body, str) else body,
                         headers={"Authorization": self.auth, "User-Agent": "cardfile-load",
                                  **(headers or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def etag_of(text: str) -> str:
    return '"' + hashlib.sha256(text.encode()).hexdigest() + '"'


def vcard(uid: str, name: str, marker: str, email: str | None = None) -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{name}",
             f"N:{name.split()[-1]};{name.split()[0]};;;", f"NOTE:marker {marker}"]
    if email:
        lines.append(f"EMAIL:{email}")
    return "\r\n".join(lines + ["END:VCARD"]) + "\r\n"


def propfind_etags(client: Client, book: str) -> dict[str, str]:
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop>'
            '</D:propfind>')
    status, _, text = client.request("PROPFIND", book, body, {"Depth": "1"})
    if status != 207:
        raise RuntimeError(f"PROPFIND {book} answered {status}: {text[:200]!r}")
    found = {}
    for response in ET.fromstring(text).iter(f"{{{DAV}}}response"):
        href = unquote(response.findtext(f"{{{DAV}}}href") or "")
        etag = response.findtext(f".//{{{DAV}}}getetag")
        if etag and not href.endswith("/"):
            found[href.rsplit("/", 1)[1]] = etag
    return found


def disk_etags(book_dir: Path) -> tuple[dict[str, str], list[str]]:
    """name -> etag of every card file, and the names of files that do not parse."""
    from cardfile.plugin.contacts.card_check import parse_single_card
    from cardfile.plugin.refused import Refused
    etags, broken = {}, []
    for path in sorted(book_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8-sig")
            parse_single_card(text)
        except (UnicodeDecodeError, Refused) as e:
            broken.append(f"{path.name}: {e}")
            continue
        etags[path.name] = etag_of(text)
    return etags, broken


# -- the workload --------------------------------------------------------------------
@dataclass
class Write:
    href: str
    before: str | None  # the etag it was conditional on; None = "absent" (create)
    after: str | None   # the etag it produced; None = deleted
    marker: str


@dataclass
class Report:
    seconds: float = 0.0
    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)
    import_runs: int = 0
    import_failures: list[str] = field(default_factory=list)
    imported: int = 0
    writes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.exceptions and not self.import_failures

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        verdict = "CONSISTENT" if self.ok else "INCONSISTENT: " + "; ".join(
            self.problems[:10] + [f"{k} x{v}" for k, v in self.exceptions.items()]
            + self.import_failures[:3])
        return (f"load: {self.requests} requests in {self.seconds:.1f} s = {rate:.0f} req/s; "
                f"by status {dict(sorted(self.by_status.items()))}; If-Match conflicts "
                f"answered 412: {self.conflicts}; acknowledged writes: {self.writes}; "
                f"import runs: {self.import_runs} ({self.imported} cards); "
                f"client exceptions: {sum(self.exceptions.values())}; verdict: {verdict}")


class Workload:
    def __init__(self, client: Client, book: str, clients: int, seed: int) -> None:
        self.client = client
        self.book = book
        self.clients = clients
        self.hrefs = [f"load-{k}.vcf" for k in range(max(8, clients * 3))]
        self.seed = seed
        self.lock = threading.Lock()
        self.writes: list[Write] = []
        self.served: list[tuple[str, str]] = []  # (href, etag) of every GET 200
        self.report = Report()

    def _count(self, status: int) -> None:
        with self.lock:
            self.report.requests += 1
            self.report.by_status[str(status)] += 1
            if status == 412:
                self.report.conflicts += 1

    def run_client(self, tid: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + tid)
        known: dict[str, str | None] = {}
        sync_token = ""
        n = 0
        while time.monotonic() < deadline:
            n += 1
            href = rng.choice(self.hrefs)
            path = self.book + href
            op = rng.random()
            try:
                if op < 0.25 or href not in known:
                    status, headers, body = self.client.request("GET", path)
                    self._count(status)
                    if status == 200:
                        text = body.decode("utf-8")
                        etag = headers.get("etag", "")
                        if etag_of(text) != etag:
                            self._problem(f"GET {href}: body does not match etag {etag}")
                        known[href] = etag
                        with self.lock:
                            self.served.append((href, etag))
                    elif status == 404:
                        known[href] = None
                    else:
                        self._problem(f"GET {href} answered {status}")
                elif op < 0.60:
                    self._put(href, path, known, f"t{tid}-{n}")
                elif op < 0.70:
                    self._delete(href, path, known)
                elif op < 0.80:
                    query = ('<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
                             f'xmlns:C="{CARDDAV}"><D:prop><D:getetag/></D:prop><C:filter>'
                             '<C:prop-filter name="NOTE"><C:text-match match-type="contains">'
                             f't{rng.randrange(self.clients)}-</C:text-match></C:prop-filter>'
                             '</C:filter></C:addressbook-query>')
                    status, _, _ = self.client.request("REPORT", self.book, query,
                                                       {"Depth": "1"})
                    self._count(status)
                    if status != 207:
                        self._problem(f"addressbook-query answered {status}")
                elif op < 0.92:
                    body = ('<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
                            f'<D:sync-token>{sync_token}</D:sync-token><D:sync-level>1'
                            '</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>')
                    status, _, text = self.client.request("REPORT", self.book, body,
                                                          {"Depth": "1"})
                    self._count(status)
                    if status == 207:
                        match = re.search(rb"<[^>]*sync-token>([^<]+)<", text)
                        sync_token = match.group(1).decode() if match else ""
                    else:
                        self._problem(f"sync-collection answered {status}")
                else:
                    status, _, _ = self.client.request(
                        "PROPFIND", self.book, '<?xml version="1.0"?><D:propfind '
                        'xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
                        {"Depth": "1"})
                    self._count(status)
                    if status != 207:
                        self._problem(f"PROPFIND answered {status}")
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.report.exceptions[type(e).__name__] += 1

    def _put(self, href: str, path: str, known: dict[str, str | None], marker: str) -> None:
        before = known.get(href)
        text = vcard(href.removesuffix(".vcf"), f"Load Person{marker.replace('-', 'x')}",
                     marker)
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        headers["If-Match" if before else "If-None-Match"] = before or "*"
        status, response, _ = self.client.request("PUT", path, text, headers)
        self._count(status)
        if status in (200, 201, 204):
            after = response.get("etag")
            if not after:
                self._problem(f"PUT {href} answered {status} without an ETag")
                return
            with self.lock:
                self.writes.append(Write(href, before, after, marker))
            known[href] = after
        elif status == 412:
            known.pop(href, None)  # read it again before the next write
        else:
            self._problem(f"PUT {href} answered {status}")

    def _delete(self, href: str, path: str, known: dict[str, str | None]) -> None:
        before = known.get(href)
        if not before:
            return
        status, _, _ = self.client.request("DELETE", path, headers={"If-Match": before})
        self._count(status)
        if status in (200, 204):
            with self.lock:
                self.writes.append(Write(href, before, None, ""))
            known[href] = None
        elif status in (404, 412):
            known.pop(href, None)
        else:
            self._problem(f"DELETE {href} answered {status}")

    def _problem(self, text: str) -> None:
        with self.lock:
            self.report.problems.append(text)

    # -- checks --------------------------------------------------------------------
    def expected_state(self) -> dict[str, tuple[str, str] | None]:
        """href -> (etag, marker) or None (absent), from the chains of writes."""
        expected: dict[str, tuple[str, str] | None] = {}
        by_href: dict[str, list[Write]] = {}
        for w in self.writes:
            by_href.setdefault(w.href, []).append(w)
        for href, writes in by_href.items():
            successors: dict[str, Write] = {}
            for w in writes:
                if w.before is None:
                    continue
                if w.before in successors:
                    self._problem(f"lost update on {href}: two acknowledged writes were made "
                                  f"from etag {w.before}")
                successors[w.before] = w
            ends: list[Write] = []
            visited = 0
            for start in (w for w in writes if w.before is None):
                current, visited = start, visited + 1
                while current.after is not None and current.after in successors:
                    current = successors[current.after]
                    visited += 1
                if current.after is not None:
                    ends.append(current)
            if visited != len(writes):
                self._problem(f"{href}: {len(writes) - visited} acknowledged write(s) do not "
                              "follow from an acknowledged state")
            if len(ends) > 1:
                self._problem(f"{href}: {len(ends)} acknowledged versions claim to be current")
            expected[href] = (ends[-1].after or "", ends[-1].marker) if ends else None
        return expected


def run_imports(cli: list[str], data_dir: Path, user: str, source: Path, deadline: float,
                report: Report, config: Path | None = None) -> None:
    options = ["--config", str(config)] if config is not None else []
    while time.monotonic() < deadline or report.import_runs == 0:
        result = subprocess.run([*cli, "import", str(source), "--user", user, "--data-dir",
                                 str(data_dir), "--json", *options], capture_output=True,
                                text=True, timeout=600)
        report.import_runs += 1
        if result.returncode != 0:
            report.import_failures.append(result.stderr.strip()[-300:])
            return
        if report.import_runs >= 50:
            return


def run(url: str, data_dir: Path, cli: list[str], seconds: float, clients: int,
        import_cards: int, seed: int = 1, user: str = USER,
        password: str = PASSWORD, config: Path | None = None) -> Report:
    """Run the load, then every check; returns the report (see ``Report.summary``).

    ``config``: the server's configuration file, which the imports then use too
    (its store: with PostgreSQL the imports must reach the database).
    """
    client = Client(url, user, password)
    book = f"/{user}/contacts/"
    status, _, _ = client.request("PROPFIND", f"/{user}/", None, {"Depth": "1"})
    if status != 207:
        raise RuntimeError(f"cannot log in as {user}: {status}")
    work = Workload(client, book, clients, seed)
    source = data_dir.parent / f"load-import-{seed}.vcf"
    source.write_text("".join(vcard(f"imp-{i}", f"Imported Person{i}", f"imp-{i}",
                                    f"imported{i}@example.net") for i in range(import_cards)))
    started = time.monotonic()
    deadline = started + seconds
    threads = [threading.Thread(target=work.run_client, args=(t, deadline))
               for t in range(clients)]
    threads.append(threading.Thread(target=run_imports, args=(
        cli, data_dir, user, source, deadline, work.report, config)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = work.report
    report.seconds = time.monotonic() - started
    report.writes = len(work.writes)
    check(work, client, data_dir / "collection-root" / user / "contacts", import_cards)
    return report


def check(work: Workload, client: Client, book_dir: Path, import_cards: int) -> None:
    report = work.report
    # The listing first: with PostgreSQL it brings the server's copy (the folder) up to date.
    listed = propfind_etags(client, work.book)
    on_disk, broken = disk_etags(book_dir)
    report.problems += [f"unparseable file {b}" for b in broken]
    if listed != on_disk:
        diff = sorted(set(listed.items()) ^ set(on_disk.items()))[:5]
        report.problems.append(f"index and files differ: {diff}")
    for href, state in work.expected_state().items():
        if state is None:
            if href in on_disk:
                report.problems.append(f"{href}: deleted (acknowledged) but on disk")
            continue
        etag, marker = state
        if on_disk.get(href) != etag:
            report.problems.append(f"{href}: acknowledged {etag}, on disk {on_disk.get(href)}")
            continue
        text = (book_dir / href).read_text(encoding="utf-8-sig")
        if f"marker {marker}" not in text:
            report.problems.append(f"{href}: content of write {marker} missing")
    produced = {(w.href, w.after) for w in work.writes if w.after}
    unknown = [(h, e) for h, e in work.served if (h, e) not in produced]
    if unknown:
        report.problems.append(f"{len(unknown)} GET(s) served a version no write produced: "
                               f"{unknown[:3]}")
    texts = [p.read_text(encoding="utf-8-sig") for p in book_dir.iterdir()
             if p.is_file() and not p.name.startswith(".")]
    imported = {m.group(1) for t in texts for m in [re.search(r"UID:(imp-\d+)", t)] if m}
    report.imported = len(imported)
    if not report.import_failures and len(imported) != import_cards:
        report.problems.append(f"{import_cards - len(imported)} imported card(s) missing")


# -- standalone -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cardfile_cli() -> list[str]:
    exe = shutil.which("cardfile")
    return [exe] if exe else [sys.executable, "-m", "cardfile.cli.main"]


@contextmanager
def serving(data_dir: Path, cli: list[str], port: int, log: Path) -> Iterator[str]:
    """``cardfile serve`` on ``port`` until the block ends (SIGTERM, then wait)."""
    with open(log, "w") as out:
        process = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir",
                                    str(data_dir)], stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the server did not start listening")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--import-cards", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the data folder.")
    args = parser.parse_args()
    cli = cardfile_cli()
    work = Path(tempfile.mkdtemp(prefix="cardfile-load-"))
    data_dir = work / "data"
    subprocess.run([*cli, "user", "add", USER, "--password-stdin", "--data-dir",
                    str(data_dir)], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    try:
        with serving(data_dir, cli, free_port(), work / "server.log") as url:
            report = run(url, data_dir, cli, args.seconds, args.clients, args.import_cards,
                         args.seed)
        print(report.summary())
        print(json.dumps({"requests": report.requests, "seconds": round(report.seconds, 1),
                          "by_status": report.by_status, "conflicts": report.conflicts,
                          "writes": report.writes, "ok": report.ok}))
        return 0 if report.ok else 1
    finally:
        if args.keep:
            print(f"data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
