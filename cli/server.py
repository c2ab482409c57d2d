"""Run the server: Radicale's HTTP server loop serving Cardfile's application.

Radicale's ``server.serve`` already does what a small server needs (one
thread per connection, a connection limit, TLS, a clean shutdown that
finishes running requests). Two of its module-level names are swapped for
Cardfile's own for the duration of the call (``radicale_adapter.serving_with``,
where every Radicale internal is named), so the whole loop is reused
unchanged. What that relies on (all in ``radicale.server``, Radicale 3.9):

- ``Application``: the WSGI application ``serve`` builds; replaced by
  Cardfile's wrapper (``plugin/app.py``).
- ``RequestHandler``: the per-connection handler ``serve`` gives each
  server; replaced by a subclass (``_DeadlineRequestHandler``) that reads the
  request under deadlines, so no idle or slow client holds up others.
- ``ParallelHTTPServer.request_queue_size``: the listen backlog of its
  server classes (the TLS one inherits it), socketserver's 5 by default;
  raised so a burst of connections is queued, not dropped and retried 1 s
  later by the client's TCP.
- ``serve(configuration, shutdown_socket)``: the select loop (its
  ``max_connections`` limit, its TLS server class, its shutdown socket).

Why deadlines: Radicale gives each connection a thread and a 30 s socket
timeout *per read*, and accepts at most ``max_connections`` (8) at once, so
eight clients sending one header line every 10 s froze the server. Here the
request line and headers must all arrive within ``request_timeout`` (a total
deadline: each read may wait only for the time left), a stalled body fails
after ``body_timeout`` of silence, and the connection limit is 256 by
default (threads waiting on a socket are cheap). Radicale's handler answers
one request per connection and closes it, so no idle keep-alive connection
outlives the deadline either.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import socket
import time
from typing import Any

from cardfile.cli import server_options
from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.app import CardfileApp
from cardfile.plugin.contacts.sources.refresher import Refresher
from cardfile.plugin.dav.log_escape import EscapingFormatter

log = logging.getLogger("cardfile")

#: Radicale's loop waits with select(), which cannot watch descriptors past
#: 1024; each connection holds three (its socket and a socketpair).
MAX_CONNECTIONS_CEILING = 300
#: Connections the kernel queues before the loop accepts them.
LISTEN_BACKLOG = 128


class _DeadlineReader(io.RawIOBase):
    """A connection's socket read under the request's deadlines.

    Until the headers are read, every read may wait only for the time left
    before the request deadline; after that (the body), each read may wait
    ``body_seconds``. Writes keep ``send_seconds`` (Radicale's ``timeout``).
    """

    def __init__(self, sock: socket.socket, header_seconds: float, body_seconds: float,
                 send_seconds: float) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = time.monotonic() + header_seconds
        self.in_body = False
        self._body_seconds = body_seconds
        self._send_seconds = send_seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.in_body:
            wait = self._body_seconds
        else:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError("the request headers did not arrive in time")
        self._sock.settimeout(wait)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._send_seconds)


class _DeadlineRequestHandler(radicale.ServerRequestHandler):
    """Radicale's request handler, reading the request under deadlines."""

    header_seconds = 10.0
    body_seconds = 5.0
    send_seconds = 30.0
    _reader: _DeadlineReader

    def setup(self) -> None:
        super().setup()
        self._reader = _DeadlineReader(self.connection, self.header_seconds,
                                       self.body_seconds, self.send_seconds)
        self.rfile.close()  # the plain file Radicale's handler made: replaced
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        parsed = bool(super().parse_request())  # the request line was read; headers now
        self._reader.in_body = True
        return parsed

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        # The target as sent: PATH_INFO is decoded with replacement characters,
        # so the application checks this one for invalid UTF-8 (app.py).
        environ["REQUEST_URI"] = self.path
        return environ

    def handle(self) -> None:
        try:
            super().handle()
        except TimeoutError:
            if self._reader.in_body:
                raise  # a response write stalled: Radicale logs it as a timeout
            log.info("Closed a connection from %s that did not send its request within "
                     "%g s", self.client_address[0], self.header_seconds)
            self._refuse_late_request()

    def _refuse_late_request(self) -> None:
        """Tell the client why it is being cut off (408), if it still listens."""
        reason = (f"The request line and headers must arrive within {self.header_seconds:g} "
                  f"seconds (request_timeout)\n").encode()
        head = ("HTTP/1.0 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(reason)}\r\nConnection: close\r\n\r\n").encode()
        with contextlib.suppress(OSError):
            self.connection.settimeout(1.0)
            self.connection.sendall(head + reason)


def _warmed_up_application(configuration: Any) -> CardfileApp:
    app = CardfileApp(configuration)
    app.warm_up()
    # Connected sources refresh on their own intervals, beside the requests.
    Refresher(app.radicale.storage).start()
    return app


def _cardfile_server(handler: type[_DeadlineRequestHandler]
                     ) -> contextlib.AbstractContextManager[None]:
    """Radicale's loop with Cardfile's application and request handler."""
    return radicale.serving_with(_warmed_up_application, handler, LISTEN_BACKLOG)


def configure_logging(level: str) -> None:
    """One format for Cardfile's and Radicale's lines; Radicale kept quieter.

    Client data in any message is escaped (``log_escape``): no forged lines.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(
        "[%(asctime)s] %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("cardfile").setLevel(numeric)
    logging.getLogger("radicale").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))


def _server_setup(configuration: Any) -> tuple[Any, type[_DeadlineRequestHandler]]:
    """The configuration Radicale's loop gets, and the handler class with our deadlines."""
    header_seconds = server_options.seconds(configuration, server_options.REQUEST_TIMEOUT)
    body_seconds = server_options.seconds(configuration, server_options.BODY_TIMEOUT)
    send_seconds = float(configuration.get("server", "timeout")) or 30.0
    handler = type("CardfileRequestHandler", (_DeadlineRequestHandler,), {
        "header_seconds": header_seconds, "body_seconds": body_seconds,
        "send_seconds": send_seconds})
    limit = int(configuration.get("server", "max_connections"))
    if limit <= 0 or limit > MAX_CONNECTIONS_CEILING:
        log.warning("[server] max_connections = %d: using %d, the most this server loop "
                    "can watch", limit, MAX_CONNECTIONS_CEILING)
        limit = MAX_CONNECTIONS_CEILING
    configuration = configuration.copy()
    # Radicale's `timeout` is the socket timeout a connection starts with, which
    # bounds the TLS handshake: it gets the request deadline too.
    configuration.update({"server": {"max_connections": str(limit),
                                     "timeout": str(min(send_seconds, header_seconds))}},
                         "cardfile serve", privileged=True)
    return configuration, handler


def serve(configuration: Any) -> None:
    """Serve until SIGINT or SIGTERM, then finish running requests and return."""
    shutdown_ours, shutdown_theirs = socket.socketpair()

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger("cardfile").info("Stopping (signal %d)", signum)
        shutdown_ours.close()

    configuration, handler = _server_setup(configuration)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _cardfile_server(handler):
            radicale.serve(configuration, shutdown_theirs)
    finally:
        for sig, handler_ in previous.items():
            signal.signal(sig, handler_)
