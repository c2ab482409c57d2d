"""Reading a remote CardDAV address book: discovery, listing, sync-collection, multiget.

What a contacts app does, as a client of another server (RFC 6352, 6578,
6764): find the address book from a server URL (``/.well-known/carddav`` →
``current-user-principal`` → ``addressbook-home-set`` → the books), then
pull with ``sync-collection`` when the book offers it, else list ETags with
PROPFIND Depth 1 and fetch what changed with ``addressbook-multiget`` in
batches. Answers are parsed with defusedxml; one that is not readable
multistatus XML is a ``SourceFailure``, never a half-applied change.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from cardfile.plugin.contacts.sources.fetch import (
    BAD_ANSWER,
    Client,
    Response,
    SourceFailure,
    check,
    display_url,
)

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:carddav}"
MULTIGET_BATCH = 100
#: sync-collection rounds after a 507 (truncated answer) before giving up.
MAX_SYNC_ROUNDS = 1000
_XML = {"Content-Type": "application/xml; charset=utf-8"}


class TokenRefused(SourceFailure):
    """The source no longer accepts our sync token: list everything instead."""

    def __init__(self) -> None:
        super().__init__(BAD_ANSWER, "the source refused the sync token", 409)


@dataclass
class Listing:
    """What changed at the source since the last pull.

    ``full``: ``etags`` holds every card there is (anything else is gone);
    otherwise ``etags`` holds the changed cards and ``deleted`` the removed ones.
    """

    full: bool
    etags: dict[str, str] = field(default_factory=dict)  # key -> etag
    deleted: set[str] = field(default_factory=set)
    token: str | None = None
    urls: dict[str, str] = field(default_factory=dict)  # key -> href to fetch


def key_of(book_url: str, href: str) -> str:
    """A card's key: its decoded path (servers differ in how they escape hrefs)."""
    return unquote(urlsplit(urljoin(book_url, href)).path)


def _parse(response: Response, what: str) -> ET.Element:
    try:
        root = fromstring(response.body)
    except DefusedXmlException:
        raise SourceFailure(BAD_ANSWER, f"the source's answer to {what} is not readable XML "
                                        "(it declares entities or a DTD, which are refused); "
                                        "nothing was changed") from None
    except (ET.ParseError, ValueError) as e:
        raise SourceFailure(BAD_ANSWER, f"the source's answer to {what} is not readable XML "
                                        f"({str(e)[:80]}); nothing was changed") from None
    if root.tag != f"{D}multistatus":
        raise SourceFailure(BAD_ANSWER, f"the source's answer to {what} is not a WebDAV "
                                        "multistatus; nothing was changed")
    return root


def _propfind(client: Client, url: str, props: str, depth: str) -> tuple[Response, ET.Element]:
    body = (f'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop>{props}</D:prop></D:propfind>')
    response = client.request("PROPFIND", url, body.encode(), {**_XML, "Depth": depth})
    check(response, f"PROPFIND {display_url(url)}")
    return response, _parse(response, "PROPFIND")


def _ok_props(response: ET.Element) -> ET.Element | None:
    for propstat in response.findall(f"{D}propstat"):
        status = propstat.findtext(f"{D}status") or ""
        if " 200 " in f"{status} " or status.strip().endswith("200 OK"):
            return propstat.find(f"{D}prop")
    return None


def _status(element: ET.Element) -> int:
    text = (element.findtext(f"{D}status") or "").split()
    return int(text[1]) if len(text) > 1 and text[1].isdigit() else 0


# -- discovery ------------------------------------------------------------------
@dataclass
class Book:
    url: str
    name: str
    sync: bool  # offers sync-collection


def describe(client: Client, url: str) -> Book | None:
    """The address book at ``url``, or None if ``url`` is not one."""
    response, root = _propfind(client, url, "<D:resourcetype/><D:displayname/>"
                               "<D:supported-report-set/><D:sync-token/>", "0")
    for entry in root.findall(f"{D}response"):
        props = _ok_props(entry)
        if props is None:
            continue
        kinds = props.find(f"{D}resourcetype")
        if kinds is None or kinds.find(f"{C}addressbook") is None:
            return None
        reports = props.find(f"{D}supported-report-set")
        offers = (reports is not None and reports.find(f".//{D}sync-collection") is not None)
        offers = offers or bool((props.findtext(f"{D}sync-token") or "").strip())
        name = (props.findtext(f"{D}displayname") or "").strip()
        return Book(response.url, name, offers)
    return None


def discover(client: Client, url: str) -> list[Book]:
    """The address books ``url`` leads to: itself, or those of the user it logs in as."""
    book = describe(client, url)
    if book is not None:
        return [book]
    principal = _href_prop(client, url, "<D:current-user-principal/>",
                           f"{D}current-user-principal")
    if principal is None:
        well_known = urljoin(url, "/.well-known/carddav")
        principal = _href_prop(client, well_known, "<D:current-user-principal/>",
                                f"{D}current-user-principal")
    if principal is None:
        raise SourceFailure(BAD_ANSWER, f"{display_url(url)} is not a CardDAV address book, "
                                        "and no CardDAV account was found there", 400)
    home = _href_prop(client, principal, "<C:addressbook-home-set/>",
                      f"{C}addressbook-home-set")
    if home is None:
        raise SourceFailure(BAD_ANSWER, "the CardDAV account has no address-book home", 400)
    _, root = _propfind(client, home, "<D:resourcetype/><D:displayname/>"
                        "<D:supported-report-set/><D:sync-token/>", "1")
    books = []
    for entry in root.findall(f"{D}response"):
        props = _ok_props(entry)
        href = entry.findtext(f"{D}href")
        kinds = props.find(f"{D}resourcetype") if props is not None else None
        if href and kinds is not None and kinds.find(f"{C}addressbook") is not None:
            reports = props.find(f"{D}supported-report-set") if props is not None else None
            offers = reports is not None and reports.find(f".//{D}sync-collection") is not None
            name = (props.findtext(f"{D}displayname") or "") if props is not None else ""
            books.append(Book(urljoin(home, href), name.strip(), offers))
    return books


def _href_prop(client: Client, url: str, prop: str, tag: str) -> str | None:
    try:
        response, root = _propfind(client, url, prop, "0")
    except SourceFailure as e:
        if e.kind == BAD_ANSWER:
            return None
        raise
    for entry in root.findall(f"{D}response"):
        props = _ok_props(entry)
        found = props.find(tag) if props is not None else None
        href = found.findtext(f"{D}href") if found is not None else None
        if href:
            return urljoin(response.url, href.strip())
    return None


# -- listing --------------------------------------------------------------------
def list_etags(client: Client, book_url: str) -> Listing:
    """Every card of the book with its ETag (PROPFIND Depth 1)."""
    _, root = _propfind(client, book_url, "<D:resourcetype/><D:getetag/>", "1")
    listing = Listing(full=True)
    own = key_of(book_url, book_url)
    for entry in root.findall(f"{D}response"):
        href = (entry.findtext(f"{D}href") or "").strip()
        props = _ok_props(entry)
        if not href or props is None or key_of(book_url, href) == own:
            continue
        kinds = props.find(f"{D}resourcetype")
        if kinds is not None and len(kinds):
            continue  # a sub-collection, not a card
        _add(client, listing, book_url, href, props.findtext(f"{D}getetag") or "")
    return listing


def sync_collection(client: Client, book_url: str, token: str) -> Listing:
    """Changes since ``token`` ("" = everything), following 507 truncation."""
    listing = Listing(full=not token)
    own = key_of(book_url, book_url)
    for _ in range(MAX_SYNC_ROUNDS):
        body = ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
                f"<D:sync-token>{_escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>")
        response = client.request("REPORT", book_url, body.encode(), {**_XML, "Depth": "0"})
        if token and response.status in (403, 409, 412, 400) and (
                b"valid-sync-token" in response.body or response.status != 403):
            raise TokenRefused()
        check(response, f"sync-collection {display_url(book_url)}")
        root = _parse(response, "sync-collection")
        truncated = False
        for entry in root.findall(f"{D}response"):
            href = (entry.findtext(f"{D}href") or "").strip()
            if not href:
                continue
            if key_of(book_url, href) == own:
                truncated = truncated or _status(entry) == 507
                continue
            if _status(entry) == 404:
                key = key_of(book_url, href)
                listing.deleted.add(key)
                listing.etags.pop(key, None)
                continue
            props = _ok_props(entry)
            if props is not None:
                listing.deleted.discard(key_of(book_url, href))
                _add(client, listing, book_url, href, props.findtext(f"{D}getetag") or "")
        new_token = (root.findtext(f"{D}sync-token") or "").strip()
        if not new_token:
            raise SourceFailure(BAD_ANSWER, "the source's sync-collection answer has no "
                                            "sync-token; nothing was changed")
        token = new_token
        if not truncated:
            listing.token = token
            return listing
    raise SourceFailure(BAD_ANSWER, f"the source truncated its sync answer more than "
                                    f"{MAX_SYNC_ROUNDS} times")


def _add(client: Client, listing: Listing, book_url: str, href: str, etag: str) -> None:
    key = key_of(book_url, href)
    listing.etags[key] = etag.strip()
    listing.urls[key] = href
    if len(listing.etags) > client.limits.max_cards:
        raise SourceFailure(BAD_ANSWER, f"the source lists more than "
                                        f"{client.limits.max_cards} cards, more than a source "
                                        "may hold here; nothing was changed", 413)


def multiget(client: Client, book_url: str, hrefs: list[str]
             ) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """key -> (etag, card text) for ``hrefs``, in batches; and hrefs the source did not give."""
    cards: dict[str, tuple[str, str]] = {}
    missing: list[str] = []
    for start in range(0, len(hrefs), MULTIGET_BATCH):
        batch = hrefs[start:start + MULTIGET_BATCH]
        refs = "".join(f"<D:href>{_escape(h)}</D:href>" for h in batch)
        body = ('<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget '
                'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
                f"<D:prop><D:getetag/><C:address-data/></D:prop>{refs}"
                "</C:addressbook-multiget>")
        response = client.request("REPORT", book_url, body.encode(), {**_XML, "Depth": "1"})
        check(response, f"addressbook-multiget {display_url(book_url)}")
        root = _parse(response, "addressbook-multiget")
        wanted = {key_of(book_url, h) for h in batch}
        for entry in root.findall(f"{D}response"):
            href = (entry.findtext(f"{D}href") or "").strip()
            props = _ok_props(entry)
            key = key_of(book_url, href) if href else ""
            if key not in wanted or props is None:
                continue
            data = props.findtext(f"{C}address-data")
            if data is not None:
                cards[key] = ((props.findtext(f"{D}getetag") or "").strip(), data)
        missing += [h for h in batch if key_of(book_url, h) not in cards]
    return cards, missing


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
