"""A source's credentials: encrypted at rest, with a key that is not in the data folder.

The server needs the password in clear to log in to the source, so it cannot
be hashed; it is encrypted with Fernet (AES-128-CBC + HMAC, from
``cryptography``) under a key kept in the user's configuration folder
(``$CARDFILE_KEY_FILE``, else ``$XDG_CONFIG_HOME/cardfile/sources.key``, mode
0600). A copy of the data folder (a backup, an rsync, a stolen disk image of
``/var/lib/cardfile`` alone) then holds only ciphertext. The encrypted file
sits in the source's book folder, is left out of backups unless asked for,
and nothing here ever returns or logs the password to anyone but the HTTP
client that logs in with it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from cardfile.plugin.contacts import state_files
from cardfile.plugin.refused import Refused

SECRET_FILE = ".cardfile-source.secret"


def key_file(data_dir: str | os.PathLike[str]) -> Path:
    configured = os.environ.get("CARDFILE_KEY_FILE")
    if configured:
        path = Path(configured).expanduser()
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
        path = Path(base) / "cardfile" / "sources.key"
    path = path.resolve()
    data = Path(data_dir).resolve()
    if path == data or data in path.parents:
        raise Refused(400, f"the key for source credentials ({path}) must not be inside the "
                           f"data folder {data}; set CARDFILE_KEY_FILE to a path outside it")
    return path


def _fernet(data_dir: str | os.PathLike[str], create: bool):  # type: ignore[no-untyped-def]
    try:
        from cryptography.fernet import Fernet
    except ImportError:  # pragma: no cover - a dependency; said clearly if missing
        raise Refused(500, "storing source passwords needs the 'cryptography' package") \
            from None
    path = key_file(data_dir)
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # One key per data folder, ever: two processes (or servers) creating it at
        # once must not each keep a key of their own.
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with state_files.exclusive(path):
                try:
                    key = path.read_bytes().strip()
                except FileNotFoundError:
                    key = Fernet.generate_key()
                    state_files.write(path, key + b"\n", 0o600)
        finally:
            os.close(fd)
    return Fernet(key)


def store(data_dir: str | os.PathLike[str], book_folder: str, username: str,
          password: str) -> None:
    """Encrypt and keep the credentials for the source whose book is ``book_folder``."""
    fernet = _fernet(data_dir, create=True)
    token = fernet.encrypt(json.dumps({"username": username, "password": password}).encode())
    target = os.path.join(book_folder, SECRET_FILE)
    state_files.write(target, token, 0o600)


def load(data_dir: str | os.PathLike[str], book_folder: str) -> tuple[str, str]:
    """(username, password) for the source, ("", "") if it has none."""
    try:
        with open(os.path.join(book_folder, SECRET_FILE), "rb") as f:
            token = f.read()
    except FileNotFoundError:
        return "", ""
    fernet = _fernet(data_dir, create=False)
    if fernet is None:
        raise Refused(401, "the key that encrypts this source's password is gone "
                           f"({key_file(data_dir)}); sign in again with 'cardfile sources login'")
    from cryptography.fernet import InvalidToken

    try:
        data = json.loads(fernet.decrypt(token))
    except (InvalidToken, ValueError):
        raise Refused(401, "this source's password cannot be decrypted with the key at "
                           f"{key_file(data_dir)}; sign in again with 'cardfile sources login'"
                      ) from None
    return str(data.get("username", "")), str(data.get("password", ""))


def has_secret(book_folder: str) -> bool:
    return os.path.isfile(os.path.join(book_folder, SECRET_FILE))


def forget(book_folder: str) -> None:
    state_files.remove(os.path.join(book_folder, SECRET_FILE))
