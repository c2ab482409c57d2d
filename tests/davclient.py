"""A tiny CardDAV client over the standard library, for the tests.

It builds the same request shapes contacts apps send (PROPFIND, PUT with
preconditions, addressbook-query, sync-collection, multiget) and parses the
multistatus answers into plain dicts, so tests read like what a user checks.
"""

from __future__ import annotations

import base64
import http.client
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

DAV = "DAV:"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
NS = {"D": DAV, "C": CARDDAV}


@dataclass
class Entry:
    href: str
    status: int
    etag: str | None
    data: str | None


def card(uid: str, fn: str, *lines: str, version: str = "3.0") -> str:
    body = "".join(line + "\r\n" for line in lines)
    return (f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{fn}\r\n"
            f"N:{fn.split()[-1]};{fn.split()[0]};;;\r\n{body}END:VCARD\r\n")


class DavClient:
    def __init__(self, url: str, user: str, password: str,
                 user_agent: str = "cardfile-tests/1.0") -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.user = user
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.user_agent = user_agent

    def request(self, method: str, path: str, body: str | bytes | None = None,
                headers: dict[str, str] | None = None,
                auth: bool = True) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        hdrs = {"User-Agent": self.user_agent}
        if auth:
            hdrs["Authorization"] = self.auth
        hdrs.update(headers or {})
        data = body.encode() if isinstance(body, str) else body
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
        finally:
            conn.close()

    @property
    def book(self) -> str:
        return f"/{self.user}/contacts/"

    def put(self, name: str, text: str, if_match: str | None = None,
            if_none_match: str | None = None, book: str | None = None
            ) -> tuple[int, dict[str, str], str]:
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if if_match:
            headers["If-Match"] = if_match
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        return self.request("PUT", (book or self.book) + name, text, headers)

    def get(self, name: str, book: str | None = None) -> tuple[int, dict[str, str], str]:
        return self.request("GET", (book or self.book) + name)

    def delete(self, name: str, if_match: str | None = None) -> int:
        headers = {"If-Match": if_match} if if_match else {}
        return self.request("DELETE", self.book + name, headers=headers)[0]

    def report(self, body: str, path: str | None = None, depth: str = "1"
               ) -> tuple[int, str]:
        status, _, text = self.request(
            "REPORT", path or self.book, body,
            {"Content-Type": "application/xml; charset=utf-8", "Depth": depth})
        return status, text

    def query(self, filter_xml: str, test: str = "anyof") -> list[Entry]:
        body = (f'<?xml version="1.0" encoding="utf-8"?><C:addressbook-query xmlns:D="DAV:" '
                f'xmlns:C="{CARDDAV}"><D:prop><D:getetag/><C:address-data/></D:prop>'
                f'<C:filter test="{test}">{filter_xml}</C:filter></C:addressbook-query>')
        status, text = self.report(body)
        assert status == 207, text
        return parse_multistatus(text)[1]

    def sync(self, token: str = "", path: str | None = None) -> tuple[int, str, list[Entry]]:
        body = (f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
                f'<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>'
                f'<D:prop><D:getetag/></D:prop></D:sync-collection>')
        status, text = self.report(body, path)
        if status != 207:
            return status, "", []
        new_token, entries = parse_multistatus(text)
        return status, new_token, entries

    def multiget(self, hrefs: list[str]) -> list[Entry]:
        refs = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
        body = (f'<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget xmlns:D="DAV:" '
                f'xmlns:C="{CARDDAV}"><D:prop><D:getetag/><C:address-data/></D:prop>{refs}'
                f'</C:addressbook-multiget>')
        status, text = self.report(body)
        assert status == 207, text
        return parse_multistatus(text)[1]

    def propfind(self, path: str, body: str = "", depth: str = "1") -> tuple[int, str]:
        status, _, text = self.request(
            "PROPFIND", path, body or None,
            {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
        return status, text

    def etags(self) -> dict[str, str]:
        """href -> etag of every card, as a PROPFIND Depth 1 lists them."""
        return self.etags_of(self.book)

    def etags_of(self, book: str) -> dict[str, str]:
        status, text = self.propfind(book, '<?xml version="1.0"?><D:propfind '
                                     'xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>')
        assert status == 207, text
        return {e.href: e.etag for e in parse_multistatus(text)[1]
                if e.etag and not e.href.endswith("/")}


def parse_multistatus(text: str) -> tuple[str, list[Entry]]:
    root = ET.fromstring(text)
    token = root.findtext("D:sync-token", default="", namespaces=NS)
    entries = []
    for response in root.findall("D:response", NS):
        href = response.findtext("D:href", default="", namespaces=NS)
        status_text = response.findtext("D:status", default="", namespaces=NS)
        etag = data = None
        for propstat in response.findall("D:propstat", NS):
            ps = propstat.findtext("D:status", default="", namespaces=NS)
            if " 200 " not in ps:
                continue
            etag = propstat.findtext("D:prop/D:getetag", default=None, namespaces=NS)
            data = propstat.findtext("D:prop/C:address-data", default=None, namespaces=NS)
            status_text = ps
        match = re.search(r" (\d{3}) ", status_text + " ")
        entries.append(Entry(href, int(match.group(1)) if match else 0, etag, data))
    return token, entries
