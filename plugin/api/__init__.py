"""The Contacts JSON API, mounted by ``cardfile serve`` at ``/api/``.

``ApiApp`` is a WSGI application beside Radicale: same users (Radicale's auth
plugin from the same configuration, with its login cache and failed-login
delay), same rights plugin, same storage object (so one index and one lock),
and every write goes through ``model.AddressBook`` and ``Categories``, so a
change made here is in CardDAV clients' next sync and the reverse.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.api import routes, same_origin, scoped_views, share_views
from cardfile.plugin.api.context import Context
from cardfile.plugin.api.problems import PROBLEM_TYPE, Problem, encode_problem
from cardfile.plugin.api.web import Request, Response
from cardfile.plugin.contacts import actor, request_notes, views
from cardfile.plugin.contacts.grants.core import Grant, Grants, check
from cardfile.plugin.contacts.grants.store import GrantStore
from cardfile.plugin.dav import grant_guard
from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard.card_fields import CardSyntaxError

log = logging.getLogger("cardfile")
_REALM = 'Basic realm="Cardfile", charset="UTF-8"'
#: Sent with every API answer: it is data, never a page to render, sniff or frame.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def api_client(environ: dict[str, Any]) -> str:
    """How the history names an API caller: the web page, or the program's product."""
    agent = environ.get("HTTP_USER_AGENT", "")
    if agent.startswith("Mozilla/") and environ.get("HTTP_SEC_FETCH_SITE") == "same-origin":
        return "web page"
    return f"API ({actor.client_of(agent) or 'unknown client'})"


class ApiApp:
    """WSGI app for ``/api``; ``handle`` returns (status line, headers, body)."""

    def __init__(self, configuration: Any, storage: Any, grants: Grants | None = None) -> None:
        self.configuration = configuration
        self.storage = storage
        self.grants = grants or Grants(GrantStore(
            configuration.get("storage", "filesystem_folder")))
        self.auth = radicale.load_auth(configuration)
        self.rights = radicale.load_rights(configuration)
        self.max_content_length: int = configuration.get("server", "max_content_length")
        self.max_resource_size: int = configuration.get("server", "max_resource_size")
        self.auth_delay = float(configuration.get("auth", "delay"))

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> list[bytes]:
        status, headers, body = self.handle(environ)
        start_response(status, headers)
        return [body]

    def handle(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            try:
                response = self._respond(environ, method)
            except Problem:
                raise
            except CardSyntaxError as e:  # a card on disk this code cannot edit
                raise Problem(422, f"the stored card could not be read or edited: {e}"
                              ) from None
            except Refused as e:  # raised outside a view (the database away: 503)
                raise Problem(e.status, e.reason, headers=e.headers) from None
            except Exception:  # a bug: logged with its traceback, answered as a problem
                log.exception("API request %s %s failed", method, environ.get("PATH_INFO"))
                raise Problem(500, "the server failed on this request; the log has the "
                                   "details") from None
        except Problem as e:
            request_notes.add(e.detail)
            body = encode_problem(e.status, e.detail, **e.extra)
            response = Response(e.status, body, PROBLEM_TYPE, list(e.headers))
        headers = list(response.headers)
        if response.content_type:
            headers.append(("Content-Type", response.content_type
                            + ("; charset=utf-8" if response.content_type.startswith("text/")
                               else "")))
        headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Cache-Control", "no-store"))
        named = {name.lower() for name, _ in headers}
        headers += [h for h in SECURITY_HEADERS if h[0].lower() not in named]
        body = b"" if method == "HEAD" else response.body
        return routes.status_line(response.status), headers, body

    def _respond(self, environ: dict[str, Any], method: str) -> Response:
        path = environ.get("PATH_INFO", "")
        route, params = routes.match(path)
        if route is None:
            raise Problem(404, f"there is nothing at {path}; start at /api/")
        for name, value in params.items():
            if value in (".", ".."):  # would leave the book's folder: Radicale refuses
                what = "an address book" if name == "book" else "a contact or category"
                raise Problem(400, f"{value!r} cannot name {what}")
        handler = route.handler(method)
        if method == "OPTIONS":
            return Response.empty(204, [("Allow", route.allow())])
        if handler is None:
            raise Problem(405, f"{method} is not allowed here; use {route.allow()}",
                          headers=[("Allow", route.allow())])
        cross_site = same_origin.refusal(environ, method)
        if cross_site is not None:
            raise Problem(403, cross_site)
        grant: Grant | None = None
        if route.public:
            user = ""
        else:
            user, grant = self.login(environ)
            if grant is not None:
                self._check_grant(grant, route, method, params, environ)
        request = Request.from_environ(environ, user, self.max_content_length)
        unknown = sorted(set(request.query) - routes.query_names(route, method))
        if unknown:
            known = ", ".join(sorted(routes.query_names(route, method))) or "none"
            raise Problem(400, f"unknown query parameter {unknown[0]!r}; this address "
                               f"takes: {known}")
        prefix = environ.get("SCRIPT_NAME", "").rstrip("/") + "/api"
        context = Context(request, self.storage, self.rights, prefix, self.max_resource_size,
                          grants=self.grants, grant=grant,
                          admins=_admins(self.configuration))
        if grant is not None and (grant.properties is not None
                                  or (grant.books and route.template == "/api")):
            # the cut views only (and a book-limited grant sees only its books' names)
            handler = scoped_views.handler(route.template, method)
            assert handler is not None
        try:
            if "book" in params and not route.public:
                share_views.screen(context, route.template, method, params["book"])
            with actor.acting(user, environ.get("HTTP_USER_AGENT", ""), api_client(environ)):
                return handler(context, **params)
        except Refused as e:  # the core's refusal, as a problem document (the API's edge)
            raise Problem(e.status if e.status < 500 or e.retry_after else 500, e.reason,
                          headers=e.headers) from None

    # -- authentication --------------------------------------------------------
    def _check_grant(self, grant: Grant, route: routes.Route, method: str,
                     params: dict[str, str], environ: dict[str, Any]) -> None:
        """403 unless the request's grant allows this method on this book over the API."""
        try:
            check(grant, "api", method, params.get("book"))
        except Refused as e:
            raise Problem(403, e.reason) from None
        if route.manages_grants and grant.kind != "session":
            raise Problem(403, f"the {grant.kind} {grant.name!r} cannot manage devices, "
                               "tokens or friends; sign in with your password")
        if grant.properties is not None and scoped_views.handler(route.template,
                                                                 method) is None:
            raise Problem(403, f"the token {grant.name!r} may see only some properties, and "
                               "this address could show others")
        self.grants.touch(grant, views.client_product(environ.get("HTTP_USER_AGENT", "")))

    def login(self, environ: dict[str, Any]) -> tuple[str, Grant | None]:
        """The logged-in user and the grant it used (None: the password), or 401."""
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            grant = self.grants.verify(None, credentials.strip())
            if grant is None or grant.kind not in ("token", "session"):
                self._delay()
                raise self._unauthorized("the token is wrong, expired or revoked")
            self._ensure_principal(grant.user)
            return grant.user, grant
        if scheme.lower() != "basic" or not credentials.strip():
            raise self._unauthorized("log in with your Cardfile user name and password "
                                     "(HTTP Basic authentication)")
        try:
            login, sep, password = base64.b64decode(
                credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            login, sep, password = "", "", ""
        if not sep or not login:
            raise self._unauthorized("the Authorization header is not user:password in "
                                     "base64 (HTTP Basic)")
        if self.grants.looks_like_credential(password):
            grant = self.grants.verify(login, password)
            if grant is not None and grant.kind == "device":
                self._ensure_principal(grant.user)
                return grant.user, grant
        # Radicale 3.9: (user or "", auth info, groups); the login cache is inside.
        user = self.auth.login(login, password, radicale.AuthContext())[0]
        if not user or not radicale.is_safe_path_component(user):
            self._delay()
            raise self._unauthorized("the user name or password is wrong")
        self._ensure_principal(user)
        return str(user), None

    def _delay(self) -> None:
        if self.auth_delay > 0:
            time.sleep(self.auth_delay * (0.5 + random.random()))

    def logged_in_user(self, environ: dict[str, Any]) -> str | None:
        """The user the request's credentials log in as, or None (no delay, no 401)."""
        try:
            return self.login(environ)[0]
        except Problem:
            return None

    @staticmethod
    def _unauthorized(detail: str) -> Problem:
        return Problem(401, detail, headers=[("WWW-Authenticate", _REALM)])

    def _ensure_principal(self, user: str) -> None:
        """Create the user's home and predefined books at first login, as Radicale does."""
        principal = f"/{user}/"
        with self.storage.acquire_lock("r", user):
            if next(iter(self.storage.discover(principal)), None) is not None:
                return
        if "w" not in self.rights.authorization(user, set(), principal).lower():
            return
        with self.storage.acquire_lock("w", user):
            if next(iter(self.storage.discover(principal)), None) is not None:
                return
            self.storage.create_collection(principal)
            predefined = self.configuration.get("storage", "predefined_collections") or {}
            for name, props in predefined.items():
                try:
                    self.storage.create_collection(principal + name, props=props)
                except ValueError as e:
                    log.warning("Could not create predefined collection %r: %s", name, e)


def _admins(configuration: Any) -> frozenset[str]:
    """Users named in ``[auth] admins``: they may list and revoke any user's grants."""
    try:
        text = str(configuration.get("auth", grant_guard.ADMINS_OPTION) or "")
    except KeyError:
        return frozenset()
    return frozenset(n.strip() for n in text.split(",") if n.strip())
