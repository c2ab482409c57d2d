"""Contact and category ids in URLs: readable when they can be, safe always.

A contact's id is its UID, so it is stable across edits, renames of the file
and every client. Most UIDs (UUIDs, Google's hex ids) are already URL-safe
and are used as they are. Any other UID (``urn:uuid:...``, one with ``/``,
``@`` or spaces) is written as ``~`` followed by the base64url of its UTF-8
bytes, unpadded: ``~`` never occurs in a plain id, so the two forms cannot
be confused, and no proxy or WSGI server can mangle a ``%2F``. Category ids
use the same rule on the category's name.
"""

from __future__ import annotations

import base64
import binascii
import re

_PLAIN = re.compile(r"[A-Za-z0-9._-]{1,200}")
_ENCODED = re.compile(r"~[A-Za-z0-9_-]*")


def encode(value: str) -> str:
    """The URL id of a UID or category name."""
    if _PLAIN.fullmatch(value) and value not in (".", ".."):
        return value
    data = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")
    return "~" + data


def decode(ident: str) -> str | None:
    """The UID or name an id stands for; None when it cannot stand for one.

    An id that is neither form (``Work Friends`` sent percent-encoded) is
    taken literally, so ``curl .../categories/Work%20Friends`` works too.
    """
    if not ident:
        return None
    if not ident.startswith("~"):
        return ident if "/" not in ident else None
    if not _ENCODED.fullmatch(ident):
        return None
    data = ident[1:]
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        value = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return value if value and encode(value) == ident else None
