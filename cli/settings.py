"""Where Cardfile keeps things, and the Radicale configuration built from them.

One function decides the data folder and one builds the configuration, so
``serve``, ``user`` and every later command agree on them. The shipped
default (``config/cardfile.conf``) is Radicale's INI format; a user file at
``$XDG_CONFIG_HOME/cardfile/config`` (or ``--config``) is layered on top.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# Options of Cardfile's own that the shipped configuration sets: Radicale refuses
# an option it does not know, so each registers itself when imported.
from cardfile.cli import server_options  # noqa: F401, E402  ([server] deadlines)
from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.dav import grant_guard, host_check, login_throttle  # noqa: F401, E402


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "cardfile"


def default_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "cardfile" / "config"


@dataclass(frozen=True)
class Settings:
    """The folders one ``cardfile`` invocation works on."""

    data_dir: Path
    config_file: Path | None

    @property
    def htpasswd(self) -> Path:
        return self.data_dir / "htpasswd"

    @property
    def collection_root(self) -> Path:
        return self.data_dir / "collection-root"


def resolve(data_dir: str | None, config_file: str | None) -> Settings:
    data = Path(data_dir).expanduser() if data_dir else default_data_dir()
    cfg: Path | None
    if config_file:
        explicit = Path(config_file).expanduser()
        if not explicit.is_file():
            raise FileNotFoundError(f"configuration file {explicit} does not exist")
        cfg = explicit
    else:
        cfg = default_config_file()
        if not cfg.is_file():
            cfg = None
    return Settings(data.resolve(), cfg)


class ConfigFileError(Exception):
    """A configuration file that cannot be used, said so that its owner can fix it."""


def _read_ini(text: str, data_dir: Path, source: str = "<config>") -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source)
    except configparser.Error as e:
        raise ConfigFileError(f"the configuration file {source} cannot be read: "
                              f"{' '.join(str(e).split())}") from None
    return {
        section: {key: value.replace("{data_dir}", str(data_dir))
                  for key, value in parser.items(section)}
        for section in parser.sections()
    }


def shipped_default_text() -> str:
    return (resources.files("cardfile.config") / "cardfile.conf").read_text()


def radicale_configuration(settings: Settings,
                           overrides: dict[str, dict[str, str]] | None = None) -> Any:
    """Radicale's Configuration: shipped default, then the user file, then flags."""
    configuration = radicale.load_configuration()
    layers = [("Cardfile default", _read_ini(shipped_default_text(), settings.data_dir))]
    if settings.config_file is not None:
        source = str(settings.config_file)
        try:
            text = settings.config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigFileError(f"the configuration file {source} cannot be read: {e}"
                                  ) from None
        layers.append((source, _read_ini(text, settings.data_dir, source)))
    if overrides:
        layers.append(("command line", overrides))
    for source, values in layers:
        try:
            configuration.update(values, source)
        except (RuntimeError, ValueError) as e:  # Radicale's words for a bad option
            raise ConfigFileError(f"{' '.join(str(e).split())} (fix it in {source})"
                                  ) from None
    return configuration


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
