"""The ``cardfile`` command's list of commands, with its command modules imported lazily.

``cli/main.py`` names each command and the module that registers it
(``LAZY_COMMANDS``) so that ``cardfile serve`` imports none of them; these
tests keep that list equal to what the modules really register and show that
``--help`` still lists every command.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from cardfile.cli import main
from tests.conftest import cardfile_command

#: The command modules and how each adds its commands.
_MODULES = ("categories", "contacts", "maintenance", "history", "sources", "grants", "db")


def _registered_by(module: str) -> set[str]:
    group = click.Group()
    loaded = importlib.import_module(f"cardfile.cli.{module}")
    if module == "categories":
        group.add_command(loaded.categories)
    else:
        loaded.register(group)
    return set(group.commands)


def test_every_registered_command_is_named_for_lazy_loading() -> None:
    named = {name: modules[0] for name, modules in main.LAZY_COMMANDS.items()}
    for module in _MODULES:
        for command in _registered_by(module):
            assert named.get(command) == module, (command, module)
    assert set(named.values()) == set(_MODULES)


def test_help_lists_every_command() -> None:
    result = subprocess.run([*cardfile_command(), "--help"], capture_output=True, text=True,
                            timeout=60, check=True)
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == set(main.LAZY_COMMANDS) | {"serve", "user"}


def test_contacts_has_its_subcommand_from_another_module() -> None:
    result = subprocess.run([*cardfile_command(), "contacts", "--help"], capture_output=True,
                            text=True, timeout=60, check=True)
    assert {"list", "show", "remove"} <= {
        line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
        if line.strip()}


def test_the_server_imports_no_command_module() -> None:
    code = ("import sys, cardfile.cli.main, cardfile.cli.server; "
            "print(sorted(m for m in sys.modules if m.startswith('cardfile.cli.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    loaded = result.stdout
    for module in _MODULES:
        assert f"'cardfile.cli.{module}'" not in loaded, (module, loaded)
