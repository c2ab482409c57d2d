"""Idle and slow clients cannot hold up other users (slowloris).

Radicale's loop took at most 8 connections and gave each read 30 s, so a
few clients that connect and say nothing (or one header line every few
seconds) froze the server for everyone. Now (Granian, ``cli/server.py``)
connections wait in Rust and hold no Python thread, so many such
connections leave normal requests answered at once; a request's line and
headers must all arrive within ``request_timeout`` (10 s by default, a total
deadline) or the connection is closed; and a body shorter than its
Content-Length is refused after ``body_timeout`` (5 s) of silence, while a
stranger's stalled body is never waited for. The shipped defaults are what
is tested.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.davclient import card
from tests.rawhttp import basic, connect, read_answer, request
from tests.test_serve import _children

ATTACKERS = 40


@pytest.fixture
def srv(tmp_path: Path, store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path, store_config=store_config)
    try:
        yield server
    finally:
        server.stop()


def _open_attackers(port: int) -> list[socket.socket]:
    """Half say nothing at all; half send part of a request and stop."""
    sockets = []
    for n in range(ATTACKERS):
        sock = connect(port, timeout=30)
        if n % 2:
            sock.sendall(b"GET /alice/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(sock)
    return sockets


def _trickle(sock: socket.socket, stop: threading.Event, closed_after: list[float]) -> None:
    """One header line every 2 s until the server hangs up."""
    started = time.monotonic()
    try:
        sock.sendall(b"GET /alice/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.wait(2.0):
            sock.sendall(b"X-Trickle: a\r\n")
            sock.setblocking(False)
            try:
                sock.recv(65536)
                break  # the server answered (408) or closed
            except BlockingIOError:
                pass  # still listening
            finally:
                sock.setblocking(True)
    except OSError:
        pass  # the server closed the connection
    closed_after.append(time.monotonic() - started)


def test_idle_and_slow_connections_do_not_hold_up_normal_requests(
        srv: ServerProcess) -> None:
    client = srv.client()
    status, _, _ = client.request("PUT", f"/{USER}/contacts/a.vcf",
                                  card("a", "Ann Lee").encode(),
                                  {"Content-Type": "text/vcard"})
    assert status == 201
    attackers = _open_attackers(srv.port)
    stop = threading.Event()
    closed_after: list[float] = []
    trickler = threading.Thread(target=_trickle, args=(connect(srv.port, timeout=30), stop,
                                                       closed_after))
    trickler.start()
    try:
        time.sleep(0.5)  # every attacker is connected and waiting
        for _ in range(5):
            answer = request(srv.port, "GET", f"/{USER}/contacts/a.vcf",
                             basic(USER, PASSWORD), timeout=10)
            assert answer.status == 200 and b"Ann Lee" in answer.body
            assert answer.seconds < 1.0, f"answered in {answer.seconds:.1f} s under attack"
    finally:
        stop.set()
        trickler.join(timeout=30)
        for sock in attackers:
            sock.close()


def test_request_deadline_is_total_and_closes_half_sent_and_trickling_requests(
        srv: ServerProcess) -> None:
    half_sent = connect(srv.port, timeout=30)
    half_sent.sendall(b"GET /alice/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    stop = threading.Event()
    closed_after: list[float] = []
    trickler = threading.Thread(target=_trickle, args=(connect(srv.port, timeout=30), stop,
                                                       closed_after))
    started = time.monotonic()
    trickler.start()
    try:
        assert half_sent.recv(65536) == b"", "a half-sent request got an answer"
        assert time.monotonic() - started < 15, "a half-sent request outlived the 10 s deadline"
        trickler.join(timeout=20)
        assert closed_after and closed_after[0] < 15, \
            "a client trickling a header line every 2 s was never cut off"
    finally:
        stop.set()
        trickler.join(timeout=30)
        half_sent.close()


def test_stalled_bodies_hold_up_no_one_and_a_strangers_is_not_waited_for(
        srv: ServerProcess) -> None:
    stalled = []
    for n in range(30):  # more than the server answers at once
        sock = connect(srv.port, timeout=30)
        sock.sendall(f"PUT /{USER}/contacts/s{n}.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                     + basic(USER, PASSWORD)
                     + b"Content-Type: text/vcard\r\nContent-Length: 500\r\n\r\nBEGIN:VCARD\r\n")
        stalled.append(sock)
    try:
        time.sleep(0.5)
        client = srv.client()
        started = time.monotonic()
        status, _, _ = client.request("PUT", f"/{USER}/contacts/ok.vcf",
                                      card("ok", "Olga Kay").encode(),
                                      {"Content-Type": "text/vcard"})
        assert status == 201
        assert time.monotonic() - started < 2.0, "a PUT waited behind stalled bodies"
        with connect(srv.port, timeout=30) as stranger:
            started = time.monotonic()
            stranger.sendall(f"PUT /{USER}/contacts/x.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             .encode() + basic(USER, "wrong password")
                             + b"Content-Length: 500\r\n\r\nBEGIN:VCARD\r\n")
            answer = read_answer(stranger, started)
        assert answer.status == 401
        assert answer.seconds < 4.0, "a stranger's stalled body was waited for"
    finally:
        for sock in stalled:
            sock.close()


def test_a_body_shorter_than_its_content_length_is_refused_quickly(
        srv: ServerProcess) -> None:
    with connect(srv.port, timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"PUT /alice/contacts/b.vcf HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + basic(USER, PASSWORD)
                     + b"Content-Type: text/vcard\r\nContent-Length: 500\r\n\r\nBEGIN:VCARD\r\n")
        answer = read_answer(sock, started)
    assert answer.status == 400
    assert b"shorter than its Content-Length" in answer.body
    assert b"all 500 bytes" in answer.body
    assert answer.seconds < 10, f"held for {answer.seconds:.0f} s"
    # The server is still answering, and wrote nothing.
    assert request(srv.port, "GET", f"/{USER}/contacts/b.vcf",
                   basic(USER, PASSWORD)).status == 404


def test_many_connections_at_once_are_all_served(srv: ServerProcess) -> None:
    """More simultaneous clients than Radicale's old limit of 8 are all answered."""
    idle = [connect(srv.port, timeout=30) for _ in range(20)]
    answers: list[int] = []

    def one() -> None:
        answers.append(request(srv.port, "GET", "/.web/icon.svg", timeout=10).status)

    try:
        workers = [threading.Thread(target=one) for _ in range(20)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=15)
    finally:
        for sock in idle:
            sock.close()
    assert answers == [200] * 20


def test_idle_keep_alive_connections_beyond_the_threads_hold_up_no_one(
        srv: ServerProcess) -> None:
    """Clients that made a request and keep their connection open, more of them than
    all the workers' threads, leave room for a new client: Granian counts open
    connections against its limit, and when that limit was the thread count a new
    client waited for the header deadline to close the idle ones (9 s)."""
    from cardfile.cli.server import MAX_AUTO_WORKERS, THREADS_AT_MOST

    count = MAX_AUTO_WORKERS * THREADS_AT_MOST + 40
    idle = [connect(srv.port, timeout=30) for _ in range(count)]
    try:
        for sock in idle:
            sock.sendall(b"GET /.web/icon.svg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses = {read_answer(sock, time.monotonic()).status for sock in idle[:5]}
        assert statuses == {200}
        time.sleep(0.5)  # every connection is open and idle
        answer = request(srv.port, "GET", f"/{USER}/contacts/", basic(USER, PASSWORD),
                         timeout=20)
        assert answer.status == 200
        assert answer.seconds < 2.0, f"a new client waited {answer.seconds:.1f} s"
    finally:
        for sock in idle:
            sock.close()


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server's workers), from /proc."""
    total, level = 0, [pid]
    while level:
        for one in level:
            status = Path(f"/proc/{one}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:"))
        level = [child for one in level for child in _children(one)]
    return total / 1024


def test_huge_request_heads_on_many_connections_cost_little_memory(
        srv: ServerProcess) -> None:
    """A head larger than a connection's read buffer is refused (431), and many
    connections each sending one cannot make the server buffer them all: with
    Granian's default buffer (408 KiB) and 4,096 connections per worker, 400
    such connections grew the server by 125 MB (``server.READ_BUFFER_BYTES``)."""
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 300_000
    with connect(srv.port, timeout=20) as sock:
        sock.sendall(big + b"\r\n\r\n")
        assert read_answer(sock, time.monotonic()).status == 431
    before = _tree_rss_mb(srv.process.pid)
    attackers = [connect(srv.port, timeout=30) for _ in range(400)]
    try:
        for sock in attackers:
            sock.setblocking(False)
            try:
                sock.send(big)  # as much as the socket takes, never the end of the head
            except (BlockingIOError, ConnectionError):
                pass
        time.sleep(2.0)
        grown = _tree_rss_mb(srv.process.pid) - before
        assert grown < 50, f"the server grew by {grown:.0f} MB"
        answer = request(srv.port, "GET", f"/{USER}/contacts/", basic(USER, PASSWORD),
                         timeout=20)
        assert answer.status == 200 and answer.seconds < 2.0
    finally:
        for sock in attackers:
            sock.close()


def test_tls_idle_clients_are_closed_by_the_deadline_and_hold_up_no_one(
        tmp_path: Path) -> None:
    """Over TLS too: clients that never finish their handshake, or never speak after it,
    hold up no one, and a stalled handshake is cut off."""
    import http.client
    import ssl

    from tests.test_security import PASSWORD as TLS_PASSWORD
    from tests.test_security import LaunchedServer, _data_dir, _self_signed

    cert, key = _self_signed(tmp_path)
    data, _ = _data_dir(tmp_path)
    server = LaunchedServer(data, "--tls-cert", str(cert), "--tls-key", str(key),
                            scheme="https")
    context = ssl.create_default_context(cafile=str(cert))
    auth = {"Depth": "0", "Authorization": basic(USER, TLS_PASSWORD).decode()
            .split(": ", 1)[1].strip()}

    def propfind() -> float:
        started = time.monotonic()
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                           timeout=10)
        try:
            conn.request("PROPFIND", f"/{USER}/", headers=auth)
            assert conn.getresponse().status == 207
        finally:
            conn.close()
        return time.monotonic() - started

    no_handshake: list[socket.socket] = []
    silent: list[ssl.SSLSocket] = []
    try:
        propfind()  # the login is checked (bcrypt) and cached before the clock matters
        started = time.monotonic()
        no_handshake = [connect(server.port, timeout=30) for _ in range(20)]
        silent = [context.wrap_socket(connect(server.port, timeout=30),
                                      server_hostname="localhost") for _ in range(20)]
        for _ in range(3):
            seconds = propfind()
            assert seconds < 1.0, f"answered in {seconds:.1f} s under attack"
        assert no_handshake[0].recv(1) == b""  # the server hung up on it
        assert time.monotonic() - started < 15, "a stalled handshake outlived the deadline"
    finally:
        for sock in [*no_handshake, *silent]:
            sock.close()
        server.stop()
