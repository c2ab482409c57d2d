"""Who is in each category, kept card by card, for the group cards.

An Apple client sees every category as a group card listing its members
(``Categories.group_cards``). Making those cards from every card's categories
took 1.2 s at 100,000 cards (0.9 s reading them, 0.3 s counting), and a
client's edit of one card's categories made them all again at its next
request. ``GroupMembers`` is the count that a change of a few cards updates:
a card's categories out, its new ones in. It also keeps each group card's text
until its members change, so only the cards of the categories touched are
written again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

#: A card counts towards at most this many group cards (its categories with
#: the most members): one card with 5,000 categories would otherwise make
#: 5,000 group cards, each in every listing an Apple client asks for.
MAX_GROUPS_PER_CARD = 50


class GroupMembers:
    """category key -> member UIDs; each membership counted once per card that holds it.

    A UID is a member while any card with it has the category (two cards may
    share a UID: they are one member). Not safe for threads by itself: the
    caller changes and reads it under one lock (``Storage.group_cards``).
    """

    def __init__(self) -> None:
        self._uids: dict[str, Counter[str]] = {}  # key -> UID -> cards
        self._keys: dict[str, Counter[str]] = {}  # UID -> key -> cards
        self._cards: Counter[str] = Counter()  # key -> cards
        self._spellings: dict[str, Counter[str]] = {}  # key -> spelling -> cards
        #: UIDs in more than MAX_GROUPS_PER_CARD categories (see ``members``).
        self._crowded: set[str] = set()
        #: key -> (what the text was made from, the group card's text), made by
        #: ``Categories.group_cards_of``; dropped when the key's members change.
        self.texts: dict[str, tuple[Any, str]] = {}

    @classmethod
    def of(cls, cards: Iterable[tuple[str, Iterable[tuple[str, str]]]]) -> GroupMembers:
        """From each card's (UID, its categories' (key, spelling) pairs)."""
        made = cls()
        for uid, categories in cards:
            made.change(uid, categories, +1)
        return made

    def change(self, uid: str, categories: Iterable[tuple[str, str]], by: int) -> None:
        """A card with ``uid`` and the categories ``categories`` ((key, spelling)
        pairs) came (``by`` 1) or went (-1)."""
        pairs = set(categories)
        for key, spelling in pairs:
            spellings = self._spellings.setdefault(key, Counter())
            spellings[spelling] += by
            if spellings[spelling] <= 0:
                del spellings[spelling]
                if not spellings:
                    del self._spellings[key]
        counts = self._keys.setdefault(uid, Counter())
        for key in {key for key, _ in pairs}:  # (a card may spell one category two ways)
            self._cards[key] += by
            if self._cards[key] <= 0:
                del self._cards[key]
            members = self._uids.setdefault(key, Counter())
            was = members[uid] > 0
            members[uid] += by
            counts[key] += by
            if members[uid] <= 0:
                del members[uid]
                del counts[key]
                if not members:
                    del self._uids[key]
            if was != (members.get(uid, 0) > 0):
                self.texts.pop(key, None)
        if not counts:
            del self._keys[uid]
        if len(counts) > MAX_GROUPS_PER_CARD:
            self._crowded.add(uid)
        else:
            self._crowded.discard(uid)

    def keys(self) -> Iterable[str]:
        return self._uids.keys()

    def category_counts(self) -> list[tuple[str, str, int]]:
        """(key, a spelling, cards) of every category on a card: what
        ``CardIndex.category_counts`` reads with a ``GROUP BY`` over every card's
        categories (30 ms at 100,000 cards, at each change of one), the smallest
        spelling as SQLite's ``MIN`` picks it."""
        return [(key, min(spellings), self._cards[key])
                for key, spellings in self._spellings.items()]

    def members(self) -> dict[str, Collection[str]]:
        """key -> member UIDs, a crowded UID counted only in its largest categories.

        While no card is crowded (past ``MAX_GROUPS_PER_CARD``), each key's
        members are its own count, unchanged since its text was made;
        otherwise every text is made again (``crowded``).
        """
        if not self._crowded:
            return dict(self._uids)
        size = {key: len(uids) for key, uids in self._uids.items()}
        trimmed = {key: set(uids) for key, uids in self._uids.items()}
        for uid in self._crowded:
            keys = sorted(self._keys[uid], key=lambda k: (-size[k], k))
            for key in keys[MAX_GROUPS_PER_CARD:]:
                trimmed[key].discard(uid)
        return {key: uids for key, uids in trimmed.items() if uids}

    @property
    def crowded(self) -> bool:
        """Whether some card counts in only some of its categories (texts not kept)."""
        return bool(self._crowded)
