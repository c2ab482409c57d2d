"""The ``cardfile`` entry point: a user's mistake ends in one sentence, never a traceback.

click already reports its own usage errors; what remains are mistakes that
surface as exceptions deep inside a command (an unwritable ``-o``, a file
that is not there, a configuration file that does not parse, a port another
program holds). They are turned into an ``Error:`` line here, in one place,
instead of a ``try`` in every command. The core's one refusal type
(``Refused``: a card that cannot be read, a book that is not there, a backup
that is damaged) is one of them; commands catch it themselves only to add a
hint naming the flags the user gave.
"""

from __future__ import annotations

import sys

import click

from cardfile.cli.settings import ConfigFileError
from cardfile.plugin.refused import Refused


class PortInUse(Exception):
    """The address ``cardfile serve`` should listen on is taken."""


def describe_os_error(error: OSError) -> str:
    where = f" {error.filename}" if error.filename else ""
    reason = error.strerror or str(error)
    return f"cannot use{where}: {reason}"


def run(command: click.Command) -> None:
    """Run ``command`` as the program, mapping a user's mistakes to one line and exit 1."""
    try:
        command.main(prog_name="cardfile")
    except (ConfigFileError, PortInUse, Refused) as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"Error: {describe_os_error(e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
