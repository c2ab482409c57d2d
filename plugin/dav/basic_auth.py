"""Reading an HTTP Basic ``Authorization`` header before anything trusts it.

Radicale decodes the header itself and fails with a 500 on some inputs (a
header that is not base64, or has no ``:``; a NUL byte reaches the file
system or bcrypt). ``refusal`` names what is malformed, so the wrapper can
answer 400 with that sentence before Radicale or the JSON API sees it; the
sentence never depends on whether a user exists. ``user_name`` is the name
for the log line and the per-user view setting.
"""

from __future__ import annotations

import base64
import binascii

_CONTROL = frozenset(range(0x20)) | {0x7F}


def _decoded(header: str) -> bytes | None:
    """The decoded credentials of a Basic header; None when it is not Basic."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def refusal(header: str) -> str | None:
    """Why a Basic Authorization header cannot be a login, or None when it can."""
    raw = _decoded(header)
    if raw is None:
        return None
    reason = ("The Authorization header is not HTTP Basic credentials (base64 of "
              "user:password)")
    user, colon, password = raw.partition(b":")
    if not colon or not user:
        return reason
    if any(byte in _CONTROL for byte in user):
        return "A user name cannot contain control characters"
    if b"/" in user or b"\\" in user:
        return "A user name cannot contain / or \\"
    if b"\x00" in password:
        return "A password cannot contain a NUL character"
    try:
        user.decode("utf-8")
    except UnicodeDecodeError:
        return "The user name is not valid UTF-8"
    return None


def has_credentials(header: str) -> bool:
    """Whether the request tries to log in (any Authorization header at all)."""
    return bool(header.strip())


def user_name(header: str) -> str:
    """The user name of a Basic login, for the log (never the password); "?" if unreadable."""
    raw = _decoded(header)
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8").partition(":")[0][:64] or "?"
    except UnicodeDecodeError:
        return "?"
