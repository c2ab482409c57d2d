"""The ``cardfile`` command: thin click commands over ``cardfile.plugin``.

Every command takes ``--data-dir`` and ``--config`` so scripts and tests can
run several independent servers side by side.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from cardfile.cli import file_modes, first_run, users
from cardfile.cli import settings as settings_mod
from cardfile.cli.options import _settings, common_options, default_user  # noqa: F401
from cardfile.cli.server_options import REQUEST_TIMEOUT  # noqa: F401  (registers timeouts)
from cardfile.plugin.contacts import actor
from cardfile.plugin.dav import host_check  # noqa: F401  (registers [server] allowed_hosts)

#: Commands kept in their own modules -> the modules that register them. A module
#: is imported only when one of its commands runs (or ``--help`` lists them all):
#: ``cardfile serve`` needs none, and importing them all took a tenth of its start.
#: ``contacts`` also needs ``history``, which adds ``contacts remove`` to it.
LAZY_COMMANDS: dict[str, tuple[str, ...]] = {
    "categories": ("categories",),
    **dict.fromkeys(("import", "export", "dedupe", "search"), ("contacts",)),
    "contacts": ("contacts", "history"),
    **dict.fromkeys(("backup", "restore"), ("maintenance",)),
    **dict.fromkeys(("trash", "history", "restore-to"), ("history",)),
    "sources": ("sources",),
    **dict.fromkeys(("devices", "tokens", "grants", "me", "friends", "shares"), ("grants",)),
    "db": ("db",),
}


class LazyGroup(click.Group):
    """The ``cardfile`` group: its command modules are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            for module in LAZY_COMMANDS.get(cmd_name, ()):
                register_commands_of(module, self)
        return self.commands.get(cmd_name)


_registered: set[str] = set()


def register_commands_of(module: str, group: click.Group) -> None:
    """Import ``cardfile.cli.<module>`` and add its commands to ``group`` (once)."""
    if module in _registered:
        return
    _registered.add(module)
    loaded = importlib.import_module(f"cardfile.cli.{module}")
    if module == "categories":
        group.add_command(loaded.categories)
    else:
        loaded.register(group)


# color=True: click never cuts what looks like a colour code out of what a command
# writes into a pipe (a card's own text, exported or shown); a terminal is
# guarded instead (terminal.py).
@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "color": True})
@click.version_option(package_name="cardfile")
def cli() -> None:
    """Cardfile: your contacts as plain .vcf files, synced over CardDAV."""
    # Every file and folder any command creates (cards, the index and its
    # -wal/-shm, htpasswd, category stores, Radicale's atomic writes, backups,
    # exports) is private to the user: one umask here, before any command runs.
    os.umask(PRIVATE_UMASK)
    # The history names every change this command makes as the CLI's.
    actor.set_process_default("cardfile CLI")


#: Files 0600, folders 0700, whichever command creates them.
PRIVATE_UMASK = 0o077


# -- serve -------------------------------------------------------------------
@cli.command()
@common_options
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on (default 5232).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this PEM certificate (needs --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The PEM private key of --tls-cert.")
@click.option("--database", default=None, metavar="URL",
              help="Keep the cards in this PostgreSQL database (postgresql://...), shared "
                   "with other servers, instead of files ([storage] backend).")
def serve(data_dir: str | None, config_file: str | None, host: str | None, port: int | None,
          log_level: str, tls_cert: str | None, tls_key: str | None,
          database: str | None) -> None:
    """Start the CardDAV server (loopback only, login required, by default)."""
    from cardfile.cli import server

    settings = _settings(data_dir, config_file, shared=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for change in file_modes.tighten_data_dir(settings.data_dir):
        click.echo(f"Warning: {change}", err=True)
    configuration = settings_mod.radicale_configuration(settings)
    hosts = _listen_addresses(configuration.get("server", "hosts"), host, port)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    server_options = {"hosts": ", ".join(hosts)}
    if tls_cert and tls_key:
        server_options |= {"ssl": "True", "certificate": str(Path(tls_cert).resolve()),
                           "key": str(Path(tls_key).resolve())}
    overrides: dict[str, dict[str, str]] = {"server": server_options}
    if database is not None:
        overrides["storage"] = {"backend": database}
    configuration = settings_mod.radicale_configuration(settings, overrides)
    _check_database(configuration)
    auth_type = str(configuration.get("auth", "type"))
    exposed = [h for h in hosts if not settings_mod.is_loopback(h.rsplit(":", 1)[0])]
    if exposed and auth_type in ("none", "remote_user", "http_x_remote_user"):
        raise click.UsageError(
            f"refusing to listen on {', '.join(exposed)} with authentication off "
            f"([auth] type = {auth_type}); use a loopback address or turn authentication on")
    _check_free(hosts)
    if len(hosts) > 1:
        raise click.UsageError(
            f"[server] hosts names {len(hosts)} addresses ({', '.join(hosts)}); the server "
            "listens on one (use [::] for every IPv4 and IPv6 address, or --host)")
    server.configure_logging(log_level)
    scheme = "https" if configuration.get("server", "ssl") else "http"
    if auth_type == "htpasswd":
        first_run.create_first_user(Path(str(configuration.get("auth", "htpasswd_filename"))),
                                    f"{scheme}://{hosts[0]}", settings.data_dir)
    click.echo(f"Cardfile serving {settings.data_dir} on "
               + ", ".join(f"{scheme}://{h}/" for h in hosts), err=True)
    server.serve(server.Recipe(str(settings.data_dir),
                               None if settings.config_file is None else str(settings.config_file),
                               overrides, log_level))


def _check_database(configuration: object) -> None:
    """Refuse to serve a database whose schema is not this Cardfile's (and say why)."""
    from cardfile.cli.db import check_before_serving

    check_before_serving(configuration)


def _check_free(hosts: list[str]) -> None:
    """Say which address is taken before Radicale's 'No servers started' would."""
    import socket

    from cardfile.cli.errors import PortInUse

    for host_port in hosts:
        host, _, port = host_port.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, int(port)))
            except OSError as e:
                raise PortInUse(
                    f"cannot listen on {host_port}: {e.strerror} (is another Cardfile or "
                    "program using it? choose another with --port)") from None


def _listen_addresses(configured: list[tuple[str, int]], host: str | None,
                      port: int | None) -> list[str]:
    if host is None and port is None:
        pairs = configured
    else:
        default_host, default_port = configured[0] if configured else ("127.0.0.1", 5232)
        pairs = [(host or default_host, default_port if port is None else port)]
    return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in pairs]


# -- user --------------------------------------------------------------------
@cli.group()
def user() -> None:
    """Manage the accounts that may log in."""


_ALLOW_WEAK_HELP = ("Accept a short, common or name-like password (for tests and throw-away "
                   "servers only).")


def _read_password(password_stdin: bool, name: str) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = click.prompt(f"Password for {name}", hide_input=True,
                              confirmation_prompt=True)
    return value


def _user_action(action: Callable[[], object]) -> None:
    try:
        action()
    except users.UserError as e:
        raise click.ClickException(str(e)) from None


@user.command("add")
@common_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--allow-weak", is_flag=True, help=_ALLOW_WEAK_HELP)
def user_add(data_dir: str | None, config_file: str | None, name: str,
             password_stdin: bool, allow_weak: bool) -> None:
    """Add a user (asks for the password)."""
    settings = _settings(data_dir, config_file)
    _user_action(lambda: users.validate_name(name))
    password = _read_password(password_stdin, name)
    _user_action(lambda: users.add(settings.htpasswd, name, password, allow_weak))
    click.echo(f"Added user {name!r}.", err=True)


@user.command("passwd")
@common_options
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--allow-weak", is_flag=True, help=_ALLOW_WEAK_HELP)
def user_passwd(data_dir: str | None, config_file: str | None, name: str,
                password_stdin: bool, allow_weak: bool) -> None:
    """Change a user's password."""
    settings = _settings(data_dir, config_file)
    if name not in users.read(settings.htpasswd):
        raise click.ClickException(f"no user {name!r}; use 'cardfile user add {name}'")
    password = _read_password(password_stdin, name)
    _user_action(lambda: users.set_password(settings.htpasswd, name, password, allow_weak))
    first_run.forget_password_file(settings.data_dir, name)
    click.echo(f"Changed the password of {name!r}.", err=True)


@user.command("list")
@common_options
def user_list(data_dir: str | None, config_file: str | None) -> None:
    """List the users, one per line."""
    settings = _settings(data_dir, config_file)
    for name in users.read(settings.htpasswd):
        click.echo(name)


@user.command("remove")
@common_options
@click.argument("name")
def user_remove(data_dir: str | None, config_file: str | None, name: str) -> None:
    """Remove a user's login (their contacts stay on disk)."""
    settings = _settings(data_dir, config_file)
    _user_action(lambda: users.remove(settings.htpasswd, name))
    click.echo(f"Removed user {name!r}; their contacts stay in "
               f"{settings.collection_root / name}.", err=True)


def main() -> None:
    """The installed ``cardfile`` command."""
    from cardfile.cli.errors import run
    from cardfile.cli.terminal import guard_terminal_streams

    guard_terminal_streams()
    run(cli)


if __name__ == "__main__":
    main()
