"""The members of each category, kept card by card, are those counted afresh.

``GroupMembers`` is updated as cards come and go (``Storage.group_cards``
applies the changes since the group cards were last made). Whatever the
order of changes, its members must be those the rule gives for the cards
there now: a UID is a member of a category while any card with that UID has
it, and a UID in more than ``MAX_GROUPS_PER_CARD`` categories counts only in
its largest ones.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from cardfile.plugin.contacts.group_members import MAX_GROUPS_PER_CARD, GroupMembers
from cardfile.plugin.store.index import CardIndex

BOOK = "alice/contacts"
KEYS = [f"category-{n}" for n in range(MAX_GROUPS_PER_CARD + 15)]


def _by_the_rule(cards: dict[int, tuple[str, frozenset[str]]]) -> dict[str, set[str]]:
    keys_of: dict[str, set[str]] = {}
    for uid, keys in cards.values():
        keys_of.setdefault(uid, set()).update(keys)
    size = Counter(key for keys in keys_of.values() for key in keys)
    members: dict[str, set[str]] = {}
    for uid, keys in keys_of.items():
        for key in sorted(keys, key=lambda k: (-size[k], k))[:MAX_GROUPS_PER_CARD]:
            members.setdefault(key, set()).add(uid)
    return members


def _counted_afresh(cards: dict[int, tuple[str, frozenset[tuple[str, str]]]]
                    ) -> list[tuple[str, str, int]]:
    """(key, smallest spelling, cards with it), as the index's GROUP BY counts them."""
    spellings: dict[str, set[str]] = {}
    holders: Counter[str] = Counter()
    for _, pairs in cards.values():
        for key, spelling in pairs:
            spellings.setdefault(key, set()).add(spelling)
        holders.update({key for key, _ in pairs})
    return sorted((key, min(names), holders[key]) for key, names in spellings.items())


def test_members_kept_through_changes_are_the_members_counted_afresh() -> None:
    rng = random.Random(1130)
    members = GroupMembers()
    cards: dict[int, tuple[str, frozenset[tuple[str, str]]]] = {}
    for step in range(3000):
        card = rng.randrange(40)
        if card in cards:  # the card goes (deleted, or edited: then it comes back)
            uid, pairs = cards.pop(card)
            members.change(uid, pairs, -1)
        if rng.random() < 0.7:
            crowded = rng.random() < 0.05
            keys = rng.sample(KEYS, MAX_GROUPS_PER_CARD + 3 if crowded else rng.randrange(0, 4))
            # Spelled as cards spell them: one category two ways, now and then on one card.
            pairs = frozenset((key, spelling) for key in keys for spelling in rng.sample(
                [key, key.title(), key.upper()], 2 if rng.random() < 0.1 else 1))
            uid = f"uid-{rng.randrange(25)}"  # some cards share a UID
            cards[card] = (uid, pairs)
            members.change(uid, pairs, +1)
        by_uid = {card: (uid, frozenset(k for k, _ in pairs))
                  for card, (uid, pairs) in cards.items()}
        got = {key: set(uids) for key, uids in members.members().items()}
        assert got == _by_the_rule(by_uid), f"after step {step}"
        assert set(members.keys()) == {key for _, keys in by_uid.values() for key in keys}
        assert sorted(members.category_counts()) == _counted_afresh(cards), f"after step {step}"


def test_a_category_spelled_twice_on_one_card_leaves_with_the_card() -> None:
    twice = [("family", "Family"), ("family", "family")]
    members = GroupMembers.of([("uid-1", twice)])
    assert {key: set(uids) for key, uids in members.members().items()} == {"family": {"uid-1"}}
    assert members.category_counts() == [("family", "Family", 1)]
    members.change("uid-1", twice, -1)
    assert members.members() == {}
    assert members.category_counts() == []


def test_a_text_is_forgotten_when_its_category_gains_or_loses_a_member() -> None:
    family, work = [("family", "Family")], [("work", "Work")]
    members = GroupMembers.of([("uid-1", family), ("uid-2", work)])
    members.texts = {"family": ("made", "text"), "work": ("made", "text")}
    members.change("uid-1", family, +1)  # a second card of a member: no new member
    assert set(members.texts) == {"family", "work"}
    members.change("uid-3", family, +1)
    assert set(members.texts) == {"work"}
    members.change("uid-2", work, -1)
    assert members.texts == {}


def test_group_cards_made_before_a_change_are_not_recorded_over_newer_ones(
        tmp_path: Path) -> None:
    """Two server processes make an Apple client's group cards from the index; a
    rescan changes cards without the storage lock, so one may come to record the
    group cards it made before a change after the other recorded those made after
    it. The older ones are refused: what clients sync stays the newer cards."""
    folder = tmp_path / "book"
    folder.mkdir()
    index = CardIndex(str(tmp_path / "index.sqlite3"))
    coll, _ = index.collection_id(BOOK, folder.stat().st_ino)
    text = _card("ann", "CATEGORIES:Friends")
    (folder / "ann.vcf").write_text(text, newline="")
    index.put(coll, "ann.vcf", text, len(text), 1)
    before = index.items_seq(coll)
    older = {"friends.vcf": ("friends", '"with-ann"')}  # made by one process, not yet recorded
    text = _card("ann", "CATEGORIES:Work")  # the rescan finds Ann moved to Work
    index.put(coll, "ann.vcf", text, len(text), 2)
    newer = {"work.vcf": ("work", '"with-ann"')}
    assert index.update_group_cards(coll, newer, index.items_seq(coll))
    assert not index.update_group_cards(coll, older, before)
    assert {h: (u, e) for h, (u, e, _) in index.group_cards(coll).items()} == newer
    # Made from the cards as they are, they are recorded (a later change, as before).
    assert index.update_group_cards(coll, {}, index.items_seq(coll))
    assert index.group_cards(coll) == {}


def _card(uid: str, line: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{uid}\r\n{line}\r\nEND:VCARD\r\n"
