"""The htpasswd file of bcrypt hashes that Radicale's ``htpasswd`` auth reads.

Radicale only reads the file; adding, changing and removing users is ours.
Writes are atomic (temporary file, fsync, rename) so a server reading the
file never sees half of it, and the file is private to its owner.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import bcrypt

from cardfile.cli import password_policy
from cardfile.plugin.contacts import state_files

_VALID_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")


class UserError(ValueError):
    """A user-management request that cannot be carried out (message says why)."""


def validate_name(name: str) -> str:
    if not _VALID_NAME.match(name) or name.startswith("."):
        raise UserError(
            f"invalid user name {name!r}: use 1-64 letters, digits or . _ @ + - "
            "(not starting with a dot)")
    return name


def read(path: Path) -> dict[str, str]:
    """User name -> hash, in file order."""
    users: dict[str, str] = {}
    if not path.exists():
        return users
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and ":" in line:
            name, _, hashed = line.partition(":")
            users[name] = hashed
    return users


def _write(path: Path, users: dict[str, str]) -> None:
    state_files.write_text(path, "".join(f"{name}:{hashed}\n" for name, hashed in users.items()),
                           0o600)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(password: str) -> str:
    if not password:
        raise UserError("the password is empty")
    if len(password.encode()) > 72:
        raise UserError("the password is longer than 72 bytes (bcrypt's limit)")
    if "\n" in password or "\r" in password:
        raise UserError("the password contains a line break")
    return password


def check_strength(name: str, password: str) -> str:
    """``password`` if a person may use it (see password_policy), else ``UserError``."""
    try:
        password_policy.check(name, password)
    except password_policy.WeakPassword as e:
        raise UserError(f"{e}; nothing was changed") from None
    return password


def add(path: Path, name: str, password: str, allow_weak: bool = False) -> None:
    users = read(path)
    if validate_name(name) in users:
        raise UserError(f"user {name!r} exists already; use 'cardfile user passwd {name}'")
    check_password(password)
    if not allow_weak:
        check_strength(name, password)
    users[name] = hash_password(password)
    _write(path, users)


def set_password(path: Path, name: str, password: str, allow_weak: bool = False) -> None:
    users = read(path)
    if name not in users:
        raise UserError(f"no user {name!r}; use 'cardfile user add {name}'")
    check_password(password)
    if not allow_weak:
        check_strength(name, password)
    users[name] = hash_password(password)
    _write(path, users)


def remove(path: Path, name: str) -> None:
    users = read(path)
    if name not in users:
        raise UserError(f"no user {name!r}")
    del users[name]
    _write(path, users)


def generate_password() -> str:
    return secrets.token_urlsafe(15)
