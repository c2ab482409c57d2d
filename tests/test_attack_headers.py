"""Attack: an API answer rendered, sniffed or framed as a page.

Every answer of the API is data: with ``X-Content-Type-Options: nosniff``,
``X-Frame-Options: DENY`` and ``Content-Security-Policy: default-src 'none';
frame-ancestors 'none'`` no browser runs, sniffs or frames it, whatever a
card put in it. The web page's own files carry nosniff, DENY and a CSP the
page works under (tests/test_web.py drives the page under it).
"""

from __future__ import annotations

import base64
import http.client

from tests.conftest import PASSWORD, USER, ServerProcess
from tests.davclient import DavClient, card

API_CSP = "default-src 'none'; frame-ancestors 'none'"


def fetch(server: ServerProcess, method: str, path: str, auth: bool = True,
          body: bytes | None = None, headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(
            f"{USER}:{PASSWORD}".encode()).decode()
    conn.request(method, path, body=body, headers=hdrs)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def test_every_api_answer_is_marked_as_data(server: ServerProcess, dav: DavClient) -> None:
    dav.put("h.vcf", card("h-1", "Header Person", "NOTE:<script>alert(1)</script>"))
    book = "/api/books/contacts"
    answers = [("GET", "/api/", True, None, {}), ("GET", "/api/", False, None, {}),
               ("GET", "/api/openapi.json", False, None, {}),
               ("GET", f"{book}/contacts/h-1", True, None, {}),
               ("GET", f"{book}/contacts/h-1", True, None, {"Accept": "text/vcard"}),
               ("GET", f"{book}/export", True, None, {}),
               ("GET", f"{book}/contacts/h-1/photo", True, None, {}),
               ("GET", "/api/nothing-here", True, None, {}),
               ("OPTIONS", f"{book}/contacts", True, None, {}),
               ("PUT", "/api/", True, None, {}),
               ("POST", f"{book}/import", True, b"x", {"Content-Type": "text/plain"}),
               ("POST", f"{book}/contacts", True, b"{}", {"Content-Type": "application/json",
                                                         "Origin": "http://evil.example"}),
               ("HEAD", f"{book}/contacts", True, None, {})]
    statuses = set()
    for method, path, auth, body, headers in answers:
        status, got = fetch(server, method, path, auth, body, headers)
        statuses.add(status)
        assert got.get("x-content-type-options") == "nosniff", (method, path)
        assert got.get("x-frame-options") == "DENY", (method, path)
        assert got.get("content-security-policy") == API_CSP, (method, path)
    assert {200, 204, 401, 403, 404, 405, 415} <= statuses


def test_the_page_files_carry_nosniff_deny_and_a_csp(server: ServerProcess) -> None:
    for path in ("/", "/.web/app.js", "/.web/style.css", "/.web/nope.js", "/index.html"):
        status, got = fetch(server, "GET", path, auth=False)
        assert got.get("x-content-type-options") == "nosniff", path
        assert got.get("x-frame-options") == "DENY", path
        csp = got.get("content-security-policy", "")
        for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                          "img-src 'self' blob: data:", "connect-src 'self'",
                          "frame-ancestors 'none'"):
            assert directive in csp, (path, directive)
