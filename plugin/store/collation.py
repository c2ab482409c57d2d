"""How people's names compare: search folds case and accents, sorting follows the UCA.

Search: ``fold`` maps a text to the form the index's ``fvalue`` column holds and
a query is folded the same way, so "Zoe Muller" finds "Zoë Müller", "jurgen"
finds "Jürgen" and "ZOË" finds "Zoe" (both ways). It is a decomposition
(NFKD) with the combining marks dropped, then ``casefold``; letters that carry
their stroke or ligature in the base letter itself (Ł, Ø, Đ, Æ, Œ, ß, Þ ...)
have no decomposition, so a short table gives their plain letters, as ICU's
Latin-ASCII transliterator does. Only the JSON API's ``q`` and ``cardfile
search`` use it: CardDAV text-match keeps the collation the client names.

Sorting: ``sort_key`` is the Unicode Collation Algorithm's key (pyuca, the
DUCET table) packed into bytes, so SQLite's byte comparison of the stored
BLOBs is the UCA order: Édouard sorts with E, Łukasz after Lars and before
Mona, never after Z. Keys of name words are cached: a book repeats its
given and family names, and a rebuild of 100,000 cards computes each once.
"""

from __future__ import annotations

import struct
import unicodedata
from functools import lru_cache

import pyuca

#: Letters with no decomposition, and the plain letters a person types for them.
_PLAIN = str.maketrans({
    "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ħ": "h", "Ħ": "h",
    "ı": "i", "ŧ": "t", "Ŧ": "t", "ƀ": "b", "ɨ": "i", "ʉ": "u", "ŀ": "l", "Ŀ": "l",
    "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ß": "ss", "ẞ": "ss", "þ": "th", "Þ": "th",
    "ð": "d", "Ð": "d", "ĸ": "k", "ŋ": "n", "Ŋ": "n",
    # Typographic apostrophes and dashes people never type: O’Brien finds O'Brien.
    "’": "'", "‘": "'", "ʼ": "'", "‐": "-", "‑": "-", "–": "-", "—": "-",
})
#: Longest name text turned into a sort key (a longer one sorts by its start).
_KEY_CHARS = 120
#: Levels of a key: base letters, accents, case.
_LEVELS = 3


def fold(text: str) -> str:
    """``text`` without case or accents, as search compares it.

    Word by word (folding never joins or splits across a space), so the words a
    book repeats, its given and family names, are folded once for a rebuild.
    """
    if text.isascii():
        return text.casefold()
    return " ".join(_fold_word(word) for word in text.split(" "))


@lru_cache(maxsize=100_000)
def _fold_word(text: str) -> str:
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped.casefold().translate(_PLAIN))


_collator: pyuca.Collator | None = None


def _uca() -> pyuca.Collator:
    global _collator
    if _collator is None:  # reading DUCET takes 0.3 s: only when a key is first needed
        _collator = pyuca.Collator()
    return _collator


@lru_cache(maxsize=200_000)
def _word_elements(word: str) -> tuple[tuple[int, ...], ...]:
    """pyuca's collation elements of one word: (primary, secondary, tertiary) each."""
    if word.isascii() and len(word) > 1:
        # DUCET has no contraction among ASCII characters (checked over every
        # pair in tests): a word's elements are its characters' in turn.
        return tuple(e for ch in word for e in _word_elements(ch))
    collator = _uca()
    return tuple(tuple(e) for e in collator.collation_elements(
        unicodedata.normalize("NFD", word)))


@lru_cache(maxsize=200_000)
def _word_levels(word: str) -> tuple[bytes, ...]:
    """One word's non-zero weights of each level, packed (DUCET weights fit 16 bits)."""
    elements = _word_elements(word)
    levels = []
    for level in range(_LEVELS):
        weights = [e[level] for e in elements if len(e) > level and e[level]]
        levels.append(struct.pack(f">{len(weights)}H", *weights))
    return tuple(levels)


def sort_key(text: str) -> bytes:
    """The UCA sort key of ``text`` (pyuca's, packed): bytes that compare in its order.

    A key is each level's weights in turn, levels separated by 0; the weights of
    a name are those of its words and spaces in turn (a space joins no
    contraction), so each word's are computed once for the whole book.
    """
    words = " ".join(text.split())[:_KEY_CHARS].split(" ")
    parts = [_word_levels(words[0])]
    for word in words[1:]:
        parts.append(_word_levels(" "))
        parts.append(_word_levels(word))
    return b"\0\0".join(b"".join(p[level] for p in parts) for level in range(_LEVELS))


def primary_key(letter: str) -> bytes:
    """The first primary weight of ``letter``: every name starting with that letter
    (any case or accent, É with E) sorts at or after it, and before the next letter's."""
    for element in _word_elements(letter):
        if element[0]:
            return struct.pack(">H", element[0])
    return b""
