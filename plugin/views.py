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

CATEGORIES_VIEW = "categories"
GROUPS_VIEW = "groups"
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


def choose(user_agent: str, mode: str) -> str:
    """The view for a request: ``mode`` is auto, always or never."""
    if mode == "always":
        return GROUPS_VIEW
    if mode == "never":
        return CATEGORIES_VIEW
    return GROUPS_VIEW if is_apple_agent(user_agent) else CATEGORIES_VIEW


def user_settings_path(collection_root: str, user: str) -> str:
    return os.path.join(collection_root, user, SETTINGS_FILE)


#: settings file -> (its mtime and size, the mode it holds): every request asks,
#: and a stat is much cheaper than reading and parsing the file each time.
_mode_cache: dict[str, tuple[tuple[int, int], str | None]] = {}


def read_group_card_mode(collection_root: str, user: str, default: str) -> str:
    """The user's ``group_cards`` setting, else the configured default."""
    path = user_settings_path(collection_root, user)
    try:
        st = os.stat(path)
    except OSError:
        return default
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _mode_cache.get(path)
    if cached is None or cached[0] != stamp:
        try:
            with open(path, encoding="utf-8") as f:
                mode = json.load(f).get("group_cards")
        except (OSError, ValueError, AttributeError):
            mode = None
        cached = _mode_cache[path] = (stamp, mode if isinstance(mode, str) else None)
    mode = cached[1]
    return mode if mode in GROUP_CARD_MODES else default


def write_group_card_mode(collection_root: str, user: str, mode: str) -> None:
    if mode not in GROUP_CARD_MODES:
        raise ValueError(f"group_cards must be one of {', '.join(GROUP_CARD_MODES)}")
    path = user_settings_path(collection_root, user)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    settings: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            settings = dict(json.load(f))
    settings["group_cards"] = mode
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
