"""Options and helpers every ``cardfile`` command shares."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cardfile.cli import settings as settings_mod
from cardfile.cli import users
from cardfile.plugin import radicale_adapter as radicale

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


def _settings(data_dir: str | None, config_file: str | None) -> settings_mod.Settings:
    try:
        return settings_mod.resolve(data_dir, config_file)
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None


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


def default_user(settings: settings_mod.Settings) -> str:
    """The only user if there is exactly one, else the login name."""
    names = list(users.read(settings.htpasswd))
    return names[0] if len(names) == 1 else getpass.getuser()
