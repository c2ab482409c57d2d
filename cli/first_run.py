"""The first start of ``cardfile serve``: create a user and hand over its password once.

The password goes to the terminal, never through ``logging`` (whose lines a
service manager keeps in its journal). When standard output is not a
terminal (a systemd unit, a pipe into a log file), the password is written
instead to ``first-run-password`` in the data folder, readable only by its
owner, and only that file's path is printed. ``cardfile user passwd`` of that
user deletes the file, and the backup leaves it out.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from cardfile.cli import users

PASSWORD_FILE = "first-run-password"


def create_first_user(htpasswd: Path, server_url: str, data_dir: Path) -> None:
    """With no users yet, create one for the login name and show its password once."""
    if users.read(htpasswd):
        return
    name = getpass.getuser()
    try:
        users.validate_name(name)
    except users.UserError:
        name = "cardfile"
    password = users.generate_password()
    users.add(htpasswd, name, password)
    if sys.stdout.isatty():
        shown = password
    else:
        path = write_password_file(data_dir, name, password)
        shown = (f"written to {path} (only you can read it); standard output is not a "
                 "terminal, so it is not printed. Delete the file once you have noted it.")
    click.echo(
        "\nFirst run: created the user below. The password is shown only this once;\n"
        f"change it with 'cardfile user passwd {name}'.\n\n"
        f"  Server:   {server_url}/\n"
        f"  Contacts: {server_url}/{name}/contacts/\n"
        f"  User:     {name}\n"
        f"  Password: {shown}\n")


def write_password_file(data_dir: Path, name: str, password: str) -> Path:
    """Write the first user's name and password to a file only its owner can read."""
    path = data_dir / PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # it may have existed with another mode
        f.write(f"User:     {name}\nPassword: {password}\n")
    return path


def forget_password_file(data_dir: Path, name: str) -> None:
    """Delete the first-run password file once ``name``'s password has changed."""
    path = data_dir / PASSWORD_FILE
    try:
        first_line = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return
    if first_line.split(":", 1)[-1].strip() == name:
        path.unlink(missing_ok=True)
