"""What the index says of a card and of a book's sync state (plain values, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256


@dataclass(frozen=True)
class ItemRow:
    """One card as the index knows it."""

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
