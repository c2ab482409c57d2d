"""``bench/floor.py``: the floor under the yardstick's GET, multiget and PUT figures.

The goal table's verdicts on GET and multiget only mean something next to
what the yardstick's client measures against a server that does nothing; this
runs that measurement end to end (Granian with ``cardfile serve``'s settings,
the yardstick's own client) and checks the server answered what it was given.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

BENCH = Path(__file__).resolve().parents[1] / "bench"
YARDSTICK = Path(__file__).resolve().parents[2] / "shared" / "bench" / "carddav_bench.py"


def test_the_floor_server_answers_its_canned_card_and_multistatus(tmp_path: Path) -> None:
    card = tmp_path / "card.vcf"
    card.write_bytes("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë\r\nEND:VCARD\r\n".encode())
    report = tmp_path / "report.xml"
    report.write_bytes(b'<?xml version="1.0"?><multistatus xmlns="DAV:"/>')
    with _bench_server("floor.py", str(card), str(report)) as connection:
        connection.request("GET", "/bench/book/x.vcf", headers={"Accept-Encoding": "gzip"})
        answer = connection.getresponse()
        assert answer.status == 200
        assert answer.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(answer.read()) == card.read_bytes()
        connection.request("REPORT", "/bench/book/", body=b"<x/>")
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (207, report.read_bytes())
        connection.request("PUT", "/bench/book/new.vcf", body=card.read_bytes(),
                           headers={"If-None-Match": "*", "Content-Type": "text/vcard"})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (201, b"")
        assert answer.getheader("ETag", "").startswith('"')


@pytest.mark.skipif(not YARDSTICK.is_file(),
                    reason=f"the shared yardstick is not at {YARDSTICK} (CI has it)")
def test_the_floor_is_measured_with_the_yardsticks_client() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "floor.py"), "--yardstick",
                           str(YARDSTICK), "--count", "50", "-n", "1000"],
                          cwd=BENCH, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[0])
    assert figures["get_p50_ms"] > 0 and figures["multiget_10_p50_ms"] > 0
    assert figures["put_p50_ms"] > 0
    assert "for the 100 multigets of 1,000 cards" in done.stdout
    assert "PUT of a new card p50" in done.stdout


@contextlib.contextmanager
def _bench_server(script: str, *serve_args: str) -> Iterator[http.client.HTTPConnection]:
    """``script --serve`` (``floor.py``, ``least_work.py``) on a free port: a connection
    to it once it accepts one; the server stopped after, and it must end cleanly."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(BENCH / script), "--serve", str(port),
                               *serve_args], cwd=BENCH)
    try:
        deadline = time.monotonic() + 30
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.connect()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.05)
        yield connection
        connection.close()
    finally:
        server.terminate()
        # Past Granian's workers_kill_timeout (30 s): now and then a worker does not
        # end at its SIGTERM and the master waits that long (3 of 450 stops here since
        # stop_forked_workers_while_loading in cli/server.py, 17 of 550 before).
        assert server.wait(timeout=45) == 0


def test_the_floor_stands_in_for_a_server_in_the_mix(tmp_path: Path) -> None:
    """With a folder of cards it lists them under any book and answers the mix's requests."""
    cards = tmp_path / "cards"
    cards.mkdir()
    names = ["b&b.vcf", "a.vcf", "c.vcf"]
    for name in names:
        (cards / name).write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nEND:VCARD\r\n")
    (tmp_path / "card.vcf").write_bytes((cards / "a.vcf").read_bytes())
    (tmp_path / "report.xml").write_bytes(b'<?xml version="1.0"?><multistatus xmlns="DAV:"/>')
    with _bench_server("floor.py", str(tmp_path / "card.vcf"), str(tmp_path / "report.xml"),
                       "--listing", str(cards)) as connection:
        connection.request("PROPFIND", "/u007/book/", headers={"Depth": "1"})
        answer = connection.getresponse()
        body = answer.read().decode()
        assert answer.status == 207
        hrefs = re.findall(r"<href>([^<]+)</href>", body)
        assert hrefs == ["/u007/book/", "/u007/book/a.vcf", "/u007/book/b&amp;b.vcf",
                         "/u007/book/c.vcf"]
        assert body.count("<getetag>") == len(names)
        connection.request("PROPFIND", "/u007/", headers={"Depth": "0"})
        answer = connection.getresponse()
        assert answer.status == 207 and "a.vcf" not in answer.read().decode()
        connection.request("REPORT", "/u007/book/", body=b"<D:sync-collection xmlns:D='DAV:'>"
                           b"<D:sync-token>x</D:sync-token></D:sync-collection>")
        answer = connection.getresponse()
        body = answer.read().decode()
        assert answer.status == 207 and "<sync-token>" in body and "<response>" not in body
        connection.request("PUT", "/u007/book/a.vcf", body=b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                           headers={"If-Match": '"1"', "Content-Type": "text/vcard"})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (204, b"")
        assert answer.getheader("ETag", "").startswith('"')


@pytest.mark.skipif(not YARDSTICK.is_file(),
                    reason=f"the shared yardstick is not at {YARDSTICK} (CI has it)")
def test_the_mix_runs_against_the_floor_without_an_error() -> None:
    """``mix_bench.py --servers floor``: every kind of request answered as the mix checks it."""
    done = subprocess.run([sys.executable, str(BENCH / "mix_bench.py"), "--servers", "floor",
                           "--yardstick", str(YARDSTICK), "--users", "2", "--cards", "30",
                           "--clients", "4", "--client-procs", "1", "--seconds", "2",
                           "--warmup", "0.5", "--login-rounds", "1"],
                          cwd=BENCH, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()
            if line.strip().split(" ")[0] in ("sync", "multiget", "get", "put")}
    assert set(rows) == {"sync", "multiget", "get", "put"}, done.stdout
    for op, cells in rows.items():
        assert int(cells[1]) > 0, f"no {op} was answered: {done.stdout}"
        assert cells[-1] == "0", f"{op} had errors: {done.stdout}"
    assert "floor: " in done.stdout and "; errors 0" in done.stdout


def test_the_least_work_server_answers_what_the_cards_hold(tmp_path: Path) -> None:
    """``least_work.py``: each card's own bytes and SHA-256 ETag, for the right login only."""
    cards = tmp_path / "cards"
    cards.mkdir()
    names = [f"card{i:02d}.vcf" for i in range(10)] + ["b&b.vcf"]
    for name in names:
        (cards / name).write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\n"
                                  "NOTE:<script>&amp;</script>\r\nEND:VCARD\r\n",
                                  encoding="utf-8", newline="")
    login = {"Authorization": "Basic " + base64.b64encode(b"bench:least-work").decode()}
    with _bench_server("least_work.py", str(cards)) as connection:
        connection.request("GET", "/bench/book/card03.vcf",
                           headers={"Authorization": "Basic " + base64.b64encode(
                               b"bench:wrong").decode()})
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (401, b"")
        connection.request("GET", "/bench/book/card03.vcf", headers=login)
        answer = connection.getresponse()
        sent = (cards / "card03.vcf").read_bytes()
        assert (answer.status, answer.read()) == (200, sent)
        assert answer.getheader("ETag") == f'"{hashlib.sha256(sent).hexdigest()}"'
        for missing in ("/bench/book/nobody.vcf", "/bench/book/../cards/card03.vcf"):
            connection.request("GET", missing, headers=login)
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (404, b"")
        asked = ["card01.vcf", "b%26b.vcf", "nobody.vcf", "card09.vcf"]
        hrefs = "".join(f"<D:href>/bench/book/{name}</D:href>" for name in asked)
        connection.request("REPORT", "/bench/book/", headers=login, body=(
            '<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
            f"<D:prop><D:getetag/><C:address-data/></D:prop>{hrefs}</C:addressbook-multiget>"
        ).encode())
        answer = connection.getresponse()
        assert answer.status == 207
        root = ET.fromstring(answer.read())
    found = {}
    for response in root.iter("{DAV:}response"):
        href = response.findtext("{DAV:}href", "")
        found[href] = (response.findtext(".//{DAV:}getetag"),
                       response.findtext(".//{urn:ietf:params:xml:ns:carddav}address-data"),
                       response.findtext(".//{DAV:}status"))
    assert list(found) == ["/bench/book/card01.vcf", "/bench/book/b%26b.vcf",
                           "/bench/book/nobody.vcf", "/bench/book/card09.vcf"]
    for href, name in (("/bench/book/card01.vcf", "card01.vcf"),
                       ("/bench/book/b%26b.vcf", "b&b.vcf"),
                       ("/bench/book/card09.vcf", "card09.vcf")):
        text = (cards / name).read_bytes()
        # (XML turns each CR LF into LF)
        assert found[href] == (f'"{hashlib.sha256(text).hexdigest()}"',
                               text.decode().replace("\r\n", "\n"), "HTTP/1.1 200 OK")
    assert found["/bench/book/nobody.vcf"] == (None, None, "HTTP/1.1 404 Not Found")


@pytest.mark.skipif(not YARDSTICK.is_file(),
                    reason=f"the shared yardstick is not at {YARDSTICK} (CI has it)")
def test_the_least_work_is_measured_with_the_yardsticks_client(tmp_path: Path) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    for i in range(40):
        (cards / f"c{i}.vcf").write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P {i}\r\n"
                                         "END:VCARD\r\n", newline="")
    done = subprocess.run([sys.executable, str(BENCH / "least_work.py"), "--yardstick",
                           str(YARDSTICK), "--cards", str(cards), "--count", "50", "-n", "1000"],
                          cwd=BENCH, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[0])
    assert figures["get_p50_ms"] > 0 and figures["multiget_10_p50_ms"] > 0
    assert "least work: " in done.stdout
    assert "for the 100 multigets of 1,000 cards" in done.stdout
