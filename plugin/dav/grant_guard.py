"""Device passwords on CardDAV: who the request is, and what its grant allows.

A request whose Basic password is a Cardfile credential (``cfd-...``) is
checked against the grants (plugin/contacts/grants) before Radicale sees it:
the grant must be a device's, for CardDAV, and allow the method on the book
the address names; anything else is refused 403 with the reason, before any
handling. Radicale then accepts the same credential through the login check
installed on its auth (``RadicaleApp.accept_logins``). A password that is not
a credential (the owner's main password) is Radicale's to check, as before.

A book-limited device sees only its book in the listing of the user's home
(``filter_home``): the names of the other books are not its to know.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote, urlsplit

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import views
from cardfile.plugin.contacts.grants.core import Grant, Grants, check
from cardfile.plugin.refused import Refused

ENVIRON_KEY = "cardfile.grant"
#: ``[auth] admins``: users who may list and revoke every user's grants.
ADMINS_OPTION = "admins"
radicale.register_option("auth", ADMINS_OPTION, "", "users who may list and revoke every "
                         "user's devices, tokens and friendships (comma-separated)", str)
_DAV = "{DAV:}"


def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, sep, password = base64.b64decode(encoded.strip(), validate=True
                                                ).decode("utf-8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return (login, password) if sep and login else None


def book_of(path: str, user: str) -> str | None:
    """The book a request's path names (``/alice/contacts/x.vcf`` -> ``contacts``), or None.

    ``path`` is already %-decoded (``PATH_INFO``), and is read the way Radicale
    resolves it (``sanitize_path``). Decoding it again let a device limited to
    ``contacts`` use a book named ``%63ontacts``.
    """
    parts = [p for p in radicale.sanitize_path(path).split("/") if p]
    if len(parts) >= 2 and parts[0] == user:
        return parts[1]
    return None


def _without_base(environ: dict[str, Any], path: str) -> str:
    """A %-decoded address from a header or an href without the base prefix Radicale
    puts before its own (a proxy's ``X-Script-Name``, which any client may send, else
    ``SCRIPT_NAME``): with ``X-Script-Name: /x`` the home's hrefs were ``/x/carol/...``,
    which named no book, and a limited device saw every book of the home listed."""
    prefix = radicale.sanitize_path(environ.get(
        "HTTP_X_SCRIPT_NAME" if "HTTP_X_SCRIPT_NAME" in environ else "SCRIPT_NAME", "")
    ).rstrip("/")
    return path[len(prefix):] if prefix and (path + "/").startswith(prefix + "/") else path


class GrantGuard:
    """The CardDAV side of the grants check."""

    def __init__(self, grants: Grants) -> None:
        self.grants = grants

    def login(self, login: str, password: str) -> str | None:
        """Radicale's login check: the user of a valid CardDAV device password."""
        if not self.grants.looks_like_credential(password):
            return None
        grant = self.grants.verify(login, password)
        if grant is None or grant.kind != "device" or "carddav" not in grant.protocols:
            return None
        return grant.user

    def screen(self, environ: dict[str, Any], method: str) -> Refused | None:
        """403 with the reason when the request's grant does not allow it; else None."""
        credentials = basic_credentials(environ.get("HTTP_AUTHORIZATION", ""))
        if credentials is None or not self.grants.looks_like_credential(credentials[1]):
            return None
        grant = self.grants.verify(*credentials)
        if grant is None:
            return None  # Radicale answers 401, as for any wrong password
        try:
            if grant.kind != "device":
                raise Refused(403, f"the {grant.kind} {grant.name!r} is for the JSON API "
                                   "(/api/) only")
            check(grant, "carddav", method, book_of(environ.get("PATH_INFO", ""),
                                                     grant.user))
            destination = environ.get("HTTP_DESTINATION")
            if destination is not None:  # a MOVE writes where it names too
                check(grant, "carddav", method, book_of(
                    _without_base(environ, unquote(urlsplit(destination).path)), grant.user))
        except Refused as e:
            return e
        environ[ENVIRON_KEY] = grant
        self.grants.touch(grant, views.client_product(environ.get("HTTP_USER_AGENT", "")))
        return None


def filter_home(environ: dict[str, Any], body: bytes) -> bytes:
    """A multistatus of the user's home without the books a limited device may not see."""
    grant: Grant | None = environ.get(ENVIRON_KEY)
    if grant is None or not grant.books or b"multistatus" not in body[:400]:
        return body
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body
    changed = False
    for response in list(root.findall(f"{_DAV}response")):
        href = response.findtext(f"{_DAV}href") or ""
        book = book_of(_without_base(environ, unquote(urlsplit(href).path)), grant.user)
        if book is not None and book not in grant.books:
            root.remove(response)
            changed = True
    if not changed:
        return body
    for prefix, uri in re.findall(rb'xmlns:(\w+)="([^"]+)"', body[:2000]):
        ET.register_namespace(prefix.decode(), uri.decode())
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
