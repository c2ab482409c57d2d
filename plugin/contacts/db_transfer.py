"""Moving address books between a vdir folder and the PostgreSQL store, byte for byte.

The file store keeps each book as ``<user>/<book>/<name>.vcf`` under
``collection-root`` (a *vdir*); ``export`` writes the database's books in
exactly that layout and ``import_folder`` reads it back, so a user moves
between the embedded store and PostgreSQL both ways without a byte changed.
Copy an export into a data folder's ``collection-root`` and ``cardfile
serve`` on files serves it; point ``import`` at a data folder (or its
``collection-root``) to load it into the database.

Files are carried as they are, as the file store keeps them: a file that is
no readable card is moved too (and, as there, not served).

The small files beside the cards move too (``state_files.py``: book
properties, categories, source settings, per-user settings, and from a data
folder its password file, grants, source key and merge records), so nothing
but the derived index and per-server files stays behind. In an export, those
that live in a book or user folder are written there, as the file store keeps
them; those of the data folder itself go to ``.cardfile-data/`` at the top of
the export (a dot folder: no user, ignored by Radicale); to serve an export on
files, copy the export to ``<data>/collection-root`` and the contents of its
``.cardfile-data`` to ``<data>``.

History and trash do not move, either way. Why: the
layout is the file store's ``collection-root``, where a history has no
place (a ``history`` folder there would be a user of that name), and the two
stores keep history differently (a SQLite file per book under the data
folder's ``history/``, or the tables of ``pg_history.py``). So after a move
the books' history starts afresh on the new store, and the old one keeps
its own: a file server's data folder still holds it (``cardfile trash``
and ``restore-to`` there, or its backup), the database keeps its tables
until they are dropped. An import is a load, not a change: the cards it
replaces or removes are not recorded in the database's history, so export
a book before importing over one in use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import backup
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import etag_of
from cardfile.plugin.store.pg_files import PgFiles
from cardfile.plugin.store.postgres import PgStore
from cardfile.plugin.vcard import card_fields

PROPS_FILE = ".Radicale.props"
#: In an export: the data folder's own small files (see the module's docstring).
DATA_FOLDER = ".cardfile-data"
_ROOT = "collection-root"
_ADDRESS_BOOK_PROPS = {"tag": "VADDRESSBOOK"}


@dataclass
class TransferSummary:
    books: int = 0
    cards: int = 0
    changed: int = 0
    files: int = 0  # small files beside the cards (state_files.py)
    skipped: list[str] = field(default_factory=list)


def export(store: PgStore, target: Path, props_root: Path | None = None) -> TransferSummary:
    """Write every book of the database under ``target`` as ``<user>/<book>/<href>``.

    ``props_root``: a data folder's ``collection-root`` whose ``.Radicale.props``
    (display names, colours) are copied beside the cards; a book without one
    gets the props that make a folder an address book.
    """
    summary = TransferSummary()
    summary.files = _export_state(PgFiles(store), target)
    for path in store.book_paths():
        parts = [p for p in path.split("/") if p]
        if not parts or not all(radicale.is_safe_name(p) for p in parts):
            summary.skipped.append(path)
            continue
        folder = target.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        coll_id = store.book(path).coll_id
        props = props_root.joinpath(*parts, PROPS_FILE) if props_root else None
        if (folder / PROPS_FILE).exists():
            pass  # from the database's own copy (_export_state)
        elif props is not None and props.is_file():
            (folder / PROPS_FILE).write_bytes(props.read_bytes())
        elif not (folder / PROPS_FILE).exists():
            (folder / PROPS_FILE).write_text(json.dumps(_ADDRESS_BOOK_PROPS))
        summary.books += 1
        for href, body in store.live_cards(coll_id):
            if not radicale.is_safe_name(href):
                summary.skipped.append(f"{path}/{href}")
                continue
            (folder / href).write_bytes(body)
            summary.cards += 1
    return summary


def import_folder(store: PgStore, source: Path) -> TransferSummary:
    """Make the database's books hold the cards of the vdir folder ``source``.

    ``source`` is a data folder, its ``collection-root``, or any folder laid
    out as ``<user>/<book>/<name>.vcf``. Each book found replaces the
    database's book of the same path (cards no longer there become
    tombstones, so syncing clients are told); other books are left alone.
    """
    root = source / _ROOT if (source / _ROOT).is_dir() else source
    if not root.is_dir():
        raise Refused(404, f"there is no folder {source}")
    summary = TransferSummary()
    summary.files = _import_state(PgFiles(store), source, root)
    for user in _subfolders(root):
        for book in _subfolders(user):
            if not _is_address_book(book):
                continue
            cards = book_cards(book, summary.skipped)
            path = f"{user.name}/{book.name}"  # as Radicale names a collection
            summary.changed += store.load_book(path, cards)
            summary.books += 1
            summary.cards += len(cards)
    return summary


def book_cards(book: Path, skipped: list[str]) -> list[tuple[str, bytes, str, str]]:
    """(href, bytes, UID, etag) of every card file of a book's folder, in name order.

    Files whose names are not safe hrefs are named in ``skipped``.
    """
    cards = []
    for entry in sorted(os.scandir(book), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        if not radicale.is_safe_name(entry.name):
            skipped.append(entry.path)
            continue
        body = Path(entry.path).read_bytes()
        cards.append((entry.name, body, *_uid_and_etag(body)))
    return cards


def _uid_and_etag(body: bytes) -> tuple[str, str]:
    """The UID and etag the file store gives this file (its etag is of the text)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "", f'"{sha256(body).hexdigest()}"'
    try:
        uid = card_fields.extract(text).uid
    except card_fields.CardSyntaxError:
        uid = ""
    return uid, etag_of(text)


def _is_address_book(folder: Path) -> bool:
    props = folder / PROPS_FILE
    if props.is_file():
        try:
            return bool(json.loads(props.read_text(encoding="utf-8")).get("tag")
                        == "VADDRESSBOOK")
        except (ValueError, OSError, AttributeError):
            return False
    return any(p.suffix.lower() == ".vcf" for p in folder.iterdir())


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".")
                  and radicale.is_safe_name(p.name))


def _export_state(files: PgFiles, target: Path) -> int:
    """Write the database's small files into the export; return how many."""
    written = 0
    for row in files.since(0)[1]:
        if row.body is None or row.path.startswith("history/"):
            continue
        parts = row.path.split("/")
        if parts[0] == _ROOT:
            parts = parts[1:]
        else:
            parts = [DATA_FOLDER, *parts]
        if not parts or any(p in ("", ".", "..") for p in parts):
            continue
        path = target.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(row.body)
        os.chmod(path, row.mode & 0o777)
        written += 1
    return written


def _import_state(files: PgFiles, source: Path, root: Path) -> int:
    """Load the small files of ``source`` (a data folder or an export); return how many."""
    known = {row.path: row.body for row in files.since(0)[1]}
    found: list[tuple[str, Path]] = []
    if root != source:  # a data folder: everything a backup keeps, but cards and history
        for path in backup.data_files(source):
            relative = path.relative_to(source).as_posix()
            if not relative.startswith("history/") and not _is_card(relative):
                found.append((relative, path))
    else:  # an export, or a bare collection-root
        for path in _small_files(root):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(DATA_FOLDER + "/"):
                found.append((relative[len(DATA_FOLDER) + 1:], path))
            else:
                found.append((f"{_ROOT}/{relative}", path))
    loaded = 0
    for relative, path in found:
        body = path.read_bytes()
        if known.get(relative) != body:
            files.put(relative, body, path.stat().st_mode & 0o777)
        loaded += 1
    return loaded


def _is_card(relative: str) -> bool:
    """A card's file: ``collection-root/<user>/<book>/<name>`` not starting with a dot."""
    parts = relative.split("/")
    return parts[0] == _ROOT and len(parts) == 4 and not parts[3].startswith(".")


def _small_files(root: Path) -> list[Path]:
    """An export's small files: dot files of users and books, and all of ``.cardfile-data``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        inside_data = here.relative_to(root).parts[:1] == (DATA_FOLDER,)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()
                       and (inside_data or depth == 0 or not d.startswith("."))]
        for name in filenames:
            path = here / name
            if path.is_symlink() or name.startswith(".Radicale.tmp-") \
                    or name in (".Radicale.cache", ".Radicale.lock"):
                continue
            if inside_data or (depth in (1, 2) and name.startswith(".")):
                found.append(path)
    return found
