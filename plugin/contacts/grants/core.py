"""The grants model: who may see or change what, and how; one list, one check.

A *grant* is one entry in its owner's grants file (store.py):

- ``device``: a password for one phone or app over CardDAV and/or the API,
  optionally read-only and optionally limited to one book;
- ``token``: an application's API token (``Authorization: Bearer``), read or
  read-write, optionally limited to some properties (properties.py);
- ``session``: the web page's short-lived sign-in token (made with the main
  password, expires by itself);
- ``friend``: a friendship (invitation, then accepted), see friends.py;
- ``share``: a book or category shared with another user (shares.py,
  on the friendship's lifecycle).

Credentials are ``cf<kind>-<id>-<secret>``: the id finds the grant without
trying every hash, the secret (130 random bits) is kept only as a bcrypt
hash, as the users' passwords are. A verified credential is remembered in
memory under a keyed hash, together with the grant's stored hash: every
request re-reads the grant (one ``stat`` of the file unless it changed), so
a revoked or replaced grant fails at the next request, cache or not.

``check`` is the one decision for a request: protocol, book, read-only.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt

from cardfile.plugin.contacts.grants import properties
from cardfile.plugin.contacts.grants.store import GrantStore
from cardfile.plugin.refused import Refused

KINDS = ("device", "token", "session", "friend", "share")
CREDENTIAL_KINDS = {"d": "device", "t": "token", "s": "session"}
PROTOCOLS = ("carddav", "api")
_CREDENTIAL = re.compile(r"^cf([dts])-([a-z0-9]{8})-([a-z2-7]{26})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
#: Methods that only read; every other method writes (and a read-only grant refuses it).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
SESSION_HOURS = 8
#: Last use is written at most this often per grant (seconds); the client when it changes.
TOUCH_EVERY = 60.0


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_id() -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


@dataclass
class Grant:
    """One grant as stored (``record``), with the user who owns it."""

    user: str
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def kind(self) -> str:
        return str(self.record["kind"])

    @property
    def name(self) -> str:
        return str(self.record.get("name") or "")

    @property
    def read_only(self) -> bool:
        return bool(self.record.get("read_only"))

    @property
    def books(self) -> list[str]:
        return list(self.record.get("books") or [])

    @property
    def protocols(self) -> list[str]:
        return list(self.record.get("protocols") or PROTOCOLS)

    @property
    def properties(self) -> list[str] | None:
        """Property scopes the grant may see; None: every property."""
        found = self.record.get("properties")
        return None if found is None else list(found)

    @property
    def expires(self) -> datetime | None:
        return parse_time(self.record.get("expires"))

    def expired(self, at: datetime | None = None) -> bool:
        ends = self.expires
        return ends is not None and (at or now()) >= ends

    def public(self) -> dict[str, Any]:
        """What may be shown about the grant: everything but its hash."""
        return {"user": self.user, **{k: v for k, v in self.record.items() if k != "hash"}}


@dataclass
class Issued:
    grant: Grant
    #: The credential, shown once; only its hash is stored.
    secret: str


@dataclass
class _Verified:
    user: str
    grant_id: str
    hash: str


@dataclass
class Grants:
    """Grants of one data folder: make, list, revoke, and decide."""

    store: GrantStore
    _verified: dict[bytes, _Verified] = field(default_factory=dict)
    _touched: dict[str, tuple[float, str]] = field(default_factory=dict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- making ------------------------------------------------------------
    def issue(self, user: str, kind: str, name: str, *, read_only: bool = False,
              books: list[str] | None = None, protocols: list[str] | None = None,
              scopes: list[str] | None = None, hours: float | None = None) -> Issued:
        """A new credential grant; the secret is returned once and stored hashed."""
        letter = {v: k for k, v in CREDENTIAL_KINDS.items()}.get(kind)
        if letter is None:
            raise Refused(400, f"{kind!r} is not a kind of credential; use device, token "
                               "or session")
        name = " ".join(name.split())
        if not name or len(name) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise Refused(400, "give the grant a name of 1 to 100 characters without control "
                               "characters (\"Phone\")")
        for protocol in protocols or []:
            if protocol not in PROTOCOLS:
                raise Refused(400, f"{protocol!r} is not a protocol; use carddav or api")
        for book in books or []:
            if not book or "/" in book or book.startswith("."):
                raise Refused(400, f"{book!r} is not an address book name")
        if scopes is not None and not read_only:
            raise Refused(422, "a token limited to some properties can only read (its "
                               "writes could not keep what it cannot see); use --scope read")
        secret = "".join(secrets.choice(_ALPHABET) for _ in range(26))
        created = now()
        with self.store.editing(user) as data:
            taken = {g["id"] for g in data["grants"]}
            ident = new_id()
            while ident in taken:
                ident = new_id()
            record: dict[str, Any] = {
                "id": ident, "kind": kind, "name": name, "created": iso(created),
                "hash": bcrypt.hashpw(secret.encode(), bcrypt.gensalt()).decode(),
                "read_only": read_only, "books": list(books or []),
                "protocols": list(protocols or PROTOCOLS),
                "properties": None if scopes is None else properties.parse_scopes(scopes),
                "expires": iso(created + timedelta(hours=hours)) if hours else None,
                "last_used": None, "client": None,
            }
            data["grants"] = [g for g in data["grants"] if not _stale(g, created)]
            data["grants"].append(record)
        return Issued(Grant(user, record), f"cf{letter}-{ident}-{secret}")

    # -- listing and revoking ------------------------------------------------
    def listed(self, user: str, kinds: tuple[str, ...] = KINDS) -> list[Grant]:
        at = now()
        return [Grant(user, g) for g in self.store.read(user)["grants"]
                if g.get("kind") in kinds and not _stale(g, at)]

    def get(self, user: str, ident: str) -> Grant | None:
        return next((g for g in self.listed(user) if g.id == ident), None)

    def list_all(self, kinds: tuple[str, ...] = KINDS) -> list[Grant]:
        """Every user's grants (for an admin)."""
        return [g for user in self.store.users() for g in self.listed(user, kinds)]

    def revoke(self, user: str, ident: str, kinds: tuple[str, ...] = KINDS) -> Grant:
        """Remove one grant; it stops working at the next request."""
        with self.store.editing(user) as data:
            found = next((g for g in data["grants"]
                          if g.get("id") == ident and g.get("kind") in kinds), None)
            if found is None:
                what = " or ".join(kinds) if len(kinds) < len(KINDS) else "grant"
                raise Refused(404, f"{user} has no {what} {ident!r}")
            data["grants"].remove(found)
        return Grant(user, found)

    # -- using ---------------------------------------------------------------
    @staticmethod
    def looks_like_credential(secret: str) -> bool:
        return _CREDENTIAL.match(secret) is not None

    def verify(self, login: str | None, secret: str) -> Grant | None:
        """The grant ``secret`` opens (of user ``login``; None: any user's), or None.

        Never raises for a wrong secret: the caller answers 401 (or tries the
        main password) and says nothing about why.
        """
        found = _CREDENTIAL.match(secret)
        if found is None:
            return None
        kind, ident = CREDENTIAL_KINDS[found.group(1)], found.group(2)
        users = [login] if login else self.store.users()
        grant = None
        for user in users:
            try:
                grant = next((g for g in self.listed(user, (kind,)) if g.id == ident), None)
            except Refused:
                grant = None
            if grant is not None:
                break
        if grant is None or grant.expired():
            return None
        stored = str(grant.record.get("hash", ""))
        key = hmac.digest(self._key, f"{grant.user}\0{secret}".encode(), "sha256")
        with self._lock:
            known = self._verified.get(key)
        if known is not None and known.grant_id == grant.id and known.hash == stored \
                and known.user == grant.user:
            return grant
        try:
            ok = bcrypt.checkpw(found.group(3).encode(), stored.encode())
        except ValueError:
            ok = False
        if not ok:
            return None
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = _Verified(grant.user, grant.id, stored)
        return grant

    def touch(self, grant: Grant, client: str) -> None:
        """Record the grant's last use and client (at most once a minute per grant)."""
        key = f"{grant.user}/{grant.id}"
        moment = time.monotonic()
        with self._lock:
            last = self._touched.get(key)
            if last is not None and moment - last[0] < TOUCH_EVERY and last[1] == client:
                return
            self._touched[key] = (moment, client)
        try:
            with self.store.editing(grant.user) as data:
                for record in data["grants"]:
                    if record.get("id") == grant.id:
                        record["last_used"] = iso(now())
                        if client and client != "-":  # no User-Agent: keep the last one
                            record["client"] = client
        except (OSError, Refused):
            pass  # a last-use note never fails a request


def check(grant: Grant, protocol: str, method: str, book: str | None) -> None:
    """Refused(403) unless ``grant`` allows ``method`` on ``book`` over ``protocol``.

    ``book`` is None for addresses above the books (the principal, the service
    document); a book-limited grant may read those, but not create a book.
    """
    label = f"the {grant.kind} {grant.name!r}"
    if protocol not in grant.protocols:
        other = " and ".join(p for p in grant.protocols)
        raise Refused(403, f"{label} is for {other} only, not {protocol}; make a device "
                           "password for it with 'cardfile devices add'")
    if grant.read_only and method.upper() not in READ_METHODS:
        raise Refused(403, f"{label} is read-only: it cannot change contacts "
                           f"({method.upper()} refused)")
    if grant.books:
        if book is None:
            if method.upper() not in READ_METHODS:
                raise Refused(403, f"{label} may use only the address book "
                                   f"{grant.books[0]!r}")
        elif book not in grant.books:
            raise Refused(403, f"{label} may use only the address book {grant.books[0]!r}")


def _stale(record: dict[str, Any], at: datetime) -> bool:
    """An expired session: forgotten when the file is next written."""
    if record.get("kind") != "session":
        return False
    ends = parse_time(record.get("expires"))
    return ends is not None and at >= ends
