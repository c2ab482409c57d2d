"""Streamed answers for the requests that list a whole address book.

Radicale answers PROPFIND Depth 1, ``sync-collection``,
``addressbook-multiget`` and ``addressbook-query`` by building the whole
multistatus as an ElementTree, then as one string: at 100,000 cards that is
hundreds of megabytes and seconds, and a 10-card multiget still pays for every layer. For an
index-backed address book the answers are regular, so this module writes them
itself (``multistatus.py``), a chunk of responses at a time, reading a card
from disk only when its response is written. A GET or HEAD of one card is
answered the same way, by ``item_get.py``, of a whole book by
``book_get.py``, and a PUT of one plain card is checked and stored by
``item_put.py`` (``FastPath.put``).

Parity with Radicale is the rule, so the module is deliberately narrow:

- Whatever it does not reproduce exactly is answered by Radicale (``respond``
  returns None): other shapes, a REPORT's props whose value needs more than
  the index, PROPFIND Depth 0 unless it asks the book's length, query
  filters the index cannot answer
  (param-filter), CalDAV filters, sharing, reverse-proxy prefixes, a query
  in the groups view, published books, an invalid sync-token, a missing principal,
  and every request that is not a successful Basic login with read rights
  (Radicale then answers 401/403/404 with its delays; a failed login is thus
  checked twice, the second time from Radicale's failed-login cache).
- Login and rights are Radicale's own objects, called as ``_handle_request``
  and ``Access`` call them; the book's own ``<response>`` in a PROPFIND *is*
  Radicale's, from running it on the same request with Depth 0 (before the
  cards are listed, so a ctag is never newer than the list it comes with),
  and so is each card's: Radicale's answer for one card, its href, etag,
  date and length made markers (``_card_template``). So any props a
  PROPFIND names, ``allprop`` and ``propname`` are answered, and every value
  but a card's own four is Radicale's, whatever it is.

The groups view (Apple clients: each category is also a group card, made by
the server, with no file) is answered too: ``Collection.listing`` lists the
group cards among the cards in href order, as Radicale does, their date the
book's; a multiget or a sync with ``address-data`` sends their texts, kept
under the lock. At 100,000 cards Radicale took 6-8 s for an Apple client's
PROPFIND Depth 1 and 9-10 s for its first sync, 2-4 s of them under the lock.

Concurrency: the index is read under Radicale's storage read lock, compact
rows kept and the lock released before streaming, so a slow client never
blocks writers. A card deleted in between is answered 404 (as if the request
came after the delete); a card changed in between is sent with the etag of
the file actually read. ``X-Cardfile-No-Fastpath: 1`` (any client may ask for
the slower answer) or ``[storage] fastpath = False`` leaves it all to Radicale.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, cast
from urllib.parse import quote, unquote, urlparse

import defusedxml.ElementTree as DefusedET

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts.sent_card import SentCard
from cardfile.plugin.contacts.storage import (
    Collection,
    book_text_left_out,
    http_date,
)
from cardfile.plugin.dav import book_get, item_get, item_put, listing, multistatus
from cardfile.plugin.dav.compact_rows import CompactRows
from cardfile.plugin.store.card_reads import is_gone, opened_ahead, read_opened, served_size
from cardfile.plugin.vcard.xml_chars import xml_chars, xml_text

log = logging.getLogger("cardfile")

BYPASS_HEADER = "HTTP_X_CARDFILE_NO_FASTPATH"
Headers = list[tuple[str, str]]
Response = tuple[str, Headers, Iterable[bytes]]

_C = radicale.make_clark
_RESPONSE, _HREF, _PROP = _C("D:response"), _C("D:href"), _C("D:prop")
_GETETAG, _LASTMOD, _CTYPE = _C("D:getetag"), _C("D:getlastmodified"), _C("D:getcontenttype")
_LENGTH, _ALLPROP, _PROPNAME = _C("D:getcontentlength"), _C("D:allprop"), _C("D:propname")
_DATA = frozenset((_C("CR:address-data"), _C("C:calendar-data")))
#: A card's own values in a PROPFIND answer; every other value is the same for all
#: the cards of a book (Radicale's ``xml_propfind_response`` for an item).
_CARD_MARKERS = {_GETETAG: listing.ETAG, _LASTMOD: listing.DATE, _LENGTH: listing.LENGTH}
_REPORT_OK = frozenset((_GETETAG, _CTYPE, *_DATA))
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
                  "HTTP_X_FORWARDED_SERVER")


@dataclass
class _Report:
    """What a multiget, sync-collection or addressbook-query asks for."""

    sync: bool
    tags: tuple[str, ...]
    hrefs: list[str]
    token: str
    filters: list[ET.Element] | None = None  # an addressbook-query's CR:filter elements


@dataclass(frozen=True)
class _Target:
    """Who asks for what, once Radicale's login and rights said yes."""

    base_prefix: str
    path: str
    user: str
    groups: set[str]
    access: Any  # Radicale's rights check for this user and path


class FastPath:
    """Answers the listing requests of index-backed address books as streams."""

    def __init__(self, application: Any, configuration: Any) -> None:
        self.app = application
        self.configuration = configuration
        self.storage = application.storage
        self.encoding: str = application.encoding
        try:
            option = str(configuration.get("storage", "fastpath"))
        except KeyError:
            option = "True"
        self.enabled = (option.strip().lower() not in ("false", "0", "no", "off")
                        and self.encoding.lower().replace("-", "") == "utf8"
                        and hasattr(self.storage, "card_index"))

    def respond(self, environ: dict[str, Any], method: str) -> Response | None:
        """A streamed answer, or None when Radicale must answer (the body is kept)."""
        try:
            return self._respond(environ, method)
        except Exception:  # never worse than Radicale: let it answer instead
            log.exception("Fast path failed for %s %s; Radicale answers", method,
                          environ.get("PATH_INFO", ""))
            return None

    def put(self, environ: dict[str, Any], sent: SentCard) -> Response | None:
        """The answer to a PUT of one plain card, stored (``item_put.py``), or None.

        Only a failure before the write hands the request to Radicale: once the
        write began, ``item_put`` answers every outcome itself.
        """
        if not self._wanted(environ):
            return None
        try:
            return item_put.respond(self, environ, sent)
        except Exception:  # raised before anything was written: Radicale answers
            log.exception("Fast path failed for PUT %s; Radicale answers",
                          environ.get("PATH_INFO", ""))
            return None

    def _wanted(self, environ: dict[str, Any]) -> bool:
        return self.enabled and environ.get(BYPASS_HEADER, "").strip() in ("", "0")

    def _respond(self, environ: dict[str, Any], method: str) -> Response | None:
        if not self._wanted(environ):
            return None
        if method in ("GET", "HEAD"):
            whole_book = environ.get("PATH_INFO", "").endswith("/")
            return (book_get if whole_book else item_get).respond(self, environ, method)
        depth = environ.get("HTTP_DEPTH", "0")  # Radicale's default
        if method not in ("PROPFIND", "REPORT") or (
                method == "PROPFIND" and depth not in ("0", "1")):
            return None
        raw = _read_body(environ)
        if raw is None:
            return None
        root = self._parse(environ, raw) if raw or method != "PROPFIND" else None
        if root is None and (raw or method != "PROPFIND"):
            return None
        # Only what is needed is kept: a multiget of 100,000 hrefs is a big tree.
        lengths = _propfind_lengths(root) if method == "PROPFIND" else None
        report = _report_request(root) if method == "REPORT" and root is not None else None
        del root
        if method == "PROPFIND" and (lengths is None or (depth == "0" and not lengths)):
            return None  # (a Depth 0 without a length is answered at once by Radicale)
        if method == "REPORT" and report is None:
            return None
        target = self.target(environ)
        if target is None:
            return None
        if lengths is not None:
            return self._propfind(environ, raw, target, depth == "1", lengths)
        assert report is not None
        return self._report(environ, target, report)

    # -- request ----------------------------------------------------------------
    def _parse(self, environ: dict[str, Any], raw: bytes) -> ET.Element | None:
        """The body as Radicale reads it (decoded by its rules), or None."""
        try:
            text = radicale.decode_request(self.configuration, environ, raw)
            return _element_of(text) if text else None
        except Exception:  # Radicale answers what it cannot parse (400)
            return None

    def target(self, environ: dict[str, Any], permission: str = "r") -> _Target | None:
        """Radicale's login, path and ``permission`` checks; None means "ask Radicale"."""
        app = self.app
        if app.sharing_enabled or any(environ.get(h) for h in _PROXY_HEADERS):
            return None
        base_prefix = environ.get("HTTP_X_SCRIPT_NAME" if "HTTP_X_SCRIPT_NAME" in environ
                                  else "SCRIPT_NAME", "")
        if base_prefix and not base_prefix.startswith("/"):
            return None
        base_prefix = base_prefix.rstrip("/")
        path = radicale.sanitize_path(environ.get("PATH_INFO", ""))
        if not app.valid_path(path) or "/.well-known" in path:  # redirects and 404s
            return None
        logged_in = app.basic_login(environ)
        if logged_in is None:
            return None
        _, user, groups = logged_in
        access = app.access(user, groups, path)
        if not access.check(permission):
            return None
        return _Target(base_prefix, path, user, groups, access)

    def book(self, target: _Target, groups_view: bool = False) -> Collection | None:
        """The address book this module may answer for (call under the read lock);
        in the groups view (an Apple client's) only with ``groups_view``: a listing
        lists the group cards with the cards (``Collection.listing``)."""
        own = target.path.startswith(f"/{target.user}/")  # then the principal exists
        if not own and next(iter(self.storage.discover(f"/{target.user}/")), None) is None:
            return None  # Radicale creates the principal on this request
        book = next(iter(self.storage.discover(target.path)), None)
        if (not isinstance(book, Collection) or book.tag != "VADDRESSBOOK"
                or book._published is not None or (book._groups_view and not groups_view)
                or not target.access.check("r", book)):
            return None
        return book

    # -- PROPFIND -----------------------------------------------------------------
    def _propfind(self, environ: dict[str, Any], raw: bytes, target: _Target,
                  cards: bool, lengths: bool) -> Response | None:
        """A book's PROPFIND: its own response and, with ``cards``, every card's.

        Both are Radicale's: the book's from running it on the request with
        Depth 0, each card's from running it on one card and putting each
        card's href, etag, date and length into that answer (``_card_template``).
        A length (``getcontentlength``, asked by name or by ``allprop``) is
        each card's ``served_size``, found after the lock is released; Radicale
        read every card under the lock, twice over for the book's own length.
        """
        with self.storage.acquire_lock("r", target.user):
            book = self.book(target, groups_view=True)
            if book is None or (cards and _has_child_folders(book.folder)):
                return None
            first = next(iter(book.listing()), None) if cards else None
            href_base = quote(target.base_prefix + radicale.unstrip_path(book.path, True))
        granted = self.app.authorization(
            target.user, target.groups, radicale.unstrip_path(book.path, True))
        if not radicale.rights_intersect(granted, "rw"):
            return None
        with book_text_left_out() if lengths else contextlib.nullcontext():
            own = self._radicale_depth0(environ, raw)
        if own is None:
            return None
        headers, own_response = own
        names = multistatus.Names()
        template = "" if first is None else self._card_template(
            environ, raw, names, target, href_base, first[0])
        if template is None:
            return None
        responses = listing.ResponseTemplate(template, href_base, http_date)
        parts: list[listing.Part] = []
        rows: list[tuple[str, str, int, int]] = []
        group_cards: set[str] = set()
        with self.storage.acquire_lock("r", target.user):
            book = self.book(target, groups_view=True)
            if book is None:
                return None
            folder = book.folder
            if lengths:  # (each card's length is read once the lock is released)
                rows = list(book.listing())
                group_cards = {row[0] for row in book.group_rows()}
            elif cards:
                parts = responses.render(book.listing(), [])
        del book  # the text is all the stream needs
        if lengths:
            rows = [(href, etag, mtime_ns, size) for (href, etag, mtime_ns, _), size
                    in _served_sizes(folder, rows, group_cards) if size is not None]
            for element in own_response.iter(_LENGTH):
                if element.text is not None:  # (in the propstat of 200)
                    element.text = str(sum(row[3] for row in rows))
            if cards:
                parts = responses.render(rows, [])
        if cards and parts and not template:
            return None  # the book's first card came after the first look: Radicale answers
        own_xml = names.element(own_response)
        header = names.root_start() + own_xml  # once every name was seen
        chunks = multistatus.counted_chunks(header, _taken(parts), names.root_end())
        return self._answer(environ, headers, chunks)

    def _card_template(self, environ: dict[str, Any], raw: bytes, names: multistatus.Names,
                       target: _Target, href_base: str, href: str) -> str | None:
        """Radicale's answer to this PROPFIND for the card ``href`` alone, its own
        values made ``listing`` markers: every card's answer once they are filled in.

        What Radicale writes for a card besides those (rights, principal, owner,
        content type, the 404s) depends only on the user and the book.
        """
        path = target.path.rstrip("/") + "/" + href
        answer = self._radicale_depth0(environ, raw, path)
        if answer is None:
            return None
        response = answer[1]
        found = response.find(_HREF)
        if found is None or found.text != href_base + multistatus.quote_href(href):
            return None
        found.text = listing.HREF
        for prop in response.iter(_PROP):
            for element in prop:
                if element.tag in _CARD_MARKERS and element.text is not None:
                    element.text = _CARD_MARKERS[element.tag]
        return names.element(response)

    def _radicale_depth0(self, environ: dict[str, Any], raw: bytes, path: str | None = None
                         ) -> tuple[Headers, ET.Element] | None:
        """Radicale's answer for the book itself (or for ``path``): its headers and
        its one <response>."""
        changes = {"HTTP_DEPTH": "0"} if path is None else {"HTTP_DEPTH": "0", "PATH_INFO": path}
        status, headers, body = self.radicale_answer(environ, raw, changes)
        if not status.startswith("207"):
            return None
        root = ET.fromstring(body)
        if len(root) != 1 or root[0].tag != _RESPONSE:
            return None
        return headers, root[0]

    def radicale_answer(self, environ: dict[str, Any], raw: bytes, changes: dict[str, str]
                        ) -> tuple[str, Headers, bytes]:
        """Radicale's own answer to this request with ``changes`` to its environ:
        status, headers (no length or encoding: it is never compressed) and body."""
        env = dict(environ, **changes, **{BYPASS_HEADER: "1"})
        env["wsgi.input"] = io.BytesIO(raw)
        env.pop("HTTP_ACCEPT_ENCODING", None)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: Headers, exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, list(headers)

        chunks = self.app(env, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        headers = [(k, v) for k, v in captured.get("headers", [])
                   if k.lower() not in ("content-length", "content-encoding")]
        return str(captured.get("status", "")), headers, body

    # -- REPORT -------------------------------------------------------------------
    def _report(self, environ: dict[str, Any], target: _Target, report: _Report
                ) -> Response | None:
        tags, sync = report.tags, report.sync
        refs: set[str] = set()
        for text in report.hrefs:
            try:
                href_path = _sanitized(unquote(_url_path(text)))
            except Exception:  # Radicale fails on it: let it say how
                return None
            if (href_path + "/").startswith(target.base_prefix + "/"):
                refs.add(href_path[len(target.base_prefix):])
        report.hrefs.clear()
        token = None
        missing: list[str] = []
        names = multistatus.Names()
        ok = [(tag, names.q(tag)) for tag in tags if tag in _REPORT_OK]
        not_found = "".join(f"<{names.q(tag)} />" for tag in tags if tag not in _REPORT_OK)
        needs_text = any(tag in _DATA for tag in tags)
        content_type = f"text/vcard;charset={self.encoding}"
        base = target.base_prefix

        gone_end = names.status(404) + names.response_end
        ok_end, not_found = names.propstat_end(200), (
            names.propstat_start + not_found + names.propstat_end(404) if not_found else "")
        parts: list[listing.Part] | None = None  # a whole book's responses, written as read
        with self.storage.acquire_lock("r", target.user):
            book = self.book(target, groups_view=True)
            if book is None or (report.filters is not None and book._groups_view):
                return None  # (Radicale tests the group cards against a filter itself)
            # The groups view's group cards have no file: their texts are kept.
            group_texts = book.group_texts() if needs_text else {}
            prefix = radicale.unstrip_path(book.path, True)
            found: list[tuple[str | int, ...]] = []
            rows: Iterable[tuple[str | int, ...]] = found
            wanted: list[str] = []
            if report.filters is not None:
                matched = book.query_rows(report.filters)
                if matched is None:  # a filter the index cannot answer
                    return None
                rows = found = [(row.href, row.etag, row.size) for row in matched]
                wanted = []
            elif sync and not report.token:
                # A first sync lists every card: straight from the index listing.
                token = book.sync("")[0]
                wanted = []
                if not needs_text and (ok or not_found):
                    # The common first sync (etags only): written as the index is read.
                    unsafe: list[str] = []
                    parts = listing.ResponseTemplate(
                        _sync_response(names, ok, ok_end, not_found, content_type),
                        quote(base + prefix), http_date, safe_names=True,
                    ).render(book.listing(), unsafe)
                    missing += [prefix + href for href in unsafe]
                else:
                    def servable(rows: Iterable[tuple[str, str, int, int]]
                                 ) -> Iterator[tuple[str, str, int]]:
                        for href, etag, _, size in rows:
                            if (radicale.is_safe_path_component(href)
                                    and radicale.is_safe_name(href)):
                                yield href, etag, size
                            else:
                                missing.append(prefix + href)

                    rows = CompactRows(servable(book.listing()), 3)
            elif sync:
                try:
                    token, changed = book.sync(report.token)
                except ValueError:  # Radicale answers 403 valid-sync-token
                    return None
                # Radicale joins each name to the book's path and splits it off again.
                changed = list(changed)
                wanted = [name for name in changed if radicale.is_safe_path_component(name)]
                missing += [prefix + name for name in changed
                            if not radicale.is_safe_path_component(name)]
                del changed
            else:
                wanted = []
                for ref in refs:
                    # pathutils.name_from_path, without re-sanitising every href
                    name = ref[len(prefix):] if (ref + "/").startswith(prefix) else None
                    if name is None or (name and not radicale.is_safe_path_component(name)):
                        missing.append(ref)
                    elif not name:  # the book itself: Radicale then lists every card
                        return None
                    else:
                        wanted.append(name)
            del refs
            # Compact (href, etag, size) rows, looked up a batch at a time, so a
            # multiget of a whole book never holds every index row at once.
            for start in range(0, len(wanted), 1000):
                batch = wanted[start:start + 1000]
                found_rows = book.servable_etags(batch)
                for name in batch:
                    row = (found_rows.get(name)
                           if radicale.is_safe_name(name) else None)
                    if row is None:
                        missing.append(prefix + name)
                    else:
                        found.append((name, *row))
                del found_rows
            folder = book.folder
        del book, wanted

        book_href = quote(base + prefix)

        def gone(ref: str) -> str:
            return names.response_start(multistatus.quote_href(base + ref)) + gone_end

        def item(row: tuple[str | int, ...], fd: int | OSError | None = None) -> str:
            href, etag, size = str(row[0]), str(row[1]), int(row[2])
            text: str | None = None
            if href in group_texts:
                if isinstance(fd, int):  # (a file of that name: not what is served)
                    os.close(fd)
                text, etag = group_texts[href]
                text = xml_chars(text)
            elif fd is not None:
                card = _read_card(fd, href, size)
                if card is None:
                    return gone(prefix + href)
                text, etag = card
            if not ok and not not_found:
                return ""
            out = [names.response_start(book_href + multistatus.quote_href(href))]
            if ok:
                out.append(names.propstat_start)
                for tag, q in ok:
                    value = etag if tag == _GETETAG else content_type if tag == _CTYPE else text
                    out.append(f"<{q}>{multistatus.escape(value or '')}</{q}>")
                out.append(ok_end)
            out += [not_found, names.response_end]
            return "".join(out)

        head = names.root_start()
        if token is not None:
            q = names.q(_C("D:sync-token"))
            head += f"<{q}>{multistatus.escape(token)}</{q}>"
        responses = itertools.chain(((gone(ref), 1) for ref in missing),
                                    _taken(parts) if parts is not None
                                    else ((item(row, fd), 1) for row, fd
                                          in opened_ahead(folder, rows, _href_of))
                                    if needs_text else ((item(row), 1) for row in rows))
        headers = {"Content-Type": f"text/xml; charset={self.encoding}",
                   **self.app.extra_headers}
        body = multistatus.counted_chunks(head, responses, names.root_end())
        return self._answer(environ, list(headers.items()), body)

    # -- answer -------------------------------------------------------------------
    def _answer(self, environ: dict[str, Any], headers: Headers, chunks: Iterator[bytes]
                ) -> Response:
        """207, gzipped exactly when Radicale would gzip it.

        An answer of one chunk (a DAVx5 multiget of 10 cards) is sent whole with a
        Content-Length, so the client need not wait for the connection to close.
        """
        gzipped = "gzip" in [e.strip() for e in environ.get("HTTP_ACCEPT_ENCODING", "").split(",")]
        if gzipped:
            headers = [*headers, ("Content-Encoding", "gzip")]
        first = next(chunks)
        second = next(chunks, None)
        if second is None:
            body = b"".join(multistatus.gzip_stream([first])) if gzipped else first
            return "207 Multi-Status", [*headers, ("Content-Length", str(len(body)))], [body]
        stream = itertools.chain((first, second), chunks)
        return "207 Multi-Status", headers, (multistatus.gzip_stream(stream) if gzipped
                                             else stream)


# -- request shapes ----------------------------------------------------------------
def _sync_response(names: multistatus.Names, ok: list[tuple[str, str]], ok_end: str,
                   not_found: str, content_type: str) -> str:
    """A sync report's ``<response>`` for any card (no card text), as a listing template."""
    template = [names.response_start(listing.HREF)]
    if ok:
        template.append(names.propstat_start)
        for tag, q in ok:
            value = listing.ETAG if tag == _GETETAG else multistatus.escape(content_type)
            template.append(f"<{q}>{value}</{q}>")
        template.append(ok_end)
    template += [not_found, names.response_end]
    return "".join(template)


def _taken(parts: list[listing.Part]) -> Iterator[listing.Part]:
    """``parts`` in order, each let go of once it is handed on (a stream's memory shrinks)."""
    parts.reverse()
    while parts:
        yield parts.pop()


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The request body, put back so Radicale can still read it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw if len(raw) == max(length, 0) else None


def _element_of(text: str) -> ET.Element:
    """``defusedxml.ElementTree.fromstring(text)``, without its cost for plain bodies.

    A text with no ``<!`` has no document type declaration, so no entity can
    be declared in it, internal or external: nothing defusedxml refuses. Such
    a text (every request a CardDAV client sends) goes to ElementTree's C
    parser, the same expat building the same tree, not to defusedxml's
    Python one (12 against 26 us for a multiget of 10). A ``str`` is parsed
    as the characters scanned here, whatever encoding its declaration names.
    Any other text goes to defusedxml, which raises on what it refuses.
    """
    return ET.fromstring(text) if "<!" not in text else DefusedET.fromstring(text)


def _url_path(href: str) -> str:
    """``urlparse(href).path``, without its cost for the plain absolute paths clients send."""
    if href.startswith("/") and not href.startswith("//") and href.isprintable() \
            and not any(c in href for c in " ?#;"):
        return href
    return urlparse(href).path


def _propfind_lengths(root: ET.Element | None) -> bool | None:
    """Whether a PROPFIND asks for ``getcontentlength``; None: not answered here.

    Radicale reads the first element in ``<propfind>`` (``allprop``,
    ``propname`` or ``prop``) and nothing else; no body at all is ``allprop``.
    """
    if root is None:
        return True
    if root.tag != _C("D:propfind") or len(root) == 0:
        return None
    top = root[0]
    if top.tag == _ALLPROP:
        return True
    if top.tag == _PROPNAME:
        return False
    if top.tag == _PROP:
        return any(element.tag == _LENGTH for element in top)
    return None


def _report_request(root: ET.Element) -> _Report | None:
    """multiget or sync-collection with no filter, or an addressbook-query.

    Other reports, CalDAV filters and expand are Radicale's business; so is a
    query filter the index cannot answer (``Collection.query_rows``).
    """
    if root.tag == _C("CR:addressbook-query"):
        filters = root.findall(_C("CR:filter"))
        if not filters or root.findall(_C("C:filter")):
            return None
        prop = root.find(_PROP)
        tags = tuple(child.tag for child in prop) if prop is not None else ()
        if any(not tag.startswith("{") for tag in tags):
            return None
        return _Report(False, tags, [], "", filters)
    if (root.tag not in (_C("CR:addressbook-multiget"), _C("D:sync-collection"))
            or root.findall(_C("C:filter")) or root.findall(_C("CR:filter"))
            or next(root.iter(_C("C:expand")), None) is not None):
        return None
    prop = root.find(_PROP)
    tags = tuple(child.tag for child in prop) if prop is not None else ()
    sync = root.tag == _C("D:sync-collection")
    hrefs = [] if sync else [e.text for e in root.findall(_HREF)]  # sync ignores hrefs
    if any(not tag.startswith("{") for tag in tags) or None in hrefs:
        return None
    return _Report(sync, tags, cast(list[str], hrefs),
                   (root.findtext(_C("D:sync-token")) or "").strip())


def _has_child_folders(folder: str) -> bool:
    """Radicale lists sub-folders of a book as collections in a PROPFIND Depth 1."""
    if os.stat(folder).st_nlink == 2:  # no sub-folder at all (most file systems)
        return False
    with os.scandir(folder) as entries:
        return any(e.is_dir() and radicale.is_safe_name(e.name)
                   for e in entries)


def _sanitized(path: str) -> str:
    """``pathutils.sanitize_path``, skipped for a path it would return unchanged."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path
    return radicale.sanitize_path(path)


def _read_card(fd: int | OSError, href: str, size: int) -> tuple[str, str] | None:
    """The text of the card file open as ``fd`` (what a GET serves, without the
    characters XML cannot carry) and the etag of the file's text, or None: it is gone
    or not UTF-8. Closes ``fd``."""
    raw = read_opened(fd, size)
    if raw is None:
        log.warning("Card %r vanished while it was listed", href)
        return None
    try:
        # etag_of(the file's text), without encoding it again: UTF-8 round-trips.
        return xml_text(raw), f'"{sha256(raw).hexdigest()}"'
    except UnicodeDecodeError as e:
        log.warning("Card %r became unreadable while it was listed: %s", href, e)
        return None


def _href_of(row: tuple[str | int, ...]) -> str:
    return str(row[0])


def _served_sizes(folder: str, rows: Iterable[tuple[str, str, int, int]],
                  group_cards: set[str]) -> Iterator[tuple[tuple[str, str, int, int], int | None]]:
    """Each row with its card's ``served_size``, or None: gone or unreadable. A
    group card of ``group_cards`` has no file: its row has its size."""
    for row, fd in opened_ahead(folder, rows, _href_of):
        if row[0] in group_cards:
            if isinstance(fd, int):
                os.close(fd)
            yield row, row[3]
            continue
        if isinstance(fd, OSError):
            if not is_gone(fd):
                raise fd  # (out of descriptors, a failing disk: not a deleted card)
            yield row, None
            continue
        try:
            size = served_size(fd)
        finally:
            os.close(fd)
        yield row, size
