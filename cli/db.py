"""``cardfile db``: the PostgreSQL store's schema, and moving books in and out of it.

The database is the one of ``--database URL``, else ``[storage] backend`` of
the configuration. Every command is thin: the schema lives in
``plugin/store/pg_schema.py``, the transfer in ``plugin/contacts/db_transfer.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli.options import _settings, common_options
from cardfile.plugin.contacts import db_transfer, tombstones
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.pg_schema import LATEST, SchemaMismatch
from cardfile.plugin.store.postgres import PgStore, display_url

_DATABASE_HELP = ("The PostgreSQL database (postgresql://user@host/name). Default: "
                  "[storage] backend of the configuration.")


def database_url(settings: settings_mod.Settings, given: str | None) -> str:
    """The database a ``db`` command works on, or a usage error that says where to set it."""
    url = given
    if url is None:
        configuration = settings_mod.radicale_configuration(settings)
        try:
            url = str(configuration.get("storage", "backend"))
        except KeyError:
            url = ""
    if not url.startswith(("postgresql://", "postgres://")):
        raise click.UsageError("no PostgreSQL database: give --database postgresql://... or "
                               "set [storage] backend in the configuration")
    return url


def check_before_serving(configuration: Any) -> None:
    """Refuse to start on a database of another schema or a pruning policy that is no number.

    Warn when the database cannot be reached.
    """
    try:
        backend = str(configuration.get("storage", "backend")).strip()
    except KeyError:
        return
    if backend.lower() in ("", "file", "files"):
        return
    if not backend.startswith(("postgresql://", "postgres://")):
        raise click.UsageError(f"[storage] backend = {backend!r} is neither 'files' nor a "
                               "postgresql:// address")
    try:
        tombstones.policy_of(configuration)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    store = PgStore(backend, pool_size=1)
    try:
        store.check_schema()
    except SchemaMismatch as e:
        raise click.ClickException(f"not serving the database {display_url(backend)}: {e}"
                                   ) from None
    except Refused:
        click.echo(f"Warning: the database {display_url(backend)} cannot be reached now; "
                   "requests are answered 503 until it can", err=True)
    finally:
        store.close()


@contextmanager
def _store(url: str, check: bool = True) -> Iterator[PgStore]:
    store = PgStore(url, pool_size=1)
    try:
        if check:
            try:
                store.check_schema()
            except SchemaMismatch as e:
                raise click.ClickException(str(e)) from None
        yield store
    finally:
        store.close()


@click.group()
def db() -> None:
    """The PostgreSQL store: schema upgrades, export to and import from vdir folders."""


@db.command("upgrade")
@common_options
@click.option("--database", default=None, help=_DATABASE_HELP)
def upgrade(data_dir: str | None, config_file: str | None, database: str | None) -> None:
    """Create or upgrade the database's tables (servers never do it themselves)."""
    url = database_url(_settings(data_dir, config_file, shared=False), database)
    with _store(url, check=False) as store:
        try:
            applied = store.upgrade()
        except SchemaMismatch as e:
            raise click.ClickException(str(e)) from None
    done = (f"applied migration(s) {', '.join(map(str, applied))}" if applied
            else "nothing to do")
    click.echo(f"Database {display_url(url)} is at schema version {LATEST} ({done}).",
               err=True)


@db.command("export")
@common_options
@click.option("--database", default=None, help=_DATABASE_HELP)
@click.argument("folder", type=click.Path(file_okay=False))
def export(data_dir: str | None, config_file: str | None, database: str | None,
           folder: str) -> None:
    """Write every book as FOLDER/<user>/<book>/<card>.vcf (the file store's layout).

    With the cards, the small files (categories, grants, users); history and
    trash stay in the database.
    """
    settings = _settings(data_dir, config_file, shared=False)
    url = database_url(settings, database)
    target = Path(folder)
    if target.exists() and any(target.iterdir()):
        raise click.ClickException(f"{target} is not empty; export into a new folder")
    with _store(url) as store:
        summary = db_transfer.export(store, target, settings.collection_root)
    click.echo(f"Exported {summary.cards} card(s) of {summary.books} book(s) and "
               f"{summary.files} other file(s) to {target}.", err=True)
    for name in summary.skipped:
        click.echo(f"Warning: left out {name!r} (not a safe file name)", err=True)


@db.command("import")
@common_options
@click.option("--database", default=None, help=_DATABASE_HELP)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
def import_(data_dir: str | None, config_file: str | None, database: str | None,
            folder: str) -> None:
    """Load the books of FOLDER (a data folder or <user>/<book>/*.vcf) into the database.

    Each book found replaces the database's book of the same name. Only the
    cards: the replaced cards are not kept in the trash, and a data folder's
    history stays there.
    """
    url = database_url(_settings(data_dir, config_file, shared=False), database)
    with _store(url) as store:
        summary = db_transfer.import_folder(store, Path(folder))
    click.echo(f"Imported {summary.cards} card(s) of {summary.books} book(s) "
               f"({summary.changed} change(s)) and {summary.files} other file(s).", err=True)
    for name in summary.skipped:
        click.echo(f"Warning: left out {name!r} (not a safe file name)", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(db)
