"""``cardfile sources``: address books kept in step with other services.

Works on the data folder directly, with or without a running server (the
same storage lock and write path); a running server also refreshes each
source on its interval.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli.options import (
    _settings,
    common_options,
    existing_user,
    load_storage,
    refuse_writing_a_database_cache,
)
from cardfile.plugin.contacts.sources import connect, registry, sync


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--user", "user_name", default=None,
                        help="Whose sources (default: the only user, else your login "
                             "name).")(func)
    return common_options(func)


def _open(data_dir: str | None, config_file: str | None, user_name: str | None,
          changes_books: bool = False) -> tuple[Any, str]:
    """The storage and user; ``changes_books``: the command writes cards (a sync, a
    connection, a disconnection), refused on a PostgreSQL server's copy alone."""
    settings = _settings(data_dir, config_file)
    if changes_books:
        refuse_writing_a_database_cache(settings)
    storage = load_storage(settings, settings_mod.radicale_configuration(settings))
    return storage, existing_user(settings, user_name)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _line(result: dict[str, Any], name: str) -> str:
    return f"{name}: {result['status']}: {result.get('message', '')}"


@click.group("sources")
def sources() -> None:
    """Connect address books of other services and keep them current."""
    # The status line is the output; the log's copy of it would say it twice.
    logging.getLogger("cardfile").addHandler(logging.NullHandler())


@sources.command("add")
@source_options
@click.argument("url")
@click.option("--name", default=None, help="Short name (default: from the URL); the "
                                           "address book is source-NAME.")
@click.option("--interval", type=click.IntRange(registry.MIN_INTERVAL, 7 * 86400),
              default=registry.DEFAULT_INTERVAL, show_default=True,
              help="Seconds between refreshes while 'cardfile serve' runs.")
@click.option("--into", type=click.Choice(registry.INTO), default="own", show_default=True,
              help="own: a read-only book of its own; main: also consolidated into your "
                   "contacts, with provenance.")
@click.option("--kind", type=click.Choice([*registry.KINDS, *registry.PLANNED_KINDS]),
              default=None, help="What URL is (default: found out). google-carddav and "
                                 "microsoft-graph are designed, not built: see the README.")
@click.option("--login", "username", default="", help="User name at the source.")
@click.option("--password-stdin", is_flag=True,
              help="Read the source's password (or app password) from standard input.")
@click.option("--no-sync", is_flag=True, help="Do not sync right away.")
def add(data_dir: str | None, config_file: str | None, user_name: str | None, url: str,
        name: str | None, interval: int, into: str, kind: str | None, username: str,
        password_stdin: bool, no_sync: bool) -> None:
    """Connect URL (CardDAV server or book, vCard/CSV file URL, or a local folder)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else ""
    if password and not username:
        raise click.UsageError("--password-stdin needs --login (the user name at the source)")
    storage, user = _open(data_dir, config_file, user_name, changes_books=True)
    source = connect.add(storage, user, url, name, interval, into, username, password, kind)
    click.echo(f"Connected {source.kind} source {source.name!r}: address book "
               f"/{user}/{source.book}/", err=True)
    if not no_sync:
        result = sync.refresh(storage, user, source.name)
        click.echo(_line(result, source.name))
        if result["status"] != "ok":
            sys.exit(1)


@sources.command("list")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(data_dir: str | None, config_file: str | None, user_name: str | None,
          as_json: bool) -> None:
    """Every source, its status and when it last synced."""
    storage, user = _open(data_dir, config_file, user_name)
    found = [sync.status_of(s, f) for s, f in registry.sources_of(storage, user)]
    if as_json:
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
        return
    if not found:
        click.echo("No sources; connect one with 'cardfile sources add URL'.", err=True)
    for s in found:
        click.echo(f"{s['name']:20s} {s['kind']:8s} {s['cards']:6d} cards  "
                   f"{s['status']:20s} last sync {_when(s['last_sync'])}  {s['url']}")


@sources.command("show")
@source_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(data_dir: str | None, config_file: str | None, user_name: str | None, name: str,
         as_json: bool) -> None:
    """One source: last sync, counts, problems (never its password)."""
    storage, user = _open(data_dir, config_file, user_name)
    status = sync.status_of(*registry.find(storage, user, name))
    if as_json:
        click.echo(json.dumps(status, indent=1, ensure_ascii=False))
        return
    counts = status["counts"]
    click.echo(f"Name:       {status['name']} ({status['kind']})\n"
               f"URL:        {status['url']}\n"
               + (f"Book URL:   {status['book_url']}\n" if status["book_url"] else "")
               + f"Book:       /{user}/{status['book']}/ (into {status['into']})\n"
               f"Login:      {status['username'] or '-'}"
               f"{' (password stored, encrypted)' if status['has_password'] else ''}\n"
               f"Status:     {status['status']}: {status['message']}\n"
               f"Last sync:  {_when(status['last_sync'])} "
               f"({'incremental' if status['incremental'] else 'full'})\n"
               f"Last OK:    {_when(status['last_success'])}\n"
               f"Next sync:  {_when(status['next_sync'])} (every {status['interval']} s)\n"
               f"Cards:      {status['cards']}\n"
               f"Last run:   {counts['added']} added, {counts['updated']} updated, "
               f"{counts['removed']} removed, {counts['unchanged']} unchanged, "
               f"{counts['skipped']} skipped")
    for problem in status["problems"]:
        click.echo(f"  skipped: {problem}")


@sources.command("sync")
@source_options
@click.argument("name", required=False)
def sync_(data_dir: str | None, config_file: str | None, user_name: str | None,
          name: str | None) -> None:
    """Refresh NAME (or every source) now; exit 1 if any failed."""
    storage, user = _open(data_dir, config_file, user_name, changes_books=True)
    names = [name] if name else [s.name for s, _ in registry.sources_of(storage, user)]
    failed = False
    for each in names:
        result = sync.refresh(storage, user, each)
        click.echo(_line(result, each))
        failed = failed or result["status"] != "ok"
    if failed:
        sys.exit(1)


@sources.command("login")
@source_options
@click.argument("name")
@click.option("--login", "username", required=True, help="User name at the source.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def login(data_dir: str | None, config_file: str | None, user_name: str | None, name: str,
          username: str, password_stdin: bool) -> None:
    """Sign in to a source again (after 'needs sign-in again')."""
    password = (sys.stdin.readline().rstrip("\r\n") if password_stdin
                else click.prompt(f"Password at {name}", hide_input=True))
    storage, user = _open(data_dir, config_file, user_name)
    connect.login(storage, user, name, username, password)
    click.echo(f"Stored the new sign-in for {name!r}; it syncs at the next refresh.", err=True)


@sources.command("remove")
@source_options
@click.argument("name")
def remove(data_dir: str | None, config_file: str | None, user_name: str | None,
           name: str) -> None:
    """Disconnect NAME: its book, state and password go; your own contacts stay."""
    storage, user = _open(data_dir, config_file, user_name, changes_books=True)
    source = registry.find(storage, user, name)[0]
    if source.into == "main":
        from cardfile.plugin.contacts.sources import consolidate

        consolidate.disconnect(storage, source)
    registry.remove(storage, user, name)
    click.echo(f"Removed source {name!r} and its address book /{user}/{source.book}/.",
               err=True)


def register(cli: click.Group) -> None:
    cli.add_command(sources)
