"""Real servers to connect as sources, and a recording proxy in front of them.

Stock Radicale, Xandikos and a second Cardfile run as subprocesses on free
loopback ports; ``RecordingProxy`` forwards every request to one of them and
keeps the request log (method, path, body) a test reads to see whether a
refresh was incremental. It can also stand in for a misbehaving source
(``proxy.fault``): a 401, garbage, a huge answer, a redirect loop.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import USER, free_port, start_server
from tests.davclient import DavClient

MKCOL_BOOK = ('<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" '
              'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
              '<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
SOURCE_USER = "bob"
SOURCE_PASSWORD = "bobs-password"


@dataclass
class Logged:
    method: str
    path: str
    body: str
    status: int


class RecordingProxy:
    """A forwarding proxy on its own port that logs each request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.log: list[Logged] = []
        #: None forwards; else a function returning (status, headers, body) to answer with.
        self.fault: Callable[[str, str], tuple[int, dict[str, str], bytes]] | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.fault is not None:
                    status, headers, answer = proxy.fault(self.command, self.path)
                else:
                    conn = http.client.HTTPConnection(proxy.upstream.hostname,
                                                      proxy.upstream.port, timeout=60)
                    sent = {k: v for k, v in self.headers.items()
                            if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=sent)
                    response = conn.getresponse()
                    status, answer = response.status, response.read()
                    headers = {k: v for k, v in response.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection",
                                                    "content-length")}
                    conn.close()
                proxy.log.append(Logged(self.command, self.path,
                                        body.decode("utf-8", "replace"), status))
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() == "location" and v.startswith(proxy.upstream_url):
                        v = proxy.url + v[len(proxy.upstream_url):]
                    self.send_header(k, v)
                if isinstance(answer, bytes):
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                else:  # an iterator of chunks (a huge answer, streamed)
                    self.end_headers()
                    try:
                        for chunk in answer:
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        for method in ("GET", "HEAD", "PUT", "DELETE", "PROPFIND", "REPORT", "OPTIONS",
                       "MKCOL", "PROPPATCH", "POST"):
            setattr(Handler, f"do_{method}", Handler._forward)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.upstream_url = f"{self.upstream.scheme}://{self.upstream.netloc}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def requests(self, method: str) -> list[Logged]:
        return [r for r in self.log if r.method == method]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SourceServer:
    """A running CardDAV server with one address book the test fills."""

    name = ""
    book_path = ""
    process: subprocess.Popen[bytes] | None = None
    url = ""
    user = SOURCE_USER
    password = SOURCE_PASSWORD

    def client(self) -> DavClient:
        return DavClient(self.url, self.user, self.password)

    def put(self, uid: str, text: str) -> None:
        status, _, body = self.client().request(
            "PUT", f"{self.book_path}{uid}.vcf", text,
            {"Content-Type": "text/vcard; charset=utf-8"})
        assert status in (201, 204), (status, body)

    def delete(self, uid: str) -> None:
        status, _, body = self.client().request("DELETE", f"{self.book_path}{uid}.vcf")
        assert status in (200, 204), (status, body)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"source server exited:\n{log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"source server did not start:\n{log.read_text()}")


class RadicaleSource(SourceServer):
    """Stock Radicale (multifilesystem storage, htpasswd plain)."""

    name = "radicale"

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        port = free_port()
        (tmp / "users").write_text(f"{self.user}:{self.password}\n")
        config = tmp / "radicale.conf"
        config.write_text(f"[server]\nhosts = 127.0.0.1:{port}\n"
                          f"[auth]\ntype = htpasswd\nhtpasswd_filename = {tmp / 'users'}\n"
                          "htpasswd_encryption = plain\ndelay = 0\n"
                          f"[storage]\nfilesystem_folder = {tmp / 'collections'}\n"
                          "[rights]\ntype = owner_only\n[logging]\nlevel = warning\n")
        log = tmp / "radicale.log"
        self.process = subprocess.Popen([sys.executable, "-m", "radicale", "--config",
                                         str(config)], stdout=open(log, "wb"),
                                        stderr=subprocess.STDOUT)
        _wait_port(port, self.process, log)
        self.url = f"http://127.0.0.1:{port}"
        self.book_path = f"/{self.user}/contacts/"
        status, _, body = self.client().request("MKCOL", self.book_path, MKCOL_BOOK)
        assert status == 201, (status, body)


class XandikosSource(SourceServer):
    """Xandikos from PyPI (no authentication: it serves one user's principal)."""

    name = "xandikos"

    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("xandikos")
        assert exe is not None
        tmp.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = tmp / "xandikos.log"
        self.process = subprocess.Popen(
            [exe, "serve", "-d", str(tmp / "dav"), "--defaults", "-l", "127.0.0.1", "-p",
             str(port), "--state-dir", str(tmp / "state"), "--no-detect-systemd"],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        _wait_port(port, self.process, log)
        self.url = f"http://127.0.0.1:{port}"
        self.book_path = "/user/contacts/addressbook/"


class CardfileSource(SourceServer):
    """A second Cardfile (``cardfile serve``), its user's default book."""

    name = "cardfile"

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        # Another machine's Cardfile, on files: never the user configuration a test set
        # for its own commands (conftest.cli_store), which would share its database.
        mine = os.environ.pop("XDG_CONFIG_HOME", None)
        try:
            self.server = start_server(tmp, {USER: SOURCE_PASSWORD})
        finally:
            if mine is not None:
                os.environ["XDG_CONFIG_HOME"] = mine
        self.user = USER
        self.url = self.server.url
        self.book_path = f"/{USER}/contacts/"
        status, _, _ = self.client().request("PROPFIND", f"/{USER}/", headers={"Depth": "1"})
        assert status == 207

    def stop(self) -> None:
        self.server.stop()


def start(kind: str, tmp: Path) -> SourceServer:
    return {"radicale": RadicaleSource, "xandikos": XandikosSource,
            "cardfile": CardfileSource}[kind](tmp / kind)
