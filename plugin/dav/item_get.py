"""GET and HEAD of one card of an index-backed address book, answered directly.

Through Radicale a GET of one card discovers its path several times over
(principal, book, item), building a collection object and reading the book's
``.Radicale.props`` each time; that made a Cardfile GET slower than stock
Radicale's, whose item cache answers the same lookups. For a card the index
knows, the answer is simple: the file's text with its etag and date. This
module gives exactly Radicale's answer (same status, headers in the same
order, gzip when asked, the configured extra headers) after the same login
and read-right checks (``FastPath.target``), with one index lookup and one
file read.

It declines (``None``: Radicale answers) for anything else: collections,
query strings (Radicale's free-busy view), group cards and published books
(``FastPath.book`` refuses those views), cards the index does not hold (404s
are Radicale's, with its wording and delays), and ``[storage] fastpath =
False`` or the ``X-Cardfile-No-Fastpath`` header.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cardfile.plugin import radicale_adapter as radicale

if TYPE_CHECKING:
    from cardfile.plugin.dav.fastpath import FastPath, Response


def respond(fast: FastPath, environ: dict[str, Any], method: str) -> Response | None:
    """Radicale's answer to a GET or HEAD of one indexed card, or None."""
    path_info = environ.get("PATH_INFO", "")
    if path_info.endswith("/") or environ.get("QUERY_STRING"):
        return None
    target = fast.target(environ)
    if target is None:
        return None
    book_path, _, href = target.path.rpartition("/")
    if not book_path or not radicale.is_safe_name(href):
        return None
    # The book's own rights are checked for the book (owner_only grants none
    # on an item path itself), the item's below, as Radicale's GET does.
    book_target = replace(target, path=book_path + "/", access=fast.app.access(
        target.user, target.groups, book_path + "/"))
    with fast.storage.acquire_lock("r", target.user):
        book = fast.book(book_target, groups_view=True)  # (a group card: its item)
        if book is None:
            return None
        # verify_href: the file itself is checked, so an edit made in place by
        # another program is served with its new etag.
        item = book._get(href, verify_href=True)
        if item is None or not target.access.check("r", item):
            return None
        text, last_modified, etag = item.serialize(), str(item.last_modified), item.etag
    body = text.encode(fast.encoding)
    headers = {"Content-Type": f"text/vcard; charset={fast.encoding}",
               "Last-Modified": last_modified, "ETag": etag}
    accepted = [e.strip() for e in environ.get("HTTP_ACCEPT_ENCODING", "").split(",")]
    if "gzip" in accepted:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(body))
    headers.update(fast.app.extra_headers)  # as Radicale adds them: may replace ours
    return "200 OK", list(headers.items()), ([] if method == "HEAD" else [body])
