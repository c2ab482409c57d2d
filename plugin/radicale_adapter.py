"""Every use of Radicale's internals, in one module, checked against the Radicale release.

Cardfile extends Radicale's ``multifilesystem`` storage and calls parts of its
application that Radicale does not promise to keep (the collection's folder
and atomic write, the storage lock, the item's cached fields, the login and
rights objects of the application). Each of those is named here once, under
a public name the rest of Cardfile uses, so a Radicale release that moves one
breaks this module and its contract tests (tests/test_radicale_contract.py),
loudly, instead of breaking a request somewhere else.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import radicale
import radicale.auth as radicale_auth
import radicale.item as radicale_item
import radicale.rights as radicale_rights
import vobject
from radicale import config as radicale_config
from radicale import httputils, pathutils, xmlutils
from radicale import storage as radicale_storage
from radicale.app import base as app_base
from radicale.item import filter as radicale_filter
from radicale.log import logger
from radicale.storage import multifilesystem

from cardfile.plugin.refused import Refused
from cardfile.plugin.vcard import radicale_workarounds
from cardfile.plugin.vcard.xml_chars import xml_chars

#: Radicale releases whose internals this module was checked against.
SUPPORTED_RADICALE = ("3.9.",)

if not radicale.VERSION.startswith(SUPPORTED_RADICALE):  # pragma: no cover - install-time
    raise ImportError(
        f"Cardfile works with Radicale {', '.join(v + 'x' for v in SUPPORTED_RADICALE)}; "
        f"Radicale {radicale.VERSION} is installed (pip install 'radicale>=3.9,<3.10')")

RADICALE_VERSION = radicale.VERSION

# -- Radicale's public names, re-exported so no other module imports radicale ----------
Item = radicale_item.Item
check_and_sanitize_items = radicale_item.check_and_sanitize_items
find_available_uid = radicale_item.find_available_uid
#: The UID Radicale reads from a parsed card (untrimmed), as its PUT compares it.
uid_of_component = radicale_item.get_uid_from_object
BaseCollection = radicale_storage.BaseCollection
ComponentNotFoundError = radicale_storage.ComponentNotFoundError
UnsafePathError = pathutils.UnsafePathError
#: A name made only of these is safe by both of Radicale's checks below (no
#: separator, no leading dot, no trailing ~); most names are, and this is a
#: tenth of the price of ``is_safe_filesystem_path_component`` per card of a listing.
_PLAINLY_SAFE_NAME = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9_.@+=-]*").fullmatch


def is_safe_name(name: str) -> bool:
    """Radicale's ``is_safe_filesystem_path_component``, answered at once for plain names."""
    return bool(_PLAINLY_SAFE_NAME(name)) or pathutils.is_safe_filesystem_path_component(name)




def is_safe_path_component(name: str) -> bool:
    """Radicale's ``is_safe_path_component``, answered at once for plain names."""
    return bool(_PLAINLY_SAFE_NAME(name)) or pathutils.is_safe_path_component(name)


rights_intersect = radicale_rights.intersect
load_auth = radicale_auth.load
load_rights = radicale_rights.load
AuthContext = radicale_auth.AuthContext
Access = app_base.Access
decode_request = httputils.decode_request
positive_float = radicale_config.positive_float
load_configuration = radicale_config.load
make_clark = xmlutils.make_clark
make_response = xmlutils.make_response
XML_NAMESPACES_REV = xmlutils.NAMESPACES_REV


#: Radicale's own ``read_components``, as imported (install_speedups replaces it).
stock_read_components = radicale_item.read_components


def read_components(s: str) -> list[Any]:
    """Radicale's ``read_components`` with its text workarounds done in linear time.

    The same clean-up (vcard/radicale_workarounds.py) and the same vobject read;
    Radicale's own rescans a line from every ``TZID:``, ``TZID=`` or
    ``;ENCODING=b`` in it, seconds for one hostile card.
    """
    return list(vobject.readComponents(radicale_workarounds.clean(s), allowQP=True))


def sanitize_path(path: str) -> str:
    return pathutils.sanitize_path(path)  # looked up per call: install_speedups replaces it


def strip_path(path: str) -> str:
    return pathutils.strip_path(path)


def unstrip_path(path: str, trailing_slash: bool = False) -> str:
    return pathutils.unstrip_path(path, trailing_slash)
load_storage = radicale_storage.load
radicale_logger = logger
TIMESTAMP_RANGE = (radicale_filter.TIMESTAMP_MIN, radicale_filter.TIMESTAMP_MAX)


#: ``.Radicale.props`` file -> (its stat (inode, mtime, size) and its props when this
#: process read it): shared by every collection object (``AdapterCollection.get_meta``);
#: the props are Radicale's checked dict, which its callers and ours only read.
_PROPS_READ: dict[str, tuple[tuple[int, int, int], Any]] = {}
#: Books whose props one process keeps (a few hundred bytes each) before it starts over.
_PROPS_KEPT = 10000


class AdapterCollection(multifilesystem.Collection):
    """Radicale's file collection under public names (and its two listing hooks)."""

    @property
    def folder(self) -> str:
        """The book's folder on disk."""
        return str(self._filesystem_path)

    @property
    def props_file(self) -> str:
        """The ``.Radicale.props`` file of the book."""
        return str(self._props_path)

    @property
    def storage(self) -> AdapterStorage:
        """The storage this collection belongs to."""
        storage = self._storage
        assert isinstance(storage, AdapterStorage)
        return storage

    def path_of(self, href: str) -> str:
        """The file of ``href`` inside the folder (UnsafePathError for a hostile name)."""
        return str(pathutils.path_to_filesystem(self._filesystem_path, href,
                                                self._is_collision_free))

    def get_meta(self, key: str | None = None) -> Any:
        """Radicale's ``get_meta``, without reading an unchanged props file again.

        Radicale reads ``.Radicale.props`` (open, JSON, checks) once per
        collection object under a read lock, and at every look under the
        write lock, since a write in the same hold may have changed it: a card
        PUT read it nine times. Every request makes new collection objects,
        so every request read it at least once: 2.5 % of the workers'
        interpreter time in the 50-client mix. A props write replaces the file
        (a new inode), so its stat tells whether there is anything new to
        read, and what a process read is kept for every later look
        (``_PROPS_READ``).
        """
        if self._meta_cache is not None and not self.storage.write_locked():
            meta = self._meta_cache  # Radicale's own: read in this hold of a read lock
        else:
            meta = self._props_now()
        return meta if key is None else meta.get(key)

    def _props_now(self) -> Any:
        path = self._props_path
        try:
            st = os.stat(path)
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None
        known = _PROPS_READ.get(path)
        if seen is not None and known is not None and known[0] == seen:
            self._meta_cache = known[1]
            return known[1]
        meta = super().get_meta()  # read after the stat: never older than it
        if seen is not None:
            if len(_PROPS_READ) >= _PROPS_KEPT:
                _PROPS_READ.clear()
            _PROPS_READ[path] = (seen, meta)
        return meta

    # Radicale lists and reads items through these two private hooks.
    def _list(self) -> Iterator[str]:
        return self.list_hrefs()

    def _get(self, href: str, verify_href: bool = True) -> Any:
        return self.get_card(href, verify_href)

    def list_hrefs(self) -> Iterator[str]:
        """Every href of the book (Radicale's own listing unless overridden)."""
        return multifilesystem.Collection._list(self)  # type: ignore[no-any-return]

    def get_card(self, href: str, verify_href: bool = True) -> Any:
        """One item by href (Radicale's own reading unless overridden)."""
        return multifilesystem.Collection._get(self, href, verify_href)


class StorageRwLock(pathutils.RwLock):
    """Radicale's readers-writer lock on ``.Radicale.lock``, opened without truncating it.

    Radicale opens the lock file with ``open(path, "w+")`` at every acquire:
    a text-mode file object, and a truncation that updates the file's times
    (a metadata write) at every request, 33 us of a 0.33 ms GET in process.
    The lock itself is unchanged: the same file, ``flock`` shared or
    exclusive, the same in-process counts that ``locked`` reports.
    """

    @contextlib.contextmanager
    def acquire(self, mode: str) -> Iterator[None]:
        if mode not in ("r", "w"):
            raise ValueError(f"Invalid mode: {mode!r}")
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if mode == "w" else fcntl.LOCK_SH)
            except OSError as e:
                raise RuntimeError(f"Locking the storage failed: {e}") from e
            with self._lock:
                if self._writer or mode == "w" and self._readers != 0:
                    raise RuntimeError("Locking the storage failed: Guarantees failed")
                if mode == "r":
                    self._readers += 1
                else:
                    self._writer = True
            try:
                yield
            finally:
                with self._lock:
                    if mode == "r":
                        self._readers -= 1
                    self._writer = False
        finally:
            os.close(fd)  # closing the last descriptor releases the flock


class AdapterStorage(multifilesystem.Storage):
    """Radicale's file storage under public names."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self._lock = StorageRwLock(self._lock._path)

    @property
    def data_folder(self) -> str:
        return str(self._filesystem_folder)

    @property
    def max_resource_size(self) -> int:
        return int(self._max_resource_size)

    def collection_root_folder(self) -> str:
        return str(self._get_collection_root_folder())

    def folder_of(self, path: str) -> str:
        """The folder of the collection at ``path`` (UnsafePathError for a hostile path)."""
        return str(pathutils.path_to_filesystem(self._get_collection_root_folder(),
                                                pathutils.strip_path(path)))

    def write_locked(self) -> bool:
        """Whether this process holds the storage lock for writing now."""
        return bool(self._lock.locked == "w")

    def sync_folder(self, folder: str) -> None:
        """fsync a folder after a rename or removal in it."""
        self._sync_directory(folder)

    @property
    def fsync_enabled(self) -> bool:
        """``[storage] _filesystem_fsync``: whether writes are flushed to the disk at all."""
        return bool(self._filesystem_fsync)

    @property
    def stock_encoding(self) -> str:
        """The encoding card files are written in (``[encoding] stock``)."""
        return str(self.configuration.get("encoding", "stock"))


def full_fsync(fd: int) -> None:
    """Radicale's fsync of a file descriptor (``F_FULLFSYNC`` on macOS, where plain
    fsync leaves the data in the drive's cache)."""
    pathutils.fsync(fd)


class LazyItem(radicale_item.Item):
    """An item known from the index; its text is read from ``path`` only when needed.

    Radicale's ``Item.__init__`` re-validates the collection path on every
    item (a measurable share of a 10,000-card PROPFIND); the index row is
    already trusted, so Radicale's cached fields are set directly.
    """

    def __init__(self, collection: Any, href: str, etag: str, uid: str, last_modified: str,
                 path: str, text: str | None, read: Callable[[str], str]) -> None:
        self.collection = collection
        self._collection_path = collection.path
        self.href = href
        self.last_modified = last_modified
        self._text = text
        self._vobject_item = None
        self._etag = etag
        self._uid = uid
        self._name = "VCARD"
        # Radicale gives vCards no component name (";component=" is CalDAV's).
        self._component_name = ""
        self._time_range = TIMESTAMP_RANGE
        self._path = path
        self._read = read

    def serialize(self) -> str:
        if self._text is None:
            try:
                self._text = self._read(self._path)
            except (OSError, UnicodeDecodeError) as e:
                raise RuntimeError(f"Failed to read item {self.href!r}: {e}") from e
        return self._text

    @property
    def vobject_item(self) -> Any:
        if self._vobject_item is None:
            self._vobject_item = vobject.readOne(self.serialize(), allowQP=True)
        return self._vobject_item


def register_option(section: str, name: str, default: str, help_text: str,
                    value_type: Callable[[str], Any]) -> None:
    """Teach Radicale's configuration an option of Cardfile's (it refuses unknown ones)."""
    schema: Any = radicale_config.DEFAULT_CONFIG_SCHEMA[section]
    schema.setdefault(name, {"value": default, "help": help_text, "type": value_type})


def option_default(section: str, name: str) -> str:
    return str(radicale_config.DEFAULT_CONFIG_SCHEMA[section][name]["value"])


#: Where ``RadicaleApp.basic_login`` keeps a request's answer.
_LOGIN_KEY = "cardfile.basic_login"
#: The environ key under which a handler's ``Refused`` is left for Cardfile's wrapper.
REFUSED_KEY = "cardfile.refused"


def _refusing(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A Radicale request handler whose ``Refused`` becomes its answer, not a 500.

    Radicale answers every exception of a handler with 500. The core's
    refusals raised under it (the database unreachable: 503 with
    Retry-After; a card changed through another server: 412; a UID taken
    meanwhile: 409) are answers, so they are turned into Radicale's own
    response shape, and the refusal is left in the environ for its reason.
    """
    @functools.wraps(handler)
    def handle(self: Any, environ: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, environ, *args, **kwargs)
        except Refused as e:
            environ[REFUSED_KEY] = e
            return e.status, {"Content-Type": "text/plain", **dict(e.headers)}, e.reason, None
    return handle


class _Application(radicale.Application):
    """Radicale's application; its ``do_*`` handlers answer the core's refusals."""

    def _xml_response(self, xml_content: Any, *args: Any, **kwargs: Any) -> bytes:
        """Radicale's XML answer, without the characters XML cannot carry.

        ElementTree writes a card file's control character as it is, so one
        card placed by hand made a whole multiget or sync answer ill-formed
        (``xml_chars``).
        """
        for element in xml_content.iter():
            if element.text:
                element.text = xml_chars(element.text)
        return bytes(super()._xml_response(xml_content, *args, **kwargs))


for _name in dir(radicale.Application):
    if _name.startswith("do_"):
        setattr(_Application, _name, _refusing(getattr(radicale.Application, _name)))


class RadicaleApp:
    """Radicale's WSGI application, with the parts Cardfile calls by name.

    The fast path answers listings itself, so it repeats Radicale's own
    checks for them: the path format, the Basic login (with the user's
    groups) and the rights, all through the application's own objects.
    """

    def __init__(self, configuration: Any) -> None:
        self.application = _Application(configuration)
        self.configuration = configuration

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.application(environ, start_response)

    @property
    def storage(self) -> Any:
        return self.application._storage

    @property
    def encoding(self) -> str:
        return str(self.application._encoding)

    @property
    def extra_headers(self) -> dict[str, str]:
        """The ``[headers]`` Radicale adds to every answer."""
        return dict(self.application._extra_headers)

    @property
    def sharing_enabled(self) -> bool:
        return bool(self.application._sharing._enabled)

    @property
    def hook_enabled(self) -> bool:
        """Whether Radicale notifies a hook (``[hook]``) of each write."""
        return bool(self.application._hook.enabled)

    @property
    def strict_preconditions(self) -> bool:
        """``[storage] strict_preconditions``: a PUT over a card needs If-Match."""
        return bool(self.application._strict_preconditions)

    @property
    def max_resource_size(self) -> int:
        """The limit Radicale's PUT applies (capped at 80% of ``max_content_length``)."""
        return int(self.application._max_resource_size)

    @property
    def request_encoding(self) -> str:
        """``[encoding] request``: how Radicale decodes a body whose type names no charset."""
        return str(self.configuration.get("encoding", "request"))

    def valid_path(self, path: str) -> bool:
        app = self.application
        return bool(app_base._check_path_format(self.storage, path, app._validate_path_value))

    def basic_login(self, environ: dict[str, Any]) -> tuple[str, str, set[str]] | None:
        """(login, user, groups) of the request's Basic credentials; None if not logged in.

        Asked more than once per request (before a body is read, by the fast
        path): the answer is kept in the request's environ.
        """
        if _LOGIN_KEY in environ:
            known: tuple[str, str, set[str]] | None = environ[_LOGIN_KEY]
            return known
        environ[_LOGIN_KEY] = found = self._basic_login(environ)
        return found

    def _basic_login(self, environ: dict[str, Any]) -> tuple[str, str, set[str]] | None:
        app = self.application
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if app._auth.get_external_login(environ) or not authorization.startswith("Basic"):
            return None
        try:
            login, password = httputils.decode_request(
                self.configuration, environ,
                base64.b64decode(authorization[len("Basic"):].strip().encode("ascii"))
            ).split(":", 1)
        except (ValueError, UnicodeError):
            return None
        if not login or not app_base._check_user_format(
                self.storage, login, app._validate_user_value, app._urldecode_username):
            return None
        context = radicale_auth.AuthContext()
        if environ.get("REMOTE_ADDR"):
            context.remote_addr = environ["REMOTE_ADDR"]
        if environ.get("HTTP_X_REMOTE_ADDR"):
            context.x_remote_addr = environ["HTTP_X_REMOTE_ADDR"]
        user, _, groups = app._auth.login(login, password, context) or ("", "", set())
        if not user or not pathutils.is_safe_path_component(user):
            return None
        if self.configuration.get("group", "type") == "htgroup":
            groups = app._group.groups(login)
        return login, user, set(groups or ())

    def access(self, user: str, groups: set[str], path: str) -> Any:
        """Radicale's rights check object for ``user`` on ``path``."""
        return app_base.Access(self.application._rights, user, groups, path)

    def authorization(self, user: str, groups: set[str], path: str) -> str:
        return str(self.application._rights.authorization(user, groups, path))

    def accept_logins(self, check: Callable[[str, str], str | None]) -> None:
        """Let ``check(login, password)`` accept a login before Radicale's own auth.

        Cardfile's device passwords (plugin/contacts/grants) are not in
        htpasswd. ``check`` answers the user for a credential it knows, else
        None, and Radicale's configured auth (with its login cache) decides as
        before; a credential ``check`` accepted never enters that cache.
        """
        passwords = (str(self.configuration.get("auth", "htpasswd_filename"))
                     if str(self.configuration.get("auth", "type")) == "htpasswd" else None)
        self.application._auth = _CheckedAuth(  # type: ignore[assignment]
            self.application._auth, check, passwords)


#: How long a password that worked is believed without bcrypt, while the
#: password file is unchanged, and how many are remembered.
_KNOWN_LOGIN_SECONDS = 3600.0
_KNOWN_LOGINS = 10_000


class _CheckedAuth:
    """Radicale's auth object with one check in front of ``login``, and a memory.

    A password that worked is remembered (as a keyed hash) for as long as the
    password file is unchanged, up to an hour: Radicale's own login cache
    forgets it after 15 s (``cache_successful_logins_expiry``), so with many
    users every worker process paid a bcrypt check (a third of a second of
    CPU) per user every 15 s, which made 100 users' phones saturate two cores.
    Any change of the file (``cardfile user passwd``, a user removed) forgets
    every remembered password at once, sooner than Radicale's cache did.
    Device passwords and tokens go through ``check`` on every request, so a
    revoked one stops at once.
    """

    def __init__(self, auth: Any, check: Callable[[str, str], str | None],
                 password_file: str | None) -> None:
        self._inner = auth
        self._check = check
        self._password_file = password_file
        self._key = secrets.token_bytes(32)
        self._known: dict[bytes, tuple[Any, tuple[int, int, int], float]] = {}

    def login(self, login: str, password: str, context: Any = None) -> Any:
        user = self._check(login, password)
        if user:
            return user, "cardfile grant", set()
        if self._password_file is None:
            return self._inner.login(login, password, context)
        try:
            st = os.stat(self._password_file)
        except OSError:
            return self._inner.login(login, password, context)
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        key = hmac.digest(self._key, f"{login}\0{password}".encode("utf-8", "surrogatepass"),
                          "sha256")  # one call into OpenSSL, not hmac.new's Python object
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[1] == stamp and known[2] > now:
            return known[0]
        answer = self._inner.login(login, password, context)
        if answer and answer[0]:
            if len(self._known) >= _KNOWN_LOGINS:
                self._known.clear()
            self._known[key] = (answer, stamp, now + _KNOWN_LOGIN_SECONDS)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def folder_exists(collection: Any) -> bool:
    return os.path.isdir(collection.folder)


_SANITIZE_CACHE = 32768
#: Characters ``_remembered_check_format`` keeps as accepted, per kind of check.
_ACCEPTED_CHARACTERS = 4096
_speedups_installed = False


def _remembered_check_format(check: Callable[..., bool]) -> Callable[..., bool]:
    """Radicale's ``_check_format`` (is this path or user name allowed?), remembered.

    Every request checks its path and its user name character by character
    (``unicodedata.category`` for each), a tenth of a GET's time. Radicale
    judges each character on its own, by the two character lists (module
    constants, known by identity), the validation type and two flags of the
    storage; only a trailing space is judged by its place. So the characters
    of every string it accepted are remembered as accepted for those five,
    and a string made only of such characters is accepted without the loop.
    Remembering whole strings did not help a phone's first sync, whose every
    GET names another card.

    A string ending in a space, or with a character not yet seen, goes to
    Radicale's check (a refusal is never remembered).
    """
    accepted: dict[tuple[Any, ...], set[str]] = {}

    def check_format(self: Any, string: str, blacklist_minimal: list[str],
                     whitelist_unicode: list[str], validation_type: str) -> bool:
        key = (id(blacklist_minimal), id(whitelist_unicode), validation_type,
               self._supports_trailing_whitespace, self._supports_problematic_chars)
        known = accepted.get(key)
        if known is not None and not string.endswith(" ") and known.issuperset(string):
            return True
        answer = bool(check(self, string, blacklist_minimal, whitelist_unicode,
                            validation_type))
        if answer:
            if known is None or len(known) >= _ACCEPTED_CHARACTERS:
                known = accepted[key] = set()
            known.update(string)
        return answer

    return check_format


def install_speedups() -> None:
    """Memoise ``sanitize_path`` and read cards in linear time (idempotent).

    Radicale normalises every path it touches with ``radicale.pathutils.sanitize_path``,
    and its ``strip_path``/``unstrip_path`` re-check each result inside ``assert``
    statements: a 10,000-card PROPFIND or sync answer calls it about 100,000
    times, a third of the request's time. The function is pure (a string in,
    a string out), so remembering recent answers changes no result; the cache
    is bounded, and a request touches each path several times in a row.

    ``_check_format`` is remembered the same way (``_remembered_check_format``).

    ``radicale.item.read_components`` becomes this module's ``read_components``:
    Radicale's PUT, its item-cache reading and ``--verify-item`` look it up
    there on each call, so all of them read a hostile card in linear time.
    """
    global _speedups_installed
    if _speedups_installed:
        return
    pathutils.sanitize_path = functools.lru_cache(maxsize=_SANITIZE_CACHE)(  # type: ignore[assignment]
        pathutils.sanitize_path)
    app_base._check_format = _remembered_check_format(app_base._check_format)
    radicale_item.read_components = read_components
    _speedups_installed = True
