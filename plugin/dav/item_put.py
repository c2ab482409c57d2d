"""PUT of one plain card into an index-backed address book, answered directly.

Through Radicale a card PUT parsed the card three times (Cardfile's own
check, Radicale's ``read_components`` and the item it prepares), discovered
the card and its book each with a fresh collection object, and went through
Radicale's request pipeline; the write itself flushed the disk twice. Here
the card Cardfile's check already parsed (``accept_card_upload``, its
``SentCard``) is checked the way Radicale's ``do_PUT`` checks it, under the
same storage lock, and stored through the same ``Collection.upload``: so the
one write path still applies everything (repairs, pending categories, the
index, history and the mass-change guard, friends, the PostgreSQL store) and
the write itself is ``store/card_file.py``'s, one flush. The sent bytes are
written out before the lock is taken (``Storage.staged_card``): the save's
hold of the lock only renames them, and the flush comes after it.

The answer is Radicale's: 201 for a new card, 204 for a replaced one, its
ETag (dropped by ``app.py`` when the stored card is not the sent one) and
the configured extra headers, nothing else. The order of Radicale's checks
is kept: write rights, the card's serialisation and ``max_resource_size``
(``Item.prepare``), then under the lock the book, ``strict_preconditions``,
``If-Match`` and ``If-None-Match: *`` (after ``preconditions.py`` reduced
RFC 9110's forms to these), the UID (a changed UID, or one another card
has). Every check that would refuse hands the request to Radicale instead
(``None``), before anything is written: a 412, 409, 403 or 400 is thus
Radicale's own answer, with its wording, XML and delays, and only the
success is answered here. So is everything unusual: a group card (it becomes
a category), a card sent to a group card's name in the groups view (an Apple
client's), published and shared books, collections, a
body Radicale would decode otherwise (a charset that is not UTF-8),
sharing, reverse-proxy prefixes, Radicale's notification hook, a query
string, ``X-Cardfile-No-Fastpath`` and ``[storage] fastpath = False``.

Once the write has begun the request is never handed back (it would run
twice): a failure of the write is answered as Radicale's PUT answers it
(a ``Refused`` with its status, ENOSPC 507, EPERM/EACCES 403, another
``ValueError`` 400, anything else 500), and ``app.py`` words the reason.
"""

from __future__ import annotations

import codecs
import errno
import logging
import os
import re
from dataclasses import replace
from http.client import responses
from typing import TYPE_CHECKING, Any

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts import request_notes
from cardfile.plugin.contacts.backup import restorable_name
from cardfile.plugin.contacts.sent_card import SentCard
from cardfile.plugin.contacts.sources import registry as source_registry
from cardfile.plugin.refused import Refused

if TYPE_CHECKING:
    from cardfile.plugin.dav.fastpath import FastPath, Response

log = logging.getLogger("cardfile")

_ERRNO = re.compile(r"\[Errno ([0-9]+)\]")


def respond(fast: FastPath, environ: dict[str, Any], sent: SentCard) -> Response | None:
    """Radicale's answer to this PUT of ``sent``, the card stored; or None: Radicale answers."""
    path_info = environ.get("PATH_INFO", "")
    if (sent.is_group_card or path_info.endswith("/") or environ.get("QUERY_STRING")
            or fast.app.hook_enabled or not _radicale_reads_the_sent_text(fast, environ, sent)):
        return None
    target = fast.target(environ, "w")
    if target is None or "w" not in target.access.parent_permissions:
        return None
    book_path, _, href = target.path.rpartition("/")
    if not book_path or not radicale.is_safe_name(href) or not restorable_name(href):
        return None
    # Item.prepare: the serialisation Radicale measures (and fails on: 400).
    try:
        serialized = sent.component.serialize()
    except Exception:  # vobject raises many kinds; Radicale answers 400
        return None
    if len(serialized) > fast.app.max_resource_size:
        return None  # Radicale's 412
    uid = radicale.uid_of_component(sent.component)
    book_target = replace(target, path=book_path + "/", access=fast.app.access(
        target.user, target.groups, book_path + "/"))
    answer: Response | None = None
    try:
        with fast.storage.staged_card(book_path, sent.text), fast.storage.acquire_lock(
                "w", target.user, path=target.path, request="PUT", actor=target.user):
            book = fast.book(book_target, groups_view=True)
            if (book is None or source_registry.is_source_folder(book.folder)
                    or book._is_group_card(href)):  # (a contact sent to a group's name)
                return None
            book._coll()  # the index (or the PostgreSQL cache) up to date before looking
            try:
                file_path = book.path_of(href)
            except ValueError:  # unsafe or colliding name
                return None
            if os.path.isdir(file_path):
                return None  # a collection at that address
            old = book._get(href, verify_href=True) if os.path.isfile(file_path) else None
            if not _preconditions_hold(fast, environ, old):
                return None  # Radicale's 412
            if (old.uid != uid) if old is not None else book.has_uid(uid):
                return None  # Radicale's 409 no-uid-conflict
            item = radicale.Item(collection_path=book.path, vobject_item=sent.component,
                                 text=serialized, uid=uid, name="VCARD", component_name="",
                                 time_range=radicale.TIMESTAMP_RANGE)
            answer = _store(fast, target.path, book, href, item, replaced=old is not None)
    except Exception as e:
        if answer is None:
            raise  # before the write: Radicale answers
        # The card's flush, after the lock (card_file.py), failed: not durable.
        return _failed(fast, target.path, ValueError(
            f"Failed to store item {href!r} in collection {book_path!r}: {e}"))
    return answer


def _store(fast: FastPath, path: str, book: Any, href: str, item: Any, replaced: bool
           ) -> Response:
    """Radicale's answer once ``item`` is uploaded; never raises (the write ran)."""
    try:
        stored, _ = book.upload(href, item)
        etag = stored.etag
    except Exception as e:  # nothing may run twice: answered as Radicale would
        return _failed(fast, path, e)
    headers = {"ETag": etag}
    headers.update(fast.app.extra_headers)
    return ("204 No Content" if replaced else "201 Created"), list(headers.items()), []


def _radicale_reads_the_sent_text(fast: FastPath, environ: dict[str, Any],
                                  sent: SentCard) -> bool:
    """Whether Radicale would parse exactly ``sent.text`` (so its checks see this card).

    It decodes the body with the Content-Type's charset, else ``[encoding]
    request``; a BOM the check removed is still in the body.
    """
    content_type = environ.get("CONTENT_TYPE") or ""
    charset = (content_type.split("charset=")[1].split(";")[0].strip()
               if "charset=" in content_type else fast.app.request_encoding)
    try:
        if codecs.lookup(charset).name != "utf-8":
            return False
    except LookupError:
        return False
    body = environ["wsgi.input"]
    raw = body.getvalue() if hasattr(body, "getvalue") else None
    return raw is not None and raw.decode("utf-8", "replace") == sent.text


def _preconditions_hold(fast: FastPath, environ: dict[str, Any], old: Any) -> bool:
    """Radicale's ``do_PUT`` conditions, in its words (the headers as they reach it)."""
    etag = environ.get("HTTP_IF_MATCH", "")
    if old is not None and not etag and fast.app.strict_preconditions:
        return False
    if old is None and etag:
        return False
    if old is not None and etag and etag not in ("*", old.etag):
        return False
    return not (old is not None and environ.get("HTTP_IF_NONE_MATCH", "") == "*")


def _failed(fast: FastPath, path: str, error: Exception) -> Response:
    """The answer Radicale's PUT gives when ``upload`` raises ``error``."""
    headers: dict[str, str] = {}
    if isinstance(error, Refused):  # radicale_adapter._refusing
        code, text = error.status, error.reason
        headers.update(error.headers)
        request_notes.add(error.reason)
    elif isinstance(error, ValueError):
        found = _ERRNO.search(str(error))
        number = int(found.group(1)) if found else None
        code = (400 if number is None else 507 if number == errno.ENOSPC
                else 403 if number in (errno.EPERM, errno.EACCES) else 500)
        text = responses.get(code, "Error")
        (log.warning if number is None else log.error)(
            "Failed PUT request on %r (upload): %s", path, error)
    else:
        code, text = 500, "Internal Server Error"
        log.exception("Failed PUT request on %r (upload)", path)
    body = text.encode(fast.encoding)
    answer = {"Content-Type": f"text/plain; charset={fast.encoding}", **headers,
              "Content-Length": str(len(body))}
    answer.update(fast.app.extra_headers)
    return f"{code} {responses.get(code, 'Unknown')}", list(answer.items()), [body]
