"""Options and helpers every ``cardfile`` command shares."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli import users
from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.refused import Refused

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """``--data-dir`` and ``--config``, so several servers can run side by side."""
    func = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), default=None,
        help="Configuration file (Radicale INI format). "
             "Default: $XDG_CONFIG_HOME/cardfile/config if it exists.")(func)
    func = click.option(
        "--data-dir", type=click.Path(file_okay=False), default=None,
        help="Where contacts, users and the index live. "
             "Default: $XDG_DATA_HOME/cardfile (~/.local/share/cardfile).")(func)
    return func


def _settings(data_dir: str | None, config_file: str | None,
              shared: bool = True) -> settings_mod.Settings:
    """The command's folders; with PostgreSQL, its small files brought up to the database.

    ``shared``: False for ``serve`` and ``db``, which open the database their own way.
    """
    try:
        settings = settings_mod.resolve(data_dir, config_file)
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None
    if shared:
        _share_database(settings)
    return settings


def postgres_backend(settings: settings_mod.Settings) -> str | None:
    """``[storage] backend`` when it names a PostgreSQL database, else None (files).

    A broken configuration file reads as None here: the command that reads it
    reports it.
    """
    try:
        configuration = settings_mod.radicale_configuration(settings)
        backend = str(configuration.get("storage", "backend")).strip()
    except (KeyError, settings_mod.ConfigFileError):
        return None
    return backend if backend.startswith(("postgresql://", "postgres://")) else None


def _share_database(settings: settings_mod.Settings) -> None:
    """With ``[storage] backend = postgresql://``: what this command reads and writes of
    passwords, grants and settings is the database's (``contacts/state_files.py``)."""
    backend = postgres_backend(settings)
    if backend is None:
        return
    from cardfile.plugin.contacts import state_files
    from cardfile.plugin.store.pg_files import PgFiles
    from cardfile.plugin.store.postgres import PgStore, display_url

    store = PgStore(backend, pool_size=1)
    try:
        store.check_schema()
        # The folder is only this machine's copy of the database's state: made
        # here for a machine's first command (``cardfile user add`` before its
        # first ``serve``), where a mistyped folder can split nothing.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state_files.share(settings.data_dir, PgFiles(store))
        state_files.catch_up(settings.data_dir)
    except Refused as e:
        raise click.ClickException(f"the database {display_url(backend)}: {e.reason}"
                                   ) from None


def load_storage(settings: settings_mod.Settings, configuration: Any) -> Any:
    """Radicale's storage over an existing data folder (never a new one by mistake).

    Loading it creates ``collection-root`` and the index, so a typo in
    ``--data-dir`` would start an empty second data folder; only ``serve``,
    ``user add`` and ``restore`` make one.
    """
    if not settings.data_dir.is_dir():
        raise click.ClickException(
            f"there is no Cardfile data folder at {settings.data_dir}; check --data-dir "
            "(a folder is made by 'cardfile serve' or 'cardfile user add')")
    return radicale.load_storage(configuration)


def refuse_writing_a_database_cache(settings: settings_mod.Settings) -> None:
    """Refuse a change to the books of a server's cache of PostgreSQL, made without the database.

    A server on PostgreSQL keeps its copy of the database's books in its data
    folder. A command given that folder but not the server's configuration
    took it for a file store and changed the copy alone: a category renamed
    so was served by GET, yet no client's sync reported it and the database
    never had it. Reading the copy (a search, an export) stays allowed.
    """
    if postgres_backend(settings) is None and _is_database_cache(settings.data_dir):
        raise click.ClickException(
            f"{settings.data_dir} is a server's copy of a PostgreSQL database, and this "
            "command was given no database: run it with the server's configuration "
            "(--config FILE, or [storage] backend in your configuration file). A change "
            "made to the copy alone would reach neither the database nor any client.")


def _is_database_cache(data_dir: Path) -> bool:
    """Whether the index in ``data_dir`` holds books copied from PostgreSQL."""
    from cardfile.plugin.contacts.storage import INDEX_FILE_NAME  # (heavy imports)
    from cardfile.plugin.store.index import holds_database_copies

    return holds_database_copies(str(data_dir / INDEX_FILE_NAME))


def default_user(settings: settings_mod.Settings) -> str:
    """The only user if there is exactly one, else the login name."""
    names = list(users.read(settings.htpasswd))
    return names[0] if len(names) == 1 else getpass.getuser()


def existing_user(settings: settings_mod.Settings, user: str | None,
                  contacts_suffice: bool = True) -> str:
    """``user`` (else ``default_user``), who must be one of the server's users.

    A mistyped ``--user`` made commands write a book for nobody: a folder no
    one can log in to, found later as clutter. A user removed with ``cardfile
    user remove`` keeps their contacts on disk, and (``contacts_suffice``) may
    still be named to read, export or change them; not for a new login (a
    device password), which ``contacts_suffice=False`` refuses. A data folder
    with no user yet is left alone: the first ``cardfile user add`` may come
    after an import.
    """
    name = user or default_user(settings)
    known = users.read(settings.htpasswd)
    if (known and name not in known
            and not (contacts_suffice and radicale.is_safe_name(name)
                     and (settings.collection_root / name).is_dir())):
        raise click.ClickException(f"no user {name!r}; the users are: {', '.join(known)}")
    return name
