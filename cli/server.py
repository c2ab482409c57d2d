"""Run the server: Radicale's HTTP server loop serving Cardfile's application.

Radicale's ``server.serve`` already does what a small server needs (one
thread per request, a connection limit, TLS, a clean shutdown that finishes
running requests), but it builds Radicale's bare application itself. Its
``Application`` name is swapped for Cardfile's wrapper for the duration of
the call, here and nowhere else, so the whole loop is reused unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

import radicale.server as radicale_server

from cardfile.plugin.app import CardfileApp


def _warmed_up_application(configuration: Any) -> CardfileApp:
    app = CardfileApp(configuration)
    app.warm_up()
    return app


@contextlib.contextmanager
def _cardfile_application() -> Iterator[None]:
    original = radicale_server.Application
    radicale_server.Application = _warmed_up_application  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        radicale_server.Application = original  # type: ignore[misc]


def configure_logging(level: str) -> None:
    """One format for Cardfile's and Radicale's lines; Radicale kept quieter."""
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("cardfile").setLevel(numeric)
    logging.getLogger("radicale").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))


def serve(configuration: Any) -> None:
    """Serve until SIGINT or SIGTERM, then finish running requests and return."""
    shutdown_ours, shutdown_theirs = socket.socketpair()

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger("cardfile").info("Stopping (signal %d)", signum)
        shutdown_ours.close()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _cardfile_application():
            radicale_server.serve(configuration, shutdown_theirs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
