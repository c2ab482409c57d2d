"""Run the server: Granian, a production HTTP server from PyPI, serving Cardfile's WSGI app.

Why not Radicale's own loop any more: it is ``wsgiref`` with one thread per
connection and one request per connection, so every request paid a TCP
connection, a new thread and Python's header parsing, and the whole server
ran on one core. A phone's first sync of 10,000 cards is 1,000 multigets, so
that cost was most of what the phone waited for. Granian (Rust, hyper)
gives what a server needs and Cardfile had to write itself before:

- keep-alive: a client's next request reuses its connection;
- connections, TLS and request headers are read in Rust, outside the
  Python threads, under a total header deadline (``request_timeout``); an
  idle or trickling client holds no Python thread, and is cut off at the
  deadline; a worker keeps many more connections open than it has threads
  (``CONNECTIONS_AT_MOST``), so idle keep-alive clients leave room for others;
- several worker processes (``[server] workers``, by default one per core,
  at most four, fewer where memory is short) on one listening socket. They share the data folder as
  separate ``cardfile`` commands always could: Radicale's storage lock is a
  file lock, the index is SQLite in WAL mode, every in-process cache is
  checked against the index's sequence or a file's stamp, the login
  throttle's records are a small SQLite file all workers share
  (``login_throttle``), and background work (refreshes of connected sources,
  pruning old deletions from PostgreSQL) runs in one worker (``worker_slots``).

What Granian does not do is bound how long a request body may stall: the
application reads every body through ``body_reader.read_exactly``, which
gives up after ``body_timeout`` and answers 400 (``body_reader``).

Each worker builds its own application from the same recipe (the settings
and the command line's overrides, passed in the environment), so nothing
built before the fork (SQLite connections, threads) is shared. Before the
workers start, one forked process compares the books' files with the index
for all of them (``book_check``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import secrets
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cardfile.cli import book_check, cpu_pinning, server_options, worker_slots
from cardfile.cli import settings as settings_mod
from cardfile.plugin.contacts.storage import START_GENERATION
from cardfile.plugin.dav import body_reader
from cardfile.plugin.dav.log_escape import EscapingFormatter
from cardfile.plugin.store import parent_death

log = logging.getLogger("cardfile")

#: The environment variable that carries the recipe to each worker process.
RECIPE_VARIABLE = "CARDFILE_SERVE_RECIPE"
#: The master's process id, for the workers (``parent_death``).
MASTER_VARIABLE = "CARDFILE_SERVE_MASTER"
#: Connections the kernel queues before a worker accepts them.
LISTEN_BACKLOG = 1024
#: Python threads of a worker at most: requests it answers at once.
THREADS_AT_MOST = 64
#: Open connections one worker keeps at most (Granian's ``backpressure``). Granian
#: counts *connections* there, not requests: a keep-alive connection holds its
#: place while idle, until the header deadline closes it. When this was the
#: number of threads (64), 200 idle keep-alive connections (one request each)
#: made a new client wait 9 s for its first answer, and clients that each send a
#: request every few seconds could have kept others out for good. A connection
#: that waits costs a file descriptor and its read buffer (``READ_BUFFER_BYTES``),
#: no thread.
CONNECTIONS_AT_MOST = 1024
#: What one connection buffers at most in Rust: the request line and headers must
#: fit (a larger head is answered 431), and a body is read through it in pieces.
#: Granian's default is 408 KiB: 600 connections each sending 300 KiB of header
#: grew the server by 187 MB, so with ``CONNECTIONS_AT_MOST`` the worst case per
#: worker is this times that (32 MiB), about what 64 connections cost before.
READ_BUFFER_BYTES = 32 * 1024
#: File descriptors a worker keeps for its own work (card files, SQLite, logs)
#: when the open-file limit is what bounds its connections.
FILES_KEPT_FOR_WORK = 256
#: Most workers ``auto`` starts: past this the index's single writer is the limit.
MAX_AUTO_WORKERS = 4
#: What ``auto`` counts per worker: a worker serving a 100,000-card book to 32
#: clients at once peaked at 100-350 MB (bench/README.md). ``auto`` starts no
#: more workers than half the available memory holds at this size (a board
#: with 1 GB runs one, 2 GB two); ``[server] workers`` overrides it.
WORKER_MEMORY = 256 * 1024 * 1024

#: CGI names a request's environ may carry. Granian starts every environ from
#: the server process's own environment, so a variable such as HTTP_PROXY there
#: would read as a header the client sent: those are removed (``_from_granian``).
_CGI_PREFIXES = ("HTTP_", "CONTENT_", "REMOTE_", "SERVER_", "REQUEST_", "PATH_", "QUERY_",
                 "SCRIPT_", "AUTH_", "HTTPS")


@dataclass(frozen=True)
class Recipe:
    """What a worker needs to build the same application as every other worker."""

    data_dir: str
    config_file: str | None
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    log_level: str = "info"
    #: The books were compared with the index at this start (book_check): the
    #: workers need not, and serve at once.
    books_checked: bool = False

    def configuration(self) -> Any:
        settings = settings_mod.resolve(self.data_dir, self.config_file)
        return settings_mod.radicale_configuration(settings, self.overrides)


def configure_logging(level: str) -> None:
    """One format for Cardfile's and Radicale's lines; Radicale kept quieter.

    Client data in any message is escaped (``log_escape``): no forged lines.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(
        "[%(asctime)s] %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("cardfile").setLevel(numeric)
    logging.getLogger("radicale").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    logging.getLogger("_granian").setLevel(max(numeric, logging.WARNING))


def worker_count(configuration: Any) -> int:
    """``[server] workers``: a number, or 0 for one per core (at most MAX_AUTO_WORKERS),
    and no more than half the memory available allows (``WORKER_MEMORY`` each)."""
    configured = int(server_options.workers(configuration))
    if configured > 0:
        return configured
    count = min(os.cpu_count() or 1, MAX_AUTO_WORKERS)
    available = _available_memory()
    if available is not None:
        count = min(count, available // (2 * WORKER_MEMORY))
    return max(1, count)


def _available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def stop_forked_workers_while_loading() -> None:
    """A SIGTERM that comes while a worker starts ends it at once.

    Workers are forked from the master and inherit its Python signal
    handlers, which only flag the *master's* shutdown: a SIGTERM reaching a
    worker before Granian installs the worker's own handlers was lost, and
    the master then waited its full ``workers_kill_timeout`` (30 s) for the
    worker to stop. Found by a test that stops a server right after it
    answers. The worker's loader first put the defaults back, but Granian
    sets up a worker (its logging, socket and event loop) before it calls
    the loader, and a SIGTERM in that time was still lost. So the defaults
    are put back at the fork itself, in every process forked from here on
    (Granian's workers are the only ones); Granian replaces them once the
    worker serves. Stops of ``bench/floor.py``'s server that took 30 s: 17
    of 550 with no reset, 2 of 150 with the loader's, 3 of 450 with this
    one. The rest happen after Granian's handlers are in place, and a second
    SIGTERM ends such a worker at once; that is inside Granian.
    """
    os.register_at_fork(after_in_child=_default_stop_handlers)


def _default_stop_handlers() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def load_application(_target: str) -> Any:
    """Granian's loader, run in each worker: the application from the recipe."""
    parent_death.end_with(int(os.environ[MASTER_VARIABLE]))
    recipe = Recipe(**json.loads(os.environ[RECIPE_VARIABLE]))
    configure_logging(recipe.log_level)  # Granian configured its own in the worker
    configuration = recipe.configuration()
    body_reader.configure(server_options.seconds(configuration, server_options.BODY_TIMEOUT),
                          threads=_blocking_threads(configuration))
    workers = worker_count(configuration)
    slot = worker_slots.claim(Path(recipe.data_dir), workers)
    pinning = (cpu_pinning.CorePinning.for_worker(slot, workers)
               if server_options.pin_workers(configuration) else None)
    from cardfile.plugin.app import CardfileApp  # (imported by the master: shared pages)
    from cardfile.plugin.contacts.sources.refresher import Refresher

    app = CardfileApp(configuration)
    if not recipe.books_checked:
        app.warm_up()  # the first worker builds the index; the others find it built
    if slot == 0:  # background work runs in one worker: sources, pruning deleted cards
        from cardfile.plugin.contacts import tombstones

        Refresher(app.radicale.storage).start()
        tombstones.start_pruning(app.radicale.storage, configuration)
    inherited = [k for k in os.environ if k.startswith(_CGI_PREFIXES)]
    return _from_granian(app, inherited, pinning)


def _from_granian(app: Any, inherited: list[str],
                  pinning: cpu_pinning.CorePinning | None = None) -> Any:
    """The environ Cardfile's application expects, from the one Granian builds.

    Granian decodes the path's %-escapes as Latin-1, as PEP 3333 says;
    Radicale's own server gave UTF-8 with replacement characters, and kept the
    target as sent (``REQUEST_URI``) for the application's strict check of
    invalid UTF-8 (``app._path_refusal``). Both are rebuilt here from the
    Latin-1 text, which is the path's bytes.
    """

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        if pinning is not None:
            pinning.pin_this_thread()
        for name in inherited:
            environ.pop(name, None)
        path = environ.get("PATH_INFO", "")
        if not path.isascii():
            raw = path.encode("latin-1", "replace")
            environ["PATH_INFO"] = raw.decode("utf-8", "replace")
            environ["REQUEST_URI"] = quote(raw, safe="/:@!$&'()*+,;=~")
        return app(environ, start_response)

    return application


def _blocking_threads(configuration: Any) -> int:
    """Python threads per worker: requests answered at once (idle connections need none)."""
    return max(4, min(THREADS_AT_MOST, int(configuration.get("server", "max_connections"))))


def _connections_per_worker(threads: int) -> int:
    """How many connections a worker holds open at once (``CONNECTIONS_AT_MOST``),
    leaving it ``FILES_KEPT_FOR_WORK`` descriptors under the open-file limit (each
    worker has its own), and never fewer than its threads."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = CONNECTIONS_AT_MOST if soft == resource.RLIM_INFINITY else soft - FILES_KEPT_FOR_WORK
    return max(threads, min(CONNECTIONS_AT_MOST, spare))


def _allow_many_connections() -> None:
    """Raise the open-file limit to the most allowed (the workers inherit it).

    Granian closes a connection whose request headers stall (``request_timeout``)
    but keeps one that has sent nothing, as keep-alive clients between
    requests do; such a connection holds no thread, only a file descriptor.
    The common soft limit of 1,024 would let a few hundred of them stop new
    clients from connecting; the hard limit (often 2^20) does not.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def granian_settings(configuration: Any) -> dict[str, Any]:
    """How Granian serves: workers, threads, deadlines, keep-alive (all but address and TLS).

    One place, so that ``bench/floor.py`` measures an empty application
    served exactly as Cardfile is.
    """
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    header_seconds = server_options.seconds(configuration, server_options.REQUEST_TIMEOUT)
    threads = _blocking_threads(configuration)
    return {"interface": Interfaces.WSGI, "workers": worker_count(configuration),
            "blocking_threads": threads, "backpressure": _connections_per_worker(threads),
            "backlog": LISTEN_BACKLOG,
            "websockets": False,
            "http1_settings": HTTP1Settings(header_read_timeout=int(header_seconds * 1000),
                                            keep_alive=True, max_buffer_size=READ_BUFFER_BYTES),
            "log_level": LogLevels.error, "respawn_failed_workers": True,
            "workers_kill_timeout": 30}


def serve(recipe: Recipe) -> None:
    """Serve until SIGINT or SIGTERM, then finish running requests and return."""
    # One generation for this start's processes, then the books' check in a
    # forked process, overlapping the imports below and Granian's start.
    storage_overrides = {**recipe.overrides.get("storage", {}),
                         START_GENERATION: secrets.token_hex(8)}
    recipe = dataclasses.replace(recipe, overrides={**recipe.overrides,
                                                    "storage": storage_overrides})
    recipe = dataclasses.replace(
        recipe, books_checked=book_check.check_in_a_child(recipe.configuration()))
    # The application's modules, imported once here: the workers are forked from
    # this process and share these pages instead of each importing its own copy.
    from granian.constants import SSLProtocols
    from granian.server import Server

    import cardfile.plugin.app  # noqa: F401
    import cardfile.plugin.contacts.sources.refresher  # noqa: F401

    configuration = recipe.configuration()
    hosts = configuration.get("server", "hosts")
    host, port = hosts[0]
    tls: dict[str, Any] = {}
    if configuration.get("server", "ssl"):
        tls = {"ssl_cert": Path(str(configuration.get("server", "certificate"))),
               "ssl_key": Path(str(configuration.get("server", "key"))),
               "ssl_protocol_min": SSLProtocols.tls12}
    os.environ[RECIPE_VARIABLE] = json.dumps(asdict(recipe))
    os.environ[MASTER_VARIABLE] = str(os.getpid())
    _allow_many_connections()
    server = Server("cardfile", address=host, port=port, **granian_settings(configuration),
                    **tls)
    server.on_shutdown(lambda: log.info("Stopping: running requests finish first"))
    stop_forked_workers_while_loading()
    server.serve(target_loader=load_application)
