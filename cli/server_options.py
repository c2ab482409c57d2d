"""Cardfile's own ``[server]`` options for slow and idle clients.

Radicale refuses options it does not know in ``[server]``, so importing this
module registers them in Radicale's configuration schema (as ``host_check``
does for ``allowed_hosts``); ``cli/main.py`` imports it before any
configuration is loaded, so every command accepts a file that sets them.

- ``request_timeout``: seconds a client has, from connecting, to send its
  whole request line and headers. A total deadline, not a per-read timeout:
  a client trickling one header line every few seconds is cut off at it.
- ``body_timeout``: seconds a request body may stall (no byte arriving)
  before the request is answered 400, so a ``Content-Length`` longer than
  the body never holds a thread for long.
- ``workers``: server processes; 0 (the default) is one per core, at most four,
  and fewer where half the available memory holds fewer at 256 MB each.
- ``pin_workers``: each worker runs its requests on a core of its own when
  there are as many cores as workers (``cpu_pinning``); on by default.

``max_connections`` (Cardfile's default 256) now bounds the requests each
server process answers at once (its Python threads, at most 64; the
connections it keeps open are many more, ``server.CONNECTIONS_AT_MOST``); Radicale's
``timeout`` is no longer used (Granian bounds the header read).
"""

from __future__ import annotations

from typing import Any

from cardfile.plugin import radicale_adapter as radicale

REQUEST_TIMEOUT = "request_timeout"
BODY_TIMEOUT = "body_timeout"
WORKERS = "workers"
PIN_WORKERS = "pin_workers"

radicale.register_option(
    "server", REQUEST_TIMEOUT, "10",
    "seconds a client has to send its request line and headers (a total deadline)",
    radicale.positive_float)
radicale.register_option(
    "server", BODY_TIMEOUT, "5",
    "seconds a request body may stall before the request is refused with 400",
    radicale.positive_float)

radicale.register_option(
    "server", WORKERS, "0",
    "server processes sharing the data folder; 0 means one per core (at most four, "
    "fewer where memory is short)",
    int)


radicale.register_option(
    "server", PIN_WORKERS, "True",
    "run each worker's requests on a core of its own when there are as many cores as "
    "workers (its data stays in that core's cache)",
    bool)


def pin_workers(configuration: Any) -> bool:
    """``[server] pin_workers`` (on unless set false)."""
    return bool(configuration.get("server", PIN_WORKERS))


def workers(configuration: Any) -> int:
    """``[server] workers`` as configured (0: one per core); a negative number is 0."""
    return max(0, int(configuration.get("server", WORKERS)))


def seconds(configuration: Any, option: str) -> float:
    """A positive number of seconds from ``[server]`` (0 or less means the default)."""
    value = float(configuration.get("server", option))
    if value <= 0:
        value = float(radicale.option_default("server", option))
    return value
