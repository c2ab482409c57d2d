"""Refuse requests for other host names on a loopback server (DNS rebinding).

A server on 127.0.0.1 looks private, but any web page can make a browser
resolve ``evil.example`` to 127.0.0.1 and then talk to it with the browser's
cookies and cached Basic credentials. The browser still sends
``Host: evil.example``, so a loopback server answers only requests whose
Host is a loopback name: ``localhost``, ``127.x.y.z`` or ``[::1]``, with any
port. Names a reverse proxy or the user reaches it by are added with

    [server]
    allowed_hosts = contacts.example.org, nas.local

(``*`` turns the check off). A server that listens on another address was
meant to be reached by other names and is not checked. The refusal is
421 Misdirected Request with a sentence saying what to configure.

Radicale refuses options it does not know in ``[server]``, so importing this
module registers ``allowed_hosts`` in Radicale's configuration schema; the
CLI imports it before any configuration is loaded.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from cardfile.plugin import radicale_adapter as radicale

OPTION = "allowed_hosts"

radicale.register_option(
    "server", OPTION, "",
    "host names (besides loopback names) a loopback server answers to; * for any", str)


@functools.lru_cache(maxsize=256)  # a server sees a handful of Host values
def is_loopback_name(host: str) -> bool:
    """``localhost``, an IPv4 127/8 or the IPv6 loopback address (no port)."""
    name = host.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without the port (``[::1]:5232`` -> ``[::1]``)."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheck:
    """Decides per request whether its Host header may be answered."""

    def __init__(self, listen_hosts: Iterable[str], allowed: str) -> None:
        addresses = [h for h in listen_hosts if h]
        self.enabled = bool(addresses) and all(is_loopback_name(h) for h in addresses)
        names = {n.strip().rstrip(".").lower() for n in allowed.split(",") if n.strip()}
        if "*" in names:
            self.enabled = False
        self.allowed = names

    @classmethod
    def from_configuration(cls, configuration: Any) -> HostCheck:
        try:
            hosts = configuration.get("server", "hosts")
        except KeyError:
            hosts = []
        try:
            allowed = str(configuration.get("server", OPTION) or "")
        except KeyError:
            allowed = ""
        return cls([str(h) for h, _ in hosts], allowed)

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """The reason to refuse this request, or None to serve it."""
        if not self.enabled:
            return None
        header = environ.get("HTTP_HOST")
        if not header:
            return None  # HTTP/1.0 without Host: not something a browser sends
        name = host_name(header)
        if is_loopback_name(name) or name.rstrip(".").lower() in self.allowed:
            return None
        return (f"This server answers only to loopback names (localhost, 127.0.0.1, [::1]), "
                f"not to {name[:100]!r}; to reach it by that name add it to [server] "
                f"{OPTION} in the configuration")

    def response(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes,
                                                         str] | None:
        """(status, headers, body, reason) of a refused request, or None."""
        reason = self.refusal(environ)
        if reason is None:
            return None
        body = (reason + "\n").encode()
        return ("421 Misdirected Request",
                [("Content-Type", "text/plain; charset=utf-8"),
                 ("Content-Length", str(len(body)))], body, reason)


def own_names(configuration: Any) -> Callable[[str], bool]:
    """Whether a host name is one of this server's own (for handles, ``name@host``).

    Loopback names and the names listed in ``[server] allowed_hosts`` (the
    names people reach the server by); ``*`` names no host in particular.
    """
    try:
        allowed = str(configuration.get("server", OPTION) or "")
    except KeyError:
        allowed = ""
    names = {n.strip().rstrip(".").lower() for n in allowed.split(",") if n.strip()} - {"*"}

    def is_own(host: str) -> bool:
        name = host.strip().rstrip(".").lower()
        return is_loopback_name(name) or name in names

    return is_own
