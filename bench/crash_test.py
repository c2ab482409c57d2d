#!/usr/bin/env python3
"""``kill -9`` the server (and ``cardfile import``) during bulk writes, again and again.

Writer threads create, update and delete cards they own, each write
conditional, and remember every acknowledged state. At a random moment the
server is killed with SIGKILL (in every other round a running
``cardfile import`` too), then started again on the same data folder. After
each restart:

- every card file parses (no partial card);
- the index matches the files exactly (PROPFIND hrefs and etags against the
  SHA-256 of every file on disk), so temporary files are never listed;
- every acknowledged write is there: each card is in its last acknowledged
  state, or in the state of the one write that was in flight at the kill
  (unacknowledged, so either outcome is allowed);

and at the end every card of the killed imports arrives when the import is
run again. Prints kills survived and what was lost (must be nothing).

    python bench/crash_test.py --kills 100 --writers 8
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    from bench import load_test as lt
except ImportError:  # run as a script: bench/ is on sys.path
    import load_test as lt  # type: ignore[no-redef]

USER, PASSWORD = lt.USER, lt.PASSWORD


@dataclass
class CrashReport:
    kills: int = 0
    import_kills: int = 0
    restarts_checked: int = 0
    writes: int = 0
    acknowledged: int = 0
    lost: int = 0
    partial_files: int = 0
    temp_files_left: int = 0
    index_mismatches: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.lost == 0 and self.partial_files == 0

    def summary(self) -> str:
        verdict = "NOTHING LOST" if self.ok else "FAILED: " + "; ".join(self.problems[:10])
        return (f"crash: {self.kills} server kills survived ({self.restarts_checked} "
                f"restarts checked), {self.import_kills} import kills; acknowledged writes: "
                f"{self.writes}, card states checked after restarts: {self.acknowledged}; "
                f"lost: {self.lost}; partial files: {self.partial_files}; index mismatches: "
                f"{self.index_mismatches}; temp files left on disk (never listed): "
                f"{self.temp_files_left}; verdict: {verdict}")


class Writers:
    """Threads that each own some cards and write them until the server dies."""

    def __init__(self, client: lt.Client, book: str, writers: int, per_writer: int) -> None:
        self.client = client
        self.book = book
        self.hrefs = [[f"w{t}-{j}.vcf" for j in range(per_writer)] for t in range(writers)]
        # href -> (etag, marker) of the last acknowledged state, None = absent.
        self.acked: dict[str, tuple[str, str] | None] = {
            h: None for group in self.hrefs for h in group}
        # href -> ("put", marker) / ("delete", "") in flight when the server died.
        self.inflight: dict[str, tuple[str, str]] = {}
        self.writes = 0
        self.problems: list[str] = []
        self.lock = threading.Lock()

    def run(self, tid: int, seed: int, stop: threading.Event) -> None:
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            n += 1
            href = rng.choice(self.hrefs[tid])
            state = self.acked[href]
            marker = f"{href}-{seed}-{n}"
            if state is not None and rng.random() < 0.2:
                op, headers, body = "delete", {"If-Match": state[0]}, None
            else:
                op = "put"
                headers = {"Content-Type": "text/vcard; charset=utf-8"}
                if state is None:
                    headers["If-None-Match"] = "*"
                else:
                    headers["If-Match"] = state[0]
                body = lt.vcard(href.removesuffix(".vcf"), f"Crash Person{n}", marker)
            self.inflight[href] = (op, marker)
            try:
                status, response, _ = self.client.request(
                    "DELETE" if op == "delete" else "PUT", self.book + href, body, headers)
            except OSError:
                return  # the server is gone: this write stays "in flight"
            if status in (200, 201, 204) and op == "put" and not response.get("etag"):
                # The server was killed while writing the headers (http.client takes
                # the connection's end as the end of the headers): the outcome is
                # unknown to the client, so this write stays "in flight".
                return
            del self.inflight[href]
            if status in (200, 201, 204):
                etag = response.get("etag", "")
                self.acked[href] = None if op == "delete" else (etag, marker)
                with self.lock:
                    self.writes += 1
            else:
                with self.lock:
                    self.problems.append(f"{op} {href} answered {status} (state drifted)")
                return

    def verify(self, on_disk: dict[str, str], book_dir: Path, report: CrashReport) -> None:
        """Compare the disk with what was acknowledged; adopt in-flight outcomes."""
        for href, state in self.acked.items():
            flight = self.inflight.pop(href, None)
            report.acknowledged += 1 if state is not None else 0
            text = (book_dir / href).read_text(encoding="utf-8-sig") if href in on_disk else ""
            if state is None and href not in on_disk:
                continue
            if state is not None and on_disk.get(href) == state[0] and (
                    f"marker {state[1]}" in text):
                continue
            if flight is not None:
                op, marker = flight
                if op == "delete" and href not in on_disk:
                    self.acked[href] = None
                    continue
                if op == "put" and f"marker {marker}" in text:
                    self.acked[href] = (on_disk[href], marker)
                    continue
            report.lost += 1
            report.problems.append(f"{href}: acknowledged {state}, found "
                                   f"{on_disk.get(href, 'nothing')}")


def _start(cli: list[str], data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = lt.free_port()
    with open(log, "a") as out:
        process = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir",
                                    str(data_dir)], stdout=out, stderr=subprocess.STDOUT)
    lt.wait_listening(port, process)
    return process, f"http://127.0.0.1:{port}"


def _check(client: lt.Client, writers: Writers, book_dir: Path, report: CrashReport) -> None:
    on_disk, broken = lt.disk_etags(book_dir)
    report.partial_files += len(broken)
    report.problems += [f"unparseable file after restart: {b}" for b in broken]
    listed = lt.propfind_etags(client, writers.book)
    if listed != on_disk:
        report.index_mismatches += 1
        diff = sorted(set(listed.items()) ^ set(on_disk.items()))[:5]
        report.problems.append(f"index and files differ after restart: {diff}")
    if any(name.startswith(".") for name in listed):
        report.problems.append("a temporary file is listed to clients")
    report.temp_files_left = sum(1 for p in book_dir.iterdir() if p.name.startswith(
        ".Radicale.tmp"))
    writers.verify(on_disk, book_dir, report)
    report.restarts_checked += 1


def run(data_dir: Path, cli: list[str], kills: int, writers: int = 4, per_writer: int = 20,
        seed: int = 1, import_cards: int = 200, log: Path | None = None) -> CrashReport:
    """Kill and restart ``kills`` times; ``data_dir`` must hold user ``USER``."""
    rng = random.Random(seed)
    report = CrashReport()
    log = log or data_dir.parent / "crash-server.log"
    book_dir = data_dir / "collection-root" / USER / "contacts"
    sources: list[Path] = []
    work: Writers | None = None
    for round_ in range(kills + 1):
        process, url = _start(cli, data_dir, log)
        client = lt.Client(url, USER, PASSWORD)
        answer = client.request("PROPFIND", f"/{USER}/", None, {"Depth": "1"})
        if answer[0] != 207:
            process.kill()  # a failed run leaves no server behind
            process.wait()
            raise RuntimeError(f"cannot log in after restart: {answer[0]} {answer[2][:200]!r}")
        if work is None:
            work = Writers(client, f"/{USER}/contacts/", writers, per_writer)
        else:
            work.client = client
            _check(client, work, book_dir, report)
        if round_ == kills:
            process.terminate()
            process.wait(timeout=60)
            break
        importer = None
        if round_ % 2 == 1:
            source = data_dir.parent / f"crash-import-{round_}.vcf"
            source.write_text("".join(lt.vcard(f"cimp-{round_}-{i}", f"Crash Imported{i}",
                                               f"cimp-{round_}-{i}",
                                               f"crash{round_}x{i}@example.net")
                                      for i in range(import_cards)))
            sources.append(source)
            importer = subprocess.Popen([*cli, "import", str(source), "--user", USER,
                                         "--data-dir", str(data_dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()
        threads = [threading.Thread(target=work.run, args=(t, seed * 10_000 + round_ * 100 + t,
                                                           stop)) for t in range(writers)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        report.kills += 1
        if importer is not None:
            if importer.poll() is None:
                os.kill(importer.pid, signal.SIGKILL)
                report.import_kills += 1
            importer.wait()
        stop.set()
        for t in threads:
            t.join(timeout=150)
    assert work is not None
    report.problems += work.problems
    report.writes = work.writes
    # Killed imports: run them again to the end; every card must arrive.
    for source in sources:
        subprocess.run([*cli, "import", str(source), "--user", USER, "--data-dir",
                        str(data_dir)], check=True, capture_output=True, timeout=600)
    uids = {m.group(1) for p in book_dir.iterdir() if p.is_file() and not p.name.startswith(".")
            for m in [re.search(r"^UID:(\S+)", p.read_text(encoding="utf-8-sig"), re.M)] if m}
    missing = sum(1 for s in sources for i in range(import_cards)
                  if f"cimp-{s.stem.rsplit('-', 1)[1]}-{i}" not in uids)
    if missing:
        report.problems.append(f"{missing} card(s) of killed imports missing after re-import")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--cards-per-writer", type=int, default=25)
    parser.add_argument("--import-cards", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the data folder.")
    args = parser.parse_args()
    cli = lt.cardfile_cli()
    work = Path(tempfile.mkdtemp(prefix="cardfile-crash-"))
    data_dir = work / "data"
    subprocess.run([*cli, "user", "add", USER, "--password-stdin", "--data-dir",
                    str(data_dir)], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    try:
        report = run(data_dir, cli, args.kills, args.writers, args.cards_per_writer,
                     args.seed, args.import_cards, work / "server.log")
        print(report.summary())
        return 0 if report.ok else 1
    finally:
        if args.keep:
            print(f"data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
