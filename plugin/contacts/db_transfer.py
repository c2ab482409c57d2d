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

History and trash do not move, either way; only the cards do. Why: the
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
from cardfile.plugin.refused import Refused
from cardfile.plugin.store.index import etag_of
from cardfile.plugin.store.postgres import PgStore
from cardfile.plugin.vcard import card_fields

PROPS_FILE = ".Radicale.props"
_ADDRESS_BOOK_PROPS = {"tag": "VADDRESSBOOK"}


@dataclass
class TransferSummary:
    books: int = 0
    cards: int = 0
    changed: int = 0
    skipped: list[str] = field(default_factory=list)


def export(store: PgStore, target: Path, props_root: Path | None = None) -> TransferSummary:
    """Write every book of the database under ``target`` as ``<user>/<book>/<href>``.

    ``props_root``: a data folder's ``collection-root`` whose ``.Radicale.props``
    (display names, colours) are copied beside the cards; a book without one
    gets the props that make a folder an address book.
    """
    summary = TransferSummary()
    for path in store.book_paths():
        parts = [p for p in path.split("/") if p]
        if not parts or not all(radicale.is_safe_name(p) for p in parts):
            summary.skipped.append(path)
            continue
        folder = target.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        coll_id = store.book(path).coll_id
        props = props_root.joinpath(*parts, PROPS_FILE) if props_root else None
        if props is not None and props.is_file():
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
    root = source / "collection-root" if (source / "collection-root").is_dir() else source
    if not root.is_dir():
        raise Refused(404, f"there is no folder {source}")
    summary = TransferSummary()
    for user in _subfolders(root):
        for book in _subfolders(user):
            if not _is_address_book(book):
                continue
            cards = []
            for entry in sorted(os.scandir(book), key=lambda e: e.name):
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                if not radicale.is_safe_name(entry.name):
                    summary.skipped.append(entry.path)
                    continue
                body = Path(entry.path).read_bytes()
                cards.append((entry.name, body, *_uid_and_etag(body)))
            path = f"{user.name}/{book.name}"  # as Radicale names a collection
            summary.changed += store.load_book(path, cards)
            summary.books += 1
            summary.cards += len(cards)
    return summary


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
