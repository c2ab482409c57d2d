"""The card a client sent in this PUT, and whether the server kept it as sent.

RFC 6352 section 6.3.2.3: a PUT answer carries an ETag only when the stored
bytes are the bytes the client sent; otherwise the client must fetch the
server's version. Radicale hands the storage a vobject re-serialisation of
the body, not the body, and never tells the answer whether the storage
changed the card. So the WSGI wrapper records the accepted body here for the
duration of the request, the storage stores those bytes (not vobject's) and
says when it had to store something else (a repair, a pending category, a
group card turned into a category), and the wrapper then drops the ETag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SentCard:
    """One PUT's card: the text to store, and why it differs from the body, if it does."""

    text: str
    uid: str
    changes: list[str] = field(default_factory=list)
    #: A group card (Apple's X-ADDRESSBOOKSERVER-KIND or vCard 4 KIND:group).
    is_group_card: bool = False
    #: The parsed card (vobject), for Radicale's own checks; not part of equality.
    component: Any = field(default=None, compare=False, repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


_current: ContextVar[SentCard | None] = ContextVar("cardfile_sent_card", default=None)


@contextlib.contextmanager
def receiving(card: SentCard) -> Iterator[SentCard]:
    """Make ``card`` the current request's upload while Radicale handles the PUT."""
    token = _current.set(card)
    try:
        yield card
    finally:
        _current.reset(token)


def current(uid: str) -> SentCard | None:
    """This request's sent card if it is the one being stored (same UID), else None.

    The UID check keeps an upload that is not the client's own body (an API
    write inside the same request, a merge) from taking the client's text.
    """
    card = _current.get()
    if card is None or card.uid.strip() != uid.strip():
        return None
    return card


def note_change(reason: str) -> None:
    """The server stored something other than the body (no ETag in the answer)."""
    card = _current.get()
    if card is not None:
        card.changes.append(reason)
