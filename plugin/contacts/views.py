"""Which view of an address book the current request gets.

Contacts apps disagree on groups: Apple Contacts (and DAVx5 in its default
mode) want one *group card* per group; Thunderbird/CardBook, Evolution, khard
and vdirsyncer use ``CATEGORIES`` on each card and would show a group card as
a stray contact. Radicale's storage API never sees the HTTP request, so the
WSGI wrapper decides the view from the User-Agent and the user's setting and
hands it to the storage in a ``ContextVar`` for the duration of the request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar

from cardfile.plugin.contacts import state_files

CATEGORIES_VIEW = "categories"
GROUPS_VIEW = "groups"  # vCard 3 group cards, as Apple writes them
GROUPS4_VIEW = "groups4"  # vCard 4 KIND:group cards with MEMBER, for vCard 4 group writers
GROUP_VIEWS = frozenset({GROUPS_VIEW, GROUPS4_VIEW})
#: Suffix of a learned client product that writes vCard 4 group cards.
VCARD4_GROUPS = ":4"
GROUP_CARD_MODES = ("auto", "always", "never")
SETTINGS_FILE = ".cardfile-settings.json"

_current: ContextVar[str] = ContextVar("cardfile_view", default=CATEGORIES_VIEW)

# Apple's contacts stacks: "macOS/14.1 (23B74) AddressBookCore/2659.1.1",
# "iOS/17.1 (21B80) dataaccessd/1.0", "Mac OS X/10.15.7 (19H2) AddressBook/2452.5".
# Thunderbird on a Mac says "Macintosh; Intel Mac OS X" inside "Mozilla/5.0 (...)",
# so browser-style agents are never taken for Apple Contacts.
_APPLE_AGENT = re.compile(
    r"^(?:iOS|iPadOS|macOS|Mac ?OS ?X|Mac_OS_X|watchOS|visionOS)/"
    r"|AddressBook|dataaccessd|accountsd|CoreDAV|ContactsAgent", re.IGNORECASE)


def current() -> str:
    return _current.get()


@contextlib.contextmanager
def using(view: str) -> Iterator[None]:
    token = _current.set(view)
    try:
        yield
    finally:
        _current.reset(token)


def is_apple_agent(user_agent: str) -> bool:
    return not user_agent.startswith("Mozilla/") and bool(_APPLE_AGENT.search(user_agent))


def choose(user_agent: str, mode: str, group_clients: frozenset[str] = frozenset()) -> str:
    """The view for a request: ``mode`` is auto, always or never.

    In ``auto``, Apple starts in the group view, and so does any client product
    that has written a group card for this user (``group_clients``): DAVx5 in
    its default mode, vdirsyncer carrying a Mac's cards. Every other client sees
    CATEGORIES, DAVx5 included until it writes a group card, because in its
    CATEGORIES mode it would save a received group card as a plain contact.
    """
    if mode == "always":
        return GROUPS_VIEW
    if mode == "never":
        return CATEGORIES_VIEW
    if is_apple_agent(user_agent):
        return GROUPS_VIEW
    product = client_product(user_agent)
    if product + VCARD4_GROUPS in group_clients:
        return GROUPS4_VIEW
    if product in group_clients:
        return GROUPS_VIEW
    return CATEGORIES_VIEW


_PRODUCT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_+")


def client_product(user_agent: str) -> str:
    """The product a User-Agent names first (``DAVx5/4.3 (...)`` -> ``davx5``).

    Versions change with every update; the product is what stays, so a learned
    view survives an app update. Bounded and reduced to safe characters: it is
    written to the user's settings file.
    """
    first = user_agent.strip()[:200].split(" ", 1)[0].split("/", 1)[0].lower()
    return "".join(ch for ch in first if ch in _PRODUCT_CHARS)[:40] or "-"


def user_settings_path(collection_root: str, user: str) -> str:
    return os.path.join(collection_root, user, SETTINGS_FILE)


#: settings file -> (its mtime and size, the mode and group clients it holds): every
#: request asks, and a stat is much cheaper than reading and parsing the file each time.
_settings_cache: dict[str, tuple[tuple[int, int], str | None, frozenset[str]]] = {}
_MAX_GROUP_CLIENTS = 32


def _read_settings(collection_root: str, user: str
                   ) -> tuple[str | None, frozenset[str]]:
    path = user_settings_path(collection_root, user)
    try:
        st = os.stat(path)
    except OSError:
        return None, frozenset()
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _settings_cache.get(path)
    if cached is None or cached[0] != stamp:
        mode: object = None
        clients: object = []
        try:
            with open(path, encoding="utf-8") as f:
                settings = json.load(f)
            mode = settings.get("group_cards")
            clients = settings.get("group_clients", [])
        except (OSError, ValueError, AttributeError):
            pass
        learned = frozenset(c for c in clients if isinstance(c, str)) if isinstance(
            clients, list) else frozenset()
        cached = _settings_cache[path] = (
            stamp, mode if isinstance(mode, str) else None, learned)
    return cached[1], cached[2]


def read_group_card_mode(collection_root: str, user: str, default: str) -> str:
    """The user's ``group_cards`` setting, else the configured default."""
    mode = _read_settings(collection_root, user)[0]
    return mode if mode in GROUP_CARD_MODES else default


def read_group_settings(collection_root: str, user: str, default: str
                        ) -> tuple[str, frozenset[str]]:
    """(``read_group_card_mode``, ``read_group_clients``) from one look at the file:
    every request asks for both (``CardfileApp.view_for``)."""
    mode, clients = _read_settings(collection_root, user)
    return (mode if mode in GROUP_CARD_MODES else default), clients


def read_group_clients(collection_root: str, user: str) -> frozenset[str]:
    """The client products that wrote group cards for ``user`` (see ``choose``)."""
    return _read_settings(collection_root, user)[1]


def learn_group_client(collection_root: str, user: str, product: str,
                       vcard4: bool = False) -> None:
    """Remember that ``product`` writes group cards: it gets the group view from now on.

    ``vcard4``: it wrote a vCard 4 ``KIND:group`` card, and is served those.
    """
    product += VCARD4_GROUPS if vcard4 else ""
    clients = read_group_clients(collection_root, user)
    if product in clients or len(clients) >= _MAX_GROUP_CLIENTS:
        return
    _update_settings(collection_root, user, group_clients=sorted(clients | {product}))


def write_group_card_mode(collection_root: str, user: str, mode: str) -> None:
    if mode not in GROUP_CARD_MODES:
        raise ValueError(f"group_cards must be one of {', '.join(GROUP_CARD_MODES)}")
    _update_settings(collection_root, user, group_cards=mode)


def _update_settings(collection_root: str, user: str, **changes: object) -> None:
    path = user_settings_path(collection_root, user)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    settings: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            settings = dict(json.load(f))
    settings.update(changes)
    state_files.write_json(path, settings, 0o600, indent=1, sort_keys=True)
