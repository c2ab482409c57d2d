"""``cardfile backup`` and ``cardfile restore``: thin commands over ``plugin/contacts/backup.py``.

Both take Radicale's storage lock through the same storage object a running
server uses, so they are safe while ``cardfile serve`` runs: a backup waits
for writes in progress and blocks new ones only while it reads; a restore
swaps folders in while no request is in the middle of a write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli.options import _settings, common_options, load_storage, postgres_backend
from cardfile.plugin.contacts import backup as backup_mod


def _files_store_only(settings: settings_mod.Settings, command: str) -> None:
    """Refuse ``backup`` and ``restore`` when the contacts live in PostgreSQL.

    They archive and bring back the data folder, which on PostgreSQL is only
    this machine's cache of the database: a backup of it could miss what
    other servers wrote, and a restore into it would be overwritten by the
    database at the next request. Said plainly instead, with what to use.
    """
    backend = postgres_backend(settings)
    if backend is not None:
        from cardfile.plugin.store.postgres import display_url

        raise click.ClickException(
            f"'cardfile {command}' works on the file store; these contacts are in the "
            f"database {display_url(backend)} ([storage] backend). Use 'cardfile db export "
            "DIR' and 'cardfile db import DIR' (every book as .vcf files), or PostgreSQL's "
            "own pg_dump and pg_restore.")


def _lock_factory(settings: settings_mod.Settings) -> Any:
    configuration = settings_mod.radicale_configuration(settings)
    storage = load_storage(settings, configuration)

    def lock(mode: str) -> AbstractContextManager[object]:
        return _locked(storage, mode)

    return lock


@contextmanager
def _locked(storage: Any, mode: str) -> Iterator[object]:
    with storage.acquire_lock(mode):
        yield storage


@click.command("backup")
@common_options
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--no-users", is_flag=True,
              help="Leave out the users: htpasswd (password hashes) and grants/ "
                   "(devices, tokens, friends, shares).")
@click.option("--with-source-passwords", is_flag=True,
              help="Also archive connected sources' encrypted passwords (useless without "
                   "the key outside the data folder).")
def backup(data_dir: str | None, config_file: str | None, file: str, no_users: bool,
           with_source_passwords: bool) -> None:
    """Write the contacts, categories and users to FILE (.tar.gz), safely while serving."""
    settings = _settings(data_dir, config_file)
    _files_store_only(settings, "backup")
    summary = backup_mod.create(settings.data_dir, Path(file), _lock_factory(settings),
                                include_users=not no_users,
                                include_credentials=with_source_passwords)
    users = f", users: {', '.join(summary.users)}" if summary.users else ", no users"
    click.echo(f"Backed up {summary.cards} card(s) in {summary.files} file(s) "
               f"({summary.bytes} bytes{users}) to {file}.")
    if summary.left_out:
        shown = ", ".join(repr(name) for name in summary.left_out[:5])
        more = f" and {len(summary.left_out) - 5} more" if len(summary.left_out) > 5 else ""
        click.echo(f"Warning: left out {len(summary.left_out)} file(s) whose names a restore "
                   f"cannot bring back (a backslash in the name): {shown}{more}. Rename them "
                   "(without a backslash) and back up again.", err=True)


@click.command("restore")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--force", is_flag=True,
              help="Restore over existing data (it is moved to replaced-<time>/ first).")
def restore(data_dir: str | None, config_file: str | None, file: str, force: bool) -> None:
    """Bring back a backup written by 'cardfile backup' (refuses to overwrite without --force)."""
    settings = _settings(data_dir, config_file)
    _files_store_only(settings, "restore")
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    summary = backup_mod.restore(Path(file), settings.data_dir, _lock_factory(settings),
                                 force=force)
    click.echo(f"Restored {summary.cards} card(s) in {summary.files} file(s) into "
               f"{settings.data_dir}.")
    if summary.moved_aside is not None:
        click.echo(f"What was there before is kept in {summary.moved_aside}.")
    if summary.users:
        click.echo(f"Users: {', '.join(summary.users)}.")


def register(cli: click.Group) -> None:
    cli.add_command(backup)
    cli.add_command(restore)
