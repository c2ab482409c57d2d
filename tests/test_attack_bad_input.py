"""Bad input gets a quick 4xx with a one-line reason, never a 5xx; logs stay honest.

Each request here once reached code that failed with a 500 (a NUL in a
Basic user name reached the file system, a negative Content-Length reached
``read()``, ``..`` as a book name reached an assertion in Radicale's path
code, a cursor's huge integer or lone surrogate reached SQLite) or that
guessed. And a client's newline or escape sequence, in the path, the user
name or the User-Agent, must not start a forged line in the server's log.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.conftest import PASSWORD, USER, ServerProcess, start_server
from tests.rawhttp import Answer, basic, request

ALICE = basic(USER, PASSWORD)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory,
        module_store_config: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("bad-input"), store_config=module_store_config)
    try:
        assert request(server.port, "PROPFIND", f"/{USER}/", ALICE + b"Depth: 1\r\n"
                       ).status == 207  # her address book exists
        yield server
    finally:
        server.stop()


def _cursor(*values: object) -> str:
    raw = json.dumps(["name", *values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _auth(raw: bytes) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(raw) + b"\r\n"


# (method, target, extra header lines, body)
CASES: dict[str, tuple[str, str, bytes, bytes]] = {
    "NUL in user name": ("PROPFIND", "/alice/", _auth(b"al\x00ice:" + PASSWORD.encode()), b""),
    "NUL in user name (API)": ("GET", "/api/", _auth(b"al\x00ice:x"), b""),
    "escape in user name": ("GET", "/alice/", _auth(b"al\x1bice:x"), b""),
    "newline in user name": ("GET", "/alice/", _auth(b"al\nice:x"), b""),
    "slash in user name": ("GET", "/alice/", _auth(b"al/ice:x"), b""),
    "NUL in password": ("GET", "/alice/", _auth(b"alice:pass\x00word"), b""),
    "not base64": ("GET", "/alice/", b"Authorization: Basic !!not*base64\r\n", b""),
    "not base64 (API)": ("GET", "/api/", b"Authorization: Basic !!not*base64\r\n", b""),
    "no colon": ("GET", "/alice/", _auth(b"alice"), b""),
    "book . (CardDAV)": ("PROPFIND", "/alice/./", ALICE + b"Depth: 0\r\n", b""),
    "book .. (CardDAV)": ("PROPFIND", "/alice/../", ALICE + b"Depth: 0\r\n", b""),
    "MKCOL %2e%2e": ("MKCOL", "/alice/%2e%2e/", ALICE, b""),
    "PUT through ..": ("PUT", "/alice/../x.vcf", ALICE + b"Content-Length: 0\r\n", b""),
    "API book .": ("GET", "/api/books/./contacts", ALICE, b""),
    "API book ..": ("GET", "/api/books/../contacts", ALICE, b""),
    "API book %2e%2e": ("GET", "/api/books/%2e%2e", ALICE, b""),
    "API contact id ..": ("GET", "/api/books/contacts/contacts/..", ALICE, b""),
    "cursor huge integer": ("GET", "/api/books/contacts/contacts?cursor="
                            + _cursor(10 ** 30, "a.vcf"), ALICE, b""),
    "cursor very long integer": ("GET", "/api/books/contacts/contacts?cursor=" + _raw_cursor(
        '["name",' + "9" * 6000 + ',"a.vcf"]'), ALICE, b""),
    "cursor lone surrogate": ("GET", "/api/books/contacts/contacts?cursor="
                              + _cursor("\ud800", "a.vcf"), ALICE, b""),
    "path not UTF-8": ("GET", "/alice/%ff%fe/", ALICE, b""),
    "path not UTF-8 (PUT)": ("PUT", "/alice/contacts/%c3%28.vcf",
                             ALICE + b"Content-Length: 0\r\n", b""),
    "path not UTF-8 (API)": ("GET", "/api/books/%ff/contacts", ALICE, b""),
    "Content-Length not a number": ("PUT", "/alice/contacts/x.vcf",
                                    ALICE + b"Content-Length: abc\r\n", b""),
    "Content-Length negative (PUT)": ("PUT", "/alice/contacts/x.vcf",
                                      ALICE + b"Content-Length: -5\r\n", b""),
    "Content-Length negative (PROPFIND)": ("PROPFIND", "/alice/",
                                           ALICE + b"Content-Length: -5\r\n", b""),
    "Content-Length negative (API)": ("POST", "/api/books/contacts/contacts",
                                      ALICE + b"Content-Length: -5\r\n", b""),
    "Content-Length 6000 digits": ("PUT", "/alice/contacts/x.vcf",
                                   ALICE + b"Content-Length: " + b"9" * 6000 + b"\r\n", b""),
}


#: Requests whose framing is broken: the HTTP server (Granian) refuses them with
#: "400 Bad Request" before any application code runs, so no reason text follows.
FRAMING = {name for name in CASES if name.startswith("Content-Length")}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_quick_4xx_with_one_line(srv: ServerProcess, name: str) -> None:
    method, target, headers, body = CASES[name]
    answer = request(srv.port, method, target, headers, body, timeout=10)
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.seconds < 3.0
    text = answer.body.decode("utf-8")
    if name in FRAMING and answer.status == 400 and not text:
        return  # the status line is the reason: the request cannot be read at all
    if answer.headers.get("content-type", "").startswith("application/problem+json"):
        text = json.loads(text)["detail"]
    assert text.strip() and "\n" not in text.strip(), text
    assert "Traceback" not in text and "Exception" not in text


def test_nothing_was_written_by_the_bad_requests(srv: ServerProcess) -> None:
    book = srv.book_dir()
    assert not any(p.suffix == ".vcf" for p in book.iterdir())
    assert not (srv.data_dir / "collection-root" / "x.vcf").exists()


def _forging_requests(srv: ServerProcess) -> list[Answer]:
    return [
        request(srv.port, "GET", "/alice/%0aFORGED-PATH%0d%0aFORGED-CR", ALICE),
        request(srv.port, "GET", "/alice/", _auth(b"eve\nFORGED-USER:x")),
        request(srv.port, "GET", "/alice/", basic("eve\u2028FORGED-SEP", "x")),
        request(srv.port, "GET", "/alice/", ALICE
                + b"User-Agent: ua\x1b[2J\x85\x07FORGED-AGENT\r\n"),
        request(srv.port, "PROPFIND", "/alice/%0aFORGED-RADICALE",
                ALICE + b"Depth: 0\r\n"),
        request(srv.port, "PUT", "/alice/contacts/%0aFORGED-PUT.vcf",
                ALICE + b"Content-Type: text/vcard\r\nContent-Length: 9\r\n", b"not a card"[:9]),
    ]


def test_client_data_cannot_forge_log_lines(srv: ServerProcess) -> None:
    answers = _forging_requests(srv)
    assert all(a.status < 500 for a in answers), [a.status for a in answers]
    log = srv.log()
    assert "\x1b" not in log and "\x07" not in log and "\x85" not in log
    assert "\u2028" not in log
    for line in log.splitlines():
        if "FORGED" in line:
            # Only inside a real, timestamped line (or an indented traceback line).
            assert line.startswith(("[", "    ")), f"forged log line: {line!r}"
            assert not line.lstrip().startswith("FORGED")
    assert "\\nFORGED-PATH" in log and "\\nFORGED-USER" in log
