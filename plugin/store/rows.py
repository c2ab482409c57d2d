"""What the index says of a card and of a book's sync state (plain values, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import NamedTuple


class ItemRow(NamedTuple):
    """One card as the index knows it.

    A named tuple, not a frozen dataclass: a listing of 100,000 cards builds
    100,000 of them, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) was most of a PROPFIND's time.
    """

    href: str
    uid: str
    etag: str
    size: int
    mtime_ns: int
    fn: str
    kind: str
    seq: int


@dataclass(frozen=True)
class SyncState:
    epoch: str
    coll_id: int
    seq: int
    seq_floor: int


def etag_of(text: str) -> str:
    """The same etag Radicale computes for an item's text."""
    return f'"{sha256(text.encode()).hexdigest()}"'
