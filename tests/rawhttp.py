"""Raw HTTP over a socket, for requests no well-behaved client library sends.

The attack tests need bytes ``http.client`` refuses to write (a NUL in a
user name, a bad Content-Length, a body shorter than announced) and a
chosen source address (``127.0.0.2`` reaches a server on ``127.0.0.1``
through the loopback interface, so a test can be "another client").
"""

from __future__ import annotations

import base64
import socket
import time
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def basic(user: bytes | str, password: bytes | str) -> bytes:
    """An ``Authorization`` header line for these (possibly hostile) credentials."""
    raw = (user.encode() if isinstance(user, str) else user) + b":" + (
        password.encode() if isinstance(password, str) else password)
    return b"Authorization: Basic " + base64.b64encode(raw) + b"\r\n"


def connect(port: int, source: str = "127.0.0.1", timeout: float = 20.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_answer(sock: socket.socket, started: float) -> Answer:
    """One answer: its head, then Content-Length bytes of body (or all until the server closes).

    The server keeps connections open (keep-alive), so the end of an answer is
    where its Content-Length says, not where the connection ends.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1]) if lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"]) if "content-length" in headers else None
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(status, headers, body, time.monotonic() - started)


def request(port: int, method: str, target: str | bytes, headers: bytes = b"",
            body: bytes = b"", source: str = "127.0.0.1", timeout: float = 20.0) -> Answer:
    """Send one request exactly as given and read the whole answer."""
    path = target.encode() if isinstance(target, str) else target
    if b"connection:" not in headers.lower():
        headers += b"Connection: close\r\n"  # one request: the server may hang up after it
    data = (method.encode() + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + headers + b"\r\n" + body)
    with connect(port, source, timeout) as sock:
        started = time.monotonic()
        sock.sendall(data)
        return read_answer(sock, started)
