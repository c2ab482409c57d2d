"""Backups of a data folder, and restoring them without ever losing what is there.

A backup is a ``.tar.gz`` of everything in the data folder that is not
derived or volatile: the address books (cards, ``.Radicale.props``, the
category stores), the merge history under ``merges/``, each book's history
and trash under ``history/`` (its SQLite file and write-ahead log, read under
the same lock, so they agree), and the users: ``htpasswd`` and ``grants/``
(devices, tokens, friendships and shares, secrets as bcrypt hashes only;
leave both out with ``include_users=False``: grants name users and are
meaningless, or wrong, on a server with other users). The index
is left out: it is rebuilt from the cards. The archive is written under
Radicale's storage *read* lock, so a running server keeps answering reads,
no write lands half-way through, and the archive shows one moment. It is
written to a temporary file and renamed, so FILE is never a partial archive.
A manifest (``cardfile-backup.json``) lists every file with its SHA-256.

Restoring treats the archive as untrusted: any member that is not a plain
file or folder under a relative, normalised name (``..``, absolute paths,
links, devices) refuses the whole archive, and every file must match the
manifest. Files are unpacked into a staging folder inside the data folder
first; only then, under the storage *write* lock, is each top-level entry
moved into place. Anything already there is never overwritten: without
``force`` the restore is refused, with ``force`` the old entries are moved
to ``replaced-<timestamp>-<random>/`` in the data folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from cardfile.plugin.refused import Refused

MANIFEST = "cardfile-backup.json"
FORMAT = 1
#: Derived, volatile or secret files at the top of the data folder: never archived,
#: never restored. Only at the top: a card may well be named "cardfile-index.sqlite3"
#: inside a book, and must then be backed up like any other card.
_TOP_SKIP_PREFIXES = ("cardfile-index.sqlite3", ".Radicale.lock", ".Radicale.tmp-",
                      ".cardfile-restore-", ".cardfile-worker-",
                      ".cardfile-logins.sqlite3", ".cardfile-state", ".cardfile-cache.lock",
                      ".cardfile-turnstile.lock")
_TOP_SKIP_NAMES = frozenset({".Radicale.cache", "first-run-password"})
#: Radicale's own cache and half-written files, at any depth. No card or book can
#: have these names: Radicale refuses every item or collection name starting with a dot.
_DEEP_SKIP_PREFIXES = (".Radicale.tmp-",)
_DEEP_SKIP_NAMES = frozenset({".Radicale.cache", ".Radicale.lock"})
#: A history database's shared-memory index: SQLite rebuilds it from the database and
#: its write-ahead log (both archived). Cards are never called this (``.vcf``, or a
#: client's own name), but only names ending exactly so are left out.
_HISTORY_SKIP_SUFFIXES = (".sqlite3-shm",)
#: A connected source's encrypted password (sources/secrets.py): only with include_credentials.
_CREDENTIALS = ".cardfile-source.secret"
#: A card file is at most max_resource_size; other files are small. Far above both.
_MAX_MEMBER = 512 * 1024 * 1024

LockFactory = Callable[[str], AbstractContextManager[object]]


@dataclass
class Summary:
    files: int = 0
    cards: int = 0
    bytes: int = 0
    users: list[str] = field(default_factory=list)
    moved_aside: Path | None = None
    #: Files a restore could not bring back (see ``restorable_name``), left out.
    left_out: list[str] = field(default_factory=list)


def _skipped(name: str, top: bool) -> bool:
    """Is ``name`` left out of backups (``top``: it is directly in the data folder)?"""
    if name in _DEEP_SKIP_NAMES or name.startswith(_DEEP_SKIP_PREFIXES):
        return True
    if name.endswith(_HISTORY_SKIP_SUFFIXES):
        return True
    return top and (name in _TOP_SKIP_NAMES or name.startswith(_TOP_SKIP_PREFIXES))


def restorable_name(name: str) -> bool:
    """Can a file or folder called ``name`` go through a backup and restore?

    ``restore`` refuses members with a backslash or NUL (a backslash is a path
    separator elsewhere); the CardDAV server refuses such names on upload, so
    only files another program made can have them.
    """
    return bool(name) and "\\" not in name and "\x00" not in name


#: The users' grants (grants/store.py), left out with the users.
GRANTS_FOLDER = "grants"


def data_files(data_dir: Path) -> Iterator[Path]:
    """Every file of the data folder a backup keeps (users and source passwords included)."""
    return _walk(data_dir, True, None, [], include_credentials=True)


def _walk(data_dir: Path, include_users: bool, exclude: Path | None,
          left_out: list[str], include_credentials: bool = False) -> Iterator[Path]:
    """Files to archive, in a stable order (symlinks are never followed).

    Files and folders whose names a restore would refuse are named in ``left_out``.
    """
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        top = Path(root) == data_dir
        kept_dirs = []
        for d in sorted(dirs):
            if _skipped(d, top) or (Path(root) / d).is_symlink() or (
                    top and d.startswith("replaced-")):
                continue
            if top and d == GRANTS_FOLDER and not include_users:
                continue  # who may reach whose contacts goes with the users
            if not restorable_name(d):
                left_out.append((Path(root) / d).relative_to(data_dir).as_posix())
                continue
            kept_dirs.append(d)
        dirs[:] = kept_dirs
        for name in sorted(files):
            path = Path(root) / name
            if _skipped(name, top) or path.is_symlink() or not path.is_file():
                continue
            if name == _CREDENTIALS and not include_credentials:
                continue
            if not restorable_name(name):
                left_out.append(path.relative_to(data_dir).as_posix())
                continue
            if exclude is not None and path == exclude:
                continue
            if path.parent == data_dir and name == "htpasswd" and not include_users:
                continue
            yield path


def create(data_dir: Path, target: Path, lock: LockFactory,
           include_users: bool = True, include_credentials: bool = False) -> Summary:
    """Write a backup of ``data_dir`` to ``target`` (a .tar.gz); see the module text."""
    data_dir = data_dir.resolve()
    target = target.resolve()
    if not (data_dir / "collection-root").is_dir():
        raise Refused(400, f"{data_dir} holds no address books (no collection-root folder); "
                          "check --data-dir")
    summary = Summary()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, lock("r"):
            files: dict[str, str] = {}
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                # One file in memory at a time; the manifest goes last.
                for path in _walk(data_dir, include_users, target, summary.left_out,
                                  include_credentials):
                    data = path.read_bytes()
                    name = path.relative_to(data_dir).as_posix()
                    files[name] = hashlib.sha256(data).hexdigest()
                    _add(tar, name, data, path.stat())
                    summary.files += 1
                    summary.bytes += len(data)
                    if name.startswith("collection-root/") and name.endswith(".vcf"):
                        summary.cards += 1
                manifest = json.dumps({"format": FORMAT, "created": time.strftime(
                    "%Y-%m-%dT%H:%M:%S%z"), "cards": summary.cards, "files": files},
                    indent=1, sort_keys=True).encode()
                _add(tar, MANIFEST, manifest, None)
            if include_users and (data_dir / "htpasswd").is_file():
                summary.users = [line.split(":", 1)[0] for line in
                                 (data_dir / "htpasswd").read_text().splitlines()
                                 if ":" in line]
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o600)  # it holds everyone's contacts and password hashes
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return summary


def _add(tar: tarfile.TarFile, name: str, data: bytes, st: os.stat_result | None) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(st.st_mtime) if st is not None else int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _safe_name(name: str) -> str | None:
    """The member's normalised relative name, or None if it could escape or is odd."""
    if not restorable_name(name) or name.startswith("/"):
        return None
    normal = posixpath.normpath(name)
    parts = normal.split("/")
    if normal in (".", "") or normal.startswith("../") or ".." in parts or normal != name.rstrip(
            "/").removeprefix("./"):
        return None
    if any(_skipped(part, top=i == 0) for i, part in enumerate(parts)):
        return None
    return normal


def read_archive(archive: Path) -> tuple[dict[str, str], list[tarfile.TarInfo]]:
    """The manifest's files and the archive's members, after every safety check."""
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (OSError, tarfile.TarError) as e:
        raise Refused(400, f"{archive} is not a readable backup archive: {e}") from None
    with tar:
        try:
            members = tar.getmembers()
        except (OSError, tarfile.TarError, EOFError) as e:
            raise Refused(400, f"{archive} is damaged or truncated: {e}") from None
        manifest: dict[str, str] | None = None
        seen: set[str] = set()
        for member in members:
            name = _safe_name(member.name)
            if name is None:
                raise Refused(400, f"{archive} holds an unsafe entry {member.name!r}; "
                                  "nothing was restored")
            if not (member.isfile() or member.isdir()):
                raise Refused(400, f"{archive} holds {member.name!r}, which is not a plain "
                                  "file or folder (links and devices are refused); nothing "
                                  "was restored")
            if member.isfile() and member.size > _MAX_MEMBER:
                raise Refused(400, f"{archive}: {member.name!r} is {member.size} bytes, too "
                                  "large for a Cardfile data file; nothing was restored")
            if name in seen:
                raise Refused(400, f"{archive} holds {member.name!r} twice; nothing was "
                                  "restored")
            seen.add(name)
            if name == MANIFEST:
                stream = tar.extractfile(member)
                assert stream is not None
                try:
                    parsed = json.loads(stream.read())
                    manifest = {str(k): str(v) for k, v in parsed["files"].items()}
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise Refused(400, f"{archive}: its manifest cannot be read") from None
                if parsed.get("format") != FORMAT:
                    raise Refused(400, f"{archive} was written by another Cardfile version "
                                      f"(format {parsed.get('format')!r})")
    if manifest is None:
        raise Refused(400, f"{archive} is not a Cardfile backup (no {MANIFEST}); nothing was "
                          "restored")
    files = {m.name for m in members if m.isfile() and m.name != MANIFEST}
    if files != set(manifest):
        missing = sorted(set(manifest) - files)[:3]
        extra = sorted(files - set(manifest))[:3]
        raise Refused(400, f"{archive} does not match its manifest (missing {missing}, "
                          f"unlisted {extra}); nothing was restored")
    return manifest, members


def _has_data(data_dir: Path) -> list[str]:
    """Top-level entries of ``data_dir`` a restore would replace."""
    found = []
    root = data_dir / "collection-root"
    if root.is_dir() and any(root.iterdir()):
        found.append("collection-root")
    for name in ("htpasswd", "merges", "history"):
        if (data_dir / name).exists():
            found.append(name)
    return found


def restore(archive: Path, data_dir: Path, lock: LockFactory, force: bool = False) -> Summary:
    """Bring a backup back into ``data_dir``; see the module text for the rules."""
    manifest, members = read_archive(archive)
    data_dir = data_dir.resolve()
    existing = _has_data(data_dir)
    if existing and not force:
        raise Refused(400, f"{data_dir} already holds {', '.join(existing)}; restore into an "
                          "empty data folder, or add --force to move what is there aside "
                          "first")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".cardfile-restore-", dir=data_dir))
    summary = Summary()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in members:
                if member.name == MANIFEST:
                    continue
                dest = staging / member.name
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                stream = tar.extractfile(member)
                assert stream is not None
                digest = hashlib.sha256()
                # Private whatever the caller's umask: cards, hashes, category stores.
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := stream.read(1 << 16):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != manifest[member.name]:
                    raise Refused(400, f"{archive}: {member.name!r} does not match its "
                                      "checksum (the archive is damaged); nothing was "
                                      "restored")
                summary.files += 1
                summary.bytes += member.size
                if member.name.startswith("collection-root/") and member.name.endswith(".vcf"):
                    summary.cards += 1
        with lock("w"):
            entries = sorted(p.name for p in staging.iterdir())
            for name in entries:
                with contextlib.suppress(OSError):  # an empty folder (Radicale made it)
                    (data_dir / name).rmdir()
            replaced = [name for name in entries if (data_dir / name).exists()]
            if replaced and not force:  # appeared since the check above
                raise Refused(400, f"{data_dir} already holds {', '.join(replaced)}; nothing "
                                  "was restored (use --force to move it aside)")
            if replaced:
                aside = Path(tempfile.mkdtemp(prefix=time.strftime("replaced-%Y%m%d-%H%M%S-"),
                                              dir=data_dir))
                for name in replaced:
                    os.rename(data_dir / name, aside / name)
                summary.moved_aside = aside
            for name in entries:
                os.rename(staging / name, data_dir / name)
            with contextlib.suppress(OSError):
                fd = os.open(data_dir, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    htpasswd = data_dir / "htpasswd"
    if "htpasswd" in manifest and htpasswd.is_file():
        summary.users = [line.split(":", 1)[0] for line in htpasswd.read_text().splitlines()
                         if ":" in line]
    return summary

