"""Authentication and exposure: delayed failed logins, no passwords in logs,
Host-header checks against DNS rebinding, and TLS with --tls-cert/--tls-key."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import USER, ServerProcess, cardfile_command, free_port, run_cli
from tests.davclient import DavClient, card

PASSWORD = "Tr0ub4dor&3-not-in-logs"
WRONG = "wrong-Pa55word-never-logged"


class LaunchedServer(ServerProcess):
    """``cardfile serve`` with extra command-line flags (TLS, log level, host)."""

    def __init__(self, data_dir: Path, *args: str, host: str = "127.0.0.1",
                 scheme: str = "http") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [*cardfile_command(), "serve", "--host", host, "--port", str(self.port), *args,
             "--data-dir", str(data_dir)],
            stdout=self._log, stderr=subprocess.STDOUT, text=True)
        self._wait_ready()


def _data_dir(tmp_path: Path, config: str = "") -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    data.mkdir()
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    args: list[str] = []
    if config:
        (tmp_path / "config").write_text(config)
        args = ["--config", str(tmp_path / "config")]
    return data, args


@pytest.fixture
def debug_server(tmp_path: Path) -> Iterator[LaunchedServer]:
    data, args = _data_dir(tmp_path)
    server = LaunchedServer(data, *args, "--log-level", "debug")
    try:
        yield server
    finally:
        server.stop()


def test_failed_logins_are_delayed_and_logged_without_the_password(
        debug_server: LaunchedServer) -> None:
    good = DavClient(debug_server.url, USER, PASSWORD)
    bad = DavClient(debug_server.url, USER, WRONG)
    assert good.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 207
    started = time.monotonic()
    assert bad.request("PROPFIND", f"/{USER}/", headers={"Depth": "0"})[0] == 401
    # [auth] delay = 1 (the shipped default); under pytest Radicale does not randomise it.
    assert time.monotonic() - started >= 0.9
    assert good.put("sec-1.vcf", card("sec-1", "Sec Ure"))[0] == 201
    # A password sent to the JSON API and in a URL is not logged either.
    bad.request("GET", "/api/")
    good.request("GET", f"/{USER}/contacts/?password={PASSWORD}")
    debug_server.stop()
    log = debug_server.log()
    assert "Failed login attempt" in log and f"'{USER}'" in log
    for secret in (PASSWORD, WRONG):
        assert secret not in log
        assert base64.b64encode(f"{USER}:{secret}".encode()).decode() not in log
        assert secret.encode().hex() not in log
    htpasswd = (debug_server.data_dir / "htpasswd").read_text()
    assert htpasswd.split(":", 1)[1].strip() not in log


def test_the_data_folder_and_user_file_are_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    run_cli("user", "add", USER, "--password-stdin", data_dir=data, stdin=PASSWORD + "\n")
    assert (data / "htpasswd").stat().st_mode & 0o077 == 0


def test_loopback_server_answers_only_loopback_host_names(tmp_path: Path) -> None:
    data, args = _data_dir(tmp_path)
    server = LaunchedServer(data, *args)
    try:
        client = DavClient(server.url, USER, PASSWORD)
        for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost",
                     f"[::1]:{server.port}", "127.0.0.2", "LOCALHOST.", "app.localhost"):
            status, _, _ = client.request("PROPFIND", f"/{USER}/",
                                          headers={"Depth": "0", "Host": host})
            assert status == 207, host
        for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io",
                     "localhost.evil.example", "[::2]", "0.0.0.0", "10.0.0.1"):
            for method, path in (("PROPFIND", f"/{USER}/"), ("GET", "/api/"),
                                 ("GET", "/"), ("PUT", f"/{USER}/contacts/x.vcf")):
                status, _, body = client.request(method, path, card("x", "X Y"),
                                                 {"Host": host, "Depth": "0"})
                assert status == 421, (host, method, path, status)
                assert "allowed_hosts" in body and len(body.strip().splitlines()) == 1
        assert client.get("x.vcf")[0] == 404
    finally:
        server.stop()
    assert "allowed_hosts" in server.log()


def test_allowed_hosts_lets_a_reverse_proxy_name_through(tmp_path: Path) -> None:
    data, args = _data_dir(tmp_path, "[server]\nallowed_hosts = contacts.example.org, "
                                     "NAS.local\n")
    # The option is understood by every command, not only serve.
    assert run_cli("user", "list", *args, data_dir=data).stdout.split() == [USER]
    server = LaunchedServer(data, *args)
    try:
        client = DavClient(server.url, USER, PASSWORD)
        for host, expected in (("contacts.example.org", 207), ("nas.local:443", 207),
                               ("localhost", 207), ("other.example.org", 421)):
            status, _, _ = client.request("PROPFIND", f"/{USER}/",
                                          headers={"Depth": "0", "Host": host})
            assert status == expected, host
    finally:
        server.stop()


def test_a_server_on_all_interfaces_does_not_check_host(tmp_path: Path) -> None:
    data, args = _data_dir(tmp_path)
    server = LaunchedServer(data, *args, host="0.0.0.0")
    try:
        client = DavClient(server.url, USER, PASSWORD)
        status, _, _ = client.request("PROPFIND", f"/{USER}/",
                                      headers={"Depth": "0", "Host": "phone-can-use.example"})
        assert status == 207
        assert client.request("PROPFIND", f"/{USER}/", auth=False)[0] == 401
    finally:
        server.stop()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_with_cert_and_key(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    data, _ = _data_dir(tmp_path)
    server = LaunchedServer(data, "--tls-cert", str(cert), "--tls-key", str(key),
                            scheme="https")
    try:
        context = ssl.create_default_context(cafile=str(cert))
        auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                           timeout=30)
        conn.request("PROPFIND", f"/{USER}/", headers={"Depth": "0", "Authorization": auth})
        response = conn.getresponse()
        assert response.status == 207 and b"multistatus" in response.read()
        conn.close()
        # Plain HTTP to the TLS port gets no answer a client could mistake for CardDAV.
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("PROPFIND", f"/{USER}/", headers={"Authorization": auth})
            if plain.getresponse().status == 207:
                raise AssertionError("served CardDAV over plain HTTP on the TLS port")
            raise OSError("refused")
    finally:
        server.stop()
    assert f"https://127.0.0.1:{server.port}/" in server.log()


def test_first_run_banner_gives_the_https_address_under_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    data = tmp_path / "fresh"  # no users yet: the first run creates one and prints it
    server = LaunchedServer(data, "--tls-cert", str(cert), "--tls-key", str(key),
                            scheme="https")
    try:
        log = server.log()
    finally:
        server.stop()
    assert f"Server:   https://127.0.0.1:{server.port}/" in log
    assert "http://" not in log


def test_tls_options_go_together(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    data, _ = _data_dir(tmp_path)
    result = run_cli("serve", "--tls-cert", str(cert), data_dir=data, check=False)
    assert result.returncode != 0 and "--tls-key" in result.stderr
