"""A book's listing written as it is read says for every name what the careful path says."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from cardfile.plugin import radicale_adapter as radicale
from cardfile.plugin.contacts.storage import http_date
from cardfile.plugin.dav import listing

#: Any file name a folder can hold (no NUL, no /), plain ones often.
_NAMES = st.one_of(st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,30}", fullmatch=True),
                   st.text(st.characters(blacklist_characters="\0/",
                                         blacklist_categories=("Cs",)),
                           min_size=1, max_size=30))
_ETAGS = st.one_of(st.from_regex(r'"[0-9a-f]{64}"', fullmatch=True),
                   st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                           max_size=20))
_ROWS = st.lists(st.tuples(_NAMES, _ETAGS, st.integers(0, 2**62), st.integers(0, 10**6)),
                 max_size=30)
_RESPONSE = (f"<D:response><D:href>{listing.HREF}</D:href><D:propstat><D:prop>"
             f"<D:getetag>{listing.ETAG}</D:getetag></D:prop>"
             "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")


def _text(parts: list[listing.Part]) -> str:
    assert all(text.count("<D:response>") == count for text, count in parts)
    return "".join(text for text, _ in parts)


def _parsed(parts: list[listing.Part]) -> list[tuple[str, str]]:
    root = ET.fromstring(f'<D:multistatus xmlns:D="DAV:">{_text(parts)}</D:multistatus>')
    return [(r.findtext("{DAV:}href") or "",
             r.findtext("{DAV:}propstat/{DAV:}prop/{DAV:}getetag") or "") for r in root]


@given(_ROWS)
def test_every_row_reads_back_as_its_name_and_etag(rows: list[tuple[str, str, int, int]]
                                                   ) -> None:
    """A client parsing the answer gets each card's own href and etag, in order."""
    template = listing.ResponseTemplate(_RESPONSE, "/alice/book%20one/", http_date)
    parts = template.render(rows, [])
    assert _parsed(parts) == [("/alice/book%20one/" + quote(href), etag)
                              for href, etag, _, _ in rows]
    assert [unquote(href).rsplit("/", 1)[1] for href, _ in _parsed(parts)] == [
        href for href, _, _, _ in rows]


@given(_ROWS)
def test_plain_names_are_written_as_the_general_path_writes_them(
        rows: list[tuple[str, str, int, int]]) -> None:
    template = listing.ResponseTemplate(_RESPONSE, "/alice/book/", http_date)
    assert _text(template.render(rows, [])) == "".join(
        template.general(href, etag, mtime) for href, etag, mtime, _ in rows)


@given(_ROWS)
def test_a_sync_lists_names_radicale_refuses_as_gone_instead(
        rows: list[tuple[str, str, int, int]]) -> None:
    unsafe: list[str] = []
    listed = _parsed(listing.ResponseTemplate(_RESPONSE, "/a/b/", http_date,
                                              safe_names=True).render(rows, unsafe))
    refused = [href for href, _, _, _ in rows
               if not (radicale.is_safe_path_component(href) and radicale.is_safe_name(href))]
    assert unsafe == refused
    assert len(listed) == len(rows) - len(refused)


def test_dates_and_many_rows() -> None:
    """A template with a date takes the general path; parts hold ROWS_PER_PART each."""
    response = _RESPONSE.replace("</D:prop>", f"<D:getlastmodified>{listing.DATE}"
                                              "</D:getlastmodified></D:prop>")
    count = listing.ROWS_PER_PART * 2 + 3
    rows = [(f"{i:06d}.vcf", f'"{i:x}"', i * 10**12, 100) for i in range(count)]
    parts = listing.ResponseTemplate(response, "/a/b/", http_date).render(rows, [])
    assert [count for _, count in parts] == [listing.ROWS_PER_PART] * 2 + [3]
    root = ET.fromstring(f'<D:multistatus xmlns:D="DAV:">{_text(parts)}</D:multistatus>')
    dates = [r.findtext("{DAV:}propstat/{DAV:}prop/{DAV:}getlastmodified") for r in root]
    assert dates == [http_date(i * 10**12) for i in range(count)]
