"""The WSGI application ``cardfile serve`` runs: Radicale, wrapped.

The wrapper does what Radicale's storage API cannot see (the HTTP request):
it checks an uploaded card before Radicale does, so a bad card is refused
with a sentence that says what is wrong and where; it turns Radicale's bare
error statuses into one-line reasons a client can show; and it logs one line
per request. The listings of a whole index-backed address book (PROPFIND
Depth 1, sync-collection, multiget) are streamed by ``fastpath.py`` with
Radicale's own answers, and a PUT of one plain card is stored by it
(``item_put.py``); everything else is Radicale's own request handling.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from cardfile.plugin.api import ApiApp, is_api_path
from cardfile.plugin.api.problems import PROBLEM_TYPE, encode_problem
from cardfile.plugin.contacts import actor, request_notes, sent_card, state_files, views
from cardfile.plugin.contacts.card_check import accept_card_upload
from cardfile.plugin.contacts.grants.core import Grants
from cardfile.plugin.contacts.grants.store import GrantStore
from cardfile.plugin.contacts.sent_card import SentCard
from cardfile.plugin.dav import (
    basic_auth,
    grant_guard,
    preconditions,
    request_guard,
    share_guard,
    source_guard,
)
from cardfile.plugin.dav.body_reader import read_exactly
from cardfile.plugin.dav.fastpath import FastPath
from cardfile.plugin.dav.host_check import HostCheck
from cardfile.plugin.dav.log_escape import escape
from cardfile.plugin.dav.login_throttle import LoginAttempt, LoginThrottle
from cardfile.plugin.dav.web_app import WebApp, is_web_path
from cardfile.plugin.radicale_adapter import REFUSED_KEY, RadicaleApp, radicale_logger
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard.xml_chars import xml_chars

log = logging.getLogger("cardfile")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

_REASON_NS = "http://cardfile.org/ns"

#: WebDAV precondition elements (RFC 4918, 6352, 6578) and what they mean to a user.
_PRECONDITIONS: dict[str, str] = {
    "no-uid-conflict": "Another contact in this address book already has this card's UID",
    "valid-sync-token": "The sync token is unknown or expired; start a full sync "
                        "(an empty sync-token)",
    "supported-report": "This report is not supported on this address",
    "max-resource-size": "The card is larger than this server accepts",
    "valid-address-data": "The card is not a valid vCard",
    "propfind-finite-depth": "PROPFIND with Depth: infinity is not supported; use Depth 0 "
                             "or 1",
}
_FRIENDLY: dict[tuple[str, int], str] = {
    ("PUT", 412): "The contact changed since you last read it (or the If-Match/If-None-Match "
                  "condition does not hold); fetch it again, then retry",
    ("DELETE", 412): "The contact changed since you last read it; fetch it again, then retry",
    ("PUT", 403): "You may not write to this address",
    ("DELETE", 403): "You may not delete at this address",
    ("MKCOL", 403): "You may not create a collection here",
}
_GENERIC: dict[int, str] = {
    400: "The request could not be understood",
    401: "Log in with your Cardfile user name and password",
    403: "You do not have access to this address",
    404: "Nothing exists at this address",
    405: "This method is not allowed at this address",
    409: "The request conflicts with what is stored",
    412: "A precondition of the request does not hold",
    413: "The request body is too large",
    415: "This content type is not accepted here",
}


#: Where a request's login attempt (login_throttle) waits for the handlers.
LOGIN_KEY = "cardfile.login"


class CardfileApp:
    """Radicale's application behind Cardfile's checks and messages."""

    def __init__(self, configuration: Any) -> None:
        self.configuration = configuration
        self.radicale = RadicaleApp(configuration)
        self.max_content_length: int = configuration.get("server", "max_content_length")
        self.max_resource_size: int = configuration.get("server", "max_resource_size")
        #: Radicale refuses every request without a valid login (not so for
        #: ``none`` or a proxy's REMOTE_USER), so a body need not be read first.
        self.logins_required = str(configuration.get("auth", "type")) not in (
            "none", "remote_user", "http_remote_user", "http_x_remote_user")
        self.data_folder = str(configuration.get("storage", "filesystem_folder"))
        self.collection_root = os.path.join(self.data_folder, "collection-root")
        try:
            self.group_cards_default = str(configuration.get("storage", "group_cards"))
        except KeyError:
            self.group_cards_default = "auto"
        request_notes.install(radicale_logger)
        # Device passwords, app tokens, friends: one grants model (plugin/contacts/grants),
        # checked here for CardDAV and in the API for /api/.
        self.grants = Grants(GrantStore(configuration.get("storage", "filesystem_folder")))
        self.grant_guard = grant_guard.GrantGuard(self.grants)
        self.radicale.accept_logins(self.grant_guard.login)
        # The JSON API shares Radicale's storage object: one index, one lock.
        self.api = ApiApp(configuration, self.radicale.storage, self.grants)
        self.host_check = HostCheck.from_configuration(configuration)
        self.web = WebApp()  # the contacts page at / (web_app.py)
        # Whole-book listings of index-backed books are streamed (fastpath.py).
        self.fastpath = FastPath(self.radicale, configuration)
        # Failed logins per client address, for CardDAV and the JSON API alike.
        shared = getattr(self.radicale.storage, "shared", None)
        self.login_throttle = LoginThrottle.from_configuration(
            configuration, shared.store if shared is not None else None)

    def warm_up(self) -> None:
        """Index every address book before the first request (see Storage.warm_up)."""
        storage = self.radicale.storage
        if hasattr(storage, "warm_up"):
            started = time.monotonic()
            books, cards = storage.warm_up()
            log.info("Index ready: %d address book(s), %d card(s) in %.1f s", books, cards,
                     time.monotonic() - started)

    def view_for(self, environ: Environ) -> str:
        """Group cards for Apple and for clients that write them, else categories."""
        user = basic_auth.user_name(environ.get("HTTP_AUTHORIZATION", ""))
        mode = self.group_cards_default
        clients: frozenset[str] = frozenset()
        if _plain_user_name(user):
            mode, clients = views.read_group_settings(self.collection_root, user, mode)
        return views.choose(environ.get("HTTP_USER_AGENT", ""), mode, clients)

    def _learn_group_client(self, environ: Environ, vcard4: bool) -> None:
        """A client that wrote a group card sees group cards from its next request on."""
        user = basic_auth.user_name(environ.get("HTTP_AUTHORIZATION", ""))
        if not _plain_user_name(user):
            return
        product = views.client_product(environ.get("HTTP_USER_AGENT", ""))
        views.learn_group_client(self.collection_root, user, product, vcard4)
        log.info("User %s: client %r writes vCard %s group cards; it gets them from now on",
                 user, product, "4" if vcard4 else "3")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not basic_auth.has_credentials(header):
            return self._answer(environ, start_response, None)
        # Counted from here to the answer (login_throttle): a burst cannot outrun it.
        try:
            login = self.login_throttle.begin(environ.get("REMOTE_ADDR", ""), header)
        except Refused as e:  # its records are in a database that cannot be reached
            return self._refused(environ, start_response, e)
        environ[LOGIN_KEY] = login
        code = 500
        try:
            answer = self._answer(environ, start_response, login)
            code = self._last_code(environ)
            return answer
        finally:
            try:
                self.login_throttle.finish(login, code)
            except Refused as e:  # the answer is sent; the count is lost, not the answer
                log.warning("Login of %s not counted: %s", login.address, e.reason)

    def _refused(self, environ: Environ, start_response: StartResponse,
                 refusal: Refused) -> Iterable[bytes]:
        """Answer a refusal met before the request could be handled at all."""
        status, headers, body, reason = _early(environ, refusal.status, refusal.reason,
                                               refusal.headers)
        environ["cardfile.status"] = refusal.status
        start_response(status, headers)
        self._log(environ, environ.get("REQUEST_METHOD", "GET").upper(), refusal.status, 0.0,
                  [reason])
        return [body]

    @staticmethod
    def _last_code(environ: Environ) -> int:
        return int(environ.get("cardfile.status", 500))

    def _answer(self, environ: Environ, start_response: StartResponse,
                login: LoginAttempt | None) -> Iterable[bytes]:
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        refused = (self.host_check.response(environ)  # DNS rebinding: see host_check
                   or self._refuse_early(environ, login))
        with request_notes.collecting() as notes, views.using(
                self.view_for(environ) if refused is None else views.choose("", "never")), \
                actor.acting(basic_auth.user_name(environ.get("HTTP_AUTHORIZATION", "")),
                             environ.get("HTTP_USER_AGENT", "")):
            if refused is not None:
                status, headers, body, reason = refused
                code = int(status.split(" ", 1)[0])
                notes.insert(0, reason)
            elif is_api_path(environ.get("PATH_INFO", "")):
                status, headers, body = self.api.handle(environ)
                code = int(status.split(" ", 1)[0])
            elif is_web_path(environ.get("PATH_INFO", ""), method):
                status, headers, body = self.web.handle(environ)
                code = int(status.split(" ", 1)[0])
            else:
                chunks: Iterable[bytes]
                try:
                    status, headers, chunks = self._handle(environ, method)
                except Refused as e:  # the core's refusal: its status, the reason in the body
                    status, headers, chunks = e.status_line, e.headers, [b""]
                    notes.insert(0, e.reason)
                code = int(status.split(" ", 1)[0])
                environ["cardfile.status"] = code
                if code == 207 and method == "PROPFIND" and isinstance(chunks, list) \
                        and environ.get(grant_guard.ENVIRON_KEY) is not None:
                    body = grant_guard.filter_home(environ, _joined(chunks))
                    headers = [(k, str(len(body)) if k.lower() == "content-length" else v)
                               for k, v in headers]
                    chunks = [body]
                if code >= 400:
                    headers, body = _with_reason(method, code, headers, _joined(chunks), notes)
                    chunks = [body]
                if not isinstance(chunks, list):
                    # A streamed answer: its log line (and duration) comes when it ends.
                    start_response(status, headers)
                    return _LoggedStream(chunks, lambda: self._log(
                        environ, method, code, time.monotonic() - started, notes))
                # A 2xx body is passed on as Radicale's chunks, never joined.
                start_response(status, headers)
                self._log(environ, method, code, time.monotonic() - started, notes)
                return chunks
        environ["cardfile.status"] = code
        start_response(status, headers)
        self._log(environ, method, code, time.monotonic() - started, notes)
        return [body]

    def _refuse_early(self, environ: Environ, login: LoginAttempt | None
                      ) -> tuple[str, list[tuple[str, str]], bytes, str] | None:
        """(status, headers, body, reason) for a request refused before any handling.

        A throttled address (429, see login_throttle), malformed credentials,
        an address that is not UTF-8 once percent-decoded, a bad Content-Length:
        each would otherwise reach code that answers 500 or guesses.
        """
        header = environ.get("HTTP_AUTHORIZATION", "")
        extra: list[tuple[str, str]] = []
        try:  # with PostgreSQL: passwords, grants, books made through other servers
            state_files.catch_up(self.data_folder)
        except Refused as e:
            return _early(environ, e.status, e.reason, e.headers)
        if login is not None and login.wait:
            wait = login.wait
            extra = [("Retry-After", str(wait))]
            return _early(environ, 429, f"Too many failed logins from this address; try "
                                        f"again in {wait} seconds", extra)
        reason = basic_auth.refusal(header) or _path_refusal(environ)
        if reason is not None:
            return _early(environ, 400, reason, extra)
        if not is_api_path(environ.get("PATH_INFO", "")):  # the API checks its own grants
            grant_refusal = self.grant_guard.screen(environ, environ.get(
                "REQUEST_METHOD", "GET").upper())
            if grant_refusal is not None:
                return _early(environ, grant_refusal.status, grant_refusal.reason, extra)
        try:
            _content_length(environ)
        except Refused as e:
            return _early(environ, e.status, e.reason, extra)
        return None

    def _handle(self, environ: Environ, method: str
                ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        length = _content_length(environ)
        if length > self.max_content_length:
            raise Refused(413, f"The request body is {length} bytes; this server accepts "
                                    f"at most {self.max_content_length} (max_content_length)")
        if length and self.logins_required:
            if self.radicale.basic_login(environ) is None:
                # Radicale answers the failed login; the body is never waited for, so a
                # stranger cannot hold a body reader (body_reader) by stalling one.
                environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(b""), "0"
                return self._radicale(environ)
            login = environ.get(LOGIN_KEY)
            if login is not None:  # proved before the body: a stalled body holds no attempt
                self.login_throttle.proved(login)
        source_guard.screen(environ, method, self.collection_root,  # read-only source books
                            self.api.logged_in_user)
        share_guard.screen(environ, method, self.collection_root,  # others' shared books
                           self.grants.store, self.api.logged_in_user)
        refused = (request_guard.screen(environ, method, length)  # entities, Depth, names
                   or preconditions.evaluate(self.radicale, environ, method))  # RFC 9110
        if refused is not None:
            return refused
        sent: SentCard | None = None
        if length and not isinstance(environ["wsgi.input"], io.BytesIO):
            # Every body is read once, under the body deadline, before anyone uses it.
            environ["wsgi.input"] = io.BytesIO(read_exactly(environ, length))
        if method == "PUT" and length:
            body = environ["wsgi.input"].getvalue()
            sent = accept_card_upload(environ, body, self.max_resource_size)
            if sent is not None and sent.changed:
                body = sent.text.encode("utf-8")  # Radicale parses what will be stored
                environ["CONTENT_LENGTH"] = str(len(body))
                environ["wsgi.input"] = io.BytesIO(body)
        fast = self.fastpath.respond(environ, method)
        if fast is not None:
            return fast
        if sent is not None:
            return self._put(environ, sent)
        return self._radicale(environ)

    def _radicale(self, environ: Environ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, list(headers)

        # Passed through as they come: only an error body is joined (to be reworded).
        chunks = self.radicale(environ, capture)
        refused = environ.pop(REFUSED_KEY, None)
        if refused is not None:  # raised by the storage inside Radicale's handler
            request_notes.add(refused.reason)
        return captured["status"], captured["headers"], chunks

    def _put(self, environ: Environ, sent: SentCard
             ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        """Store the card as sent; an answer for a card the server changed has no ETag.

        RFC 6352 6.3.2.3: with an ETag the client keeps its own bytes as current,
        so a server-side change (a repair, a pending category, a group card kept
        as a category) would never reach it.
        """
        with sent_card.receiving(sent):
            fast = self.fastpath.put(environ, sent)  # a plain card: stored directly
            status, headers, chunks = fast if fast is not None else self._radicale(environ)
        if status.startswith("2"):
            if sent.changed:
                headers = [(k, v) for k, v in headers if k.lower() != "etag"]
                log.info("PUT %s stored with changes (no ETag): %s",
                         environ.get("PATH_INFO", ""), "; ".join(sent.changes)[:300])
            if sent.is_group_card and views.current() == views.CATEGORIES_VIEW:
                self._learn_group_client(environ, vcard4=_is_vcard4(sent.text))
        return status, headers, chunks

    @staticmethod
    def _log(environ: Environ, method: str, code: int, seconds: float, notes: list[str]) -> None:
        # Everything the client sent is escaped: no forged lines (log_escape).
        path = escape(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        user = escape(basic_auth.user_name(environ.get("HTTP_AUTHORIZATION", ""))) or "-"
        agent = escape(environ.get("HTTP_USER_AGENT", "-")[:80])
        line = "%s %s %d %.1fms user=%s agent='%s'"
        args: tuple[Any, ...] = (escape(method), path, code, seconds * 1000, user, agent)
        if code >= 400 and notes:
            line += " reason='%s'"
            args += (escape(notes[0]),)
        log.info(line, *args)


def _joined(chunks: Iterable[bytes]) -> bytes:
    """A whole body from WSGI chunks, closing the iterable as WSGI requires."""
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class _LoggedStream:
    """A streamed body that logs the request line once the server is done with it."""

    def __init__(self, chunks: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


def _early(environ: Environ, code: int, reason: str, extra: list[tuple[str, str]]
           ) -> tuple[str, list[tuple[str, str]], bytes, str]:
    """A refusal in the form its client reads: problem JSON under /api, else text."""
    if is_api_path(environ.get("PATH_INFO", "")):
        body, content_type = encode_problem(code, reason), PROBLEM_TYPE
    else:
        body, content_type = (reason + "\n").encode(), "text/plain; charset=utf-8"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
    return f"{code} {HTTPStatus(code).phrase}", headers, body, reason


def _path_refusal(environ: Environ) -> str | None:
    """Why the request's address is refused, or None.

    A ``.`` or ``..`` segment outside the API (clients remove them, RFC 3986;
    left in, Radicale would quietly answer for another collection; the API
    refuses them as names itself), or an address that is not UTF-8 once
    percent-decoded.
    """
    path = environ.get("PATH_INFO", "")
    if not is_api_path(path) and any(segment in (".", "..") for segment in path.split("/")):
        return "An address cannot contain . or .. segments"
    raw = environ.get("REQUEST_URI")  # the server's undecoded target (cli/server.py)
    if not raw or "\ufffd" not in path:
        return None
    try:
        unquote(str(raw).split("?", 1)[0], errors="strict")
    except UnicodeDecodeError:
        return "The address is not valid UTF-8 once its %-escapes are decoded"
    return None


def _is_vcard4(text: str) -> bool:
    return any(line.strip().upper() == "VERSION:4.0" for line in text.splitlines()[:8])


def _plain_user_name(user: str) -> bool:
    """A user name that can name a folder (the login itself is Radicale's to check)."""
    return bool(user) and user != "?" and "/" not in user and "\\" not in user \
        and not user.startswith(".") and "\x00" not in user


def _precondition_reason(body: bytes) -> str | None:
    if b"error" not in body[:400]:
        return None
    for name, sentence in _PRECONDITIONS.items():
        if name.encode() in body:
            return sentence
    return None


def _content_length(environ: Environ) -> int:
    text = str(environ.get("CONTENT_LENGTH") or "0").strip()
    if not text.isascii() or not text.isdigit():
        if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
            raise Refused(400, "The Content-Length header is negative")
        raise Refused(400, "The Content-Length header is not a number")
    if len(text) > 18:  # past any body size, and past what int() reads quickly
        raise Refused(413, "The Content-Length header is larger than this server "
                                "accepts (max_content_length)")
    return int(text)


def _with_reason(method: str, code: int, headers: list[tuple[str, str]], body: bytes,
                 notes: list[str]) -> tuple[list[tuple[str, str]], bytes]:
    """Put one human sentence in an error response, keeping WebDAV's XML."""
    friendly = (_precondition_reason(body) or _FRIENDLY.get((method, code))
                or _GENERIC.get(code) or HTTPStatus(code).phrase)
    # A 401 says nothing more: not whether the user exists, nor how it is checked.
    details = [n for n in notes if n and n != friendly] if code != 401 else []
    reason = friendly if not details else f"{friendly}: {details[0]}"
    if code in (400, 413) and details:
        reason = details[0]
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    encoding = next((v for k, v in headers if k.lower() == "content-encoding"), "")
    if encoding.strip().lower() == "gzip":  # Radicale gzips errors for clients that ask
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            body = b""
    # The new body is sent as it is: plain, whatever Radicale's encoding was.
    headers = [(k, v) for k, v in headers
               if k.lower() not in ("content-length", "content-type", "content-encoding")]
    if "xml" in content_type and body.strip():
        try:
            root = ET.fromstring(body)
            # A reason may quote the name of a card file placed by hand: its control
            # characters are shown as escapes, and XML's other two left out.
            ET.SubElement(root, f"{{{_REASON_NS}}}reason").text = xml_chars(escape(reason))
            body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
            headers.append(("Content-Type", content_type))
        except ET.ParseError:
            body = (reason + "\n").encode()
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
    else:
        body = (reason + "\n").encode()
        headers.append(("Content-Type", "text/plain; charset=utf-8"))
    headers.append(("Content-Length", str(len(body))))
    return headers, body
