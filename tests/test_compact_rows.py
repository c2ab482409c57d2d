"""A listing held as long strings gives back exactly the rows it was given."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cardfile.plugin.dav import compact_rows
from cardfile.plugin.dav.compact_rows import CompactRows

#: What a card's row holds: a file name (any character but NUL and /), an etag, a number.
_NAMES = st.text(st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)),
                 min_size=1, max_size=40)
_ROWS = st.lists(st.tuples(_NAMES, st.text(min_size=1, max_size=70).filter(
    lambda s: "\0" not in s), st.integers(min_value=0, max_value=2**63)), max_size=50)


@given(_ROWS)
def test_rows_come_back_as_given(rows: list[tuple[str, str, int]]) -> None:
    kept = CompactRows(rows, 3)
    assert len(kept) == len(rows)
    assert [(h, e, int(n)) for h, e, n in kept] == rows


def test_many_rows_span_chunks_in_order() -> None:
    count = compact_rows.ROWS_PER_CHUNK * 2 + 7
    rows = [(f"{i:06d}.vcf", f'"{i:x}"', i * 1000) for i in range(count)]
    kept = CompactRows(iter(rows), 3)
    assert len(kept._chunks) == 3
    assert [(h, e, int(n)) for h, e, n in kept] == rows
    assert list(kept) == list(kept)  # read again for a second pass
