"""Renaming or deleting a category of many members, in short holds of the write lock.

A category lives on its members' cards (``CATEGORIES``), so renaming or
deleting it rewrites every member: a file, the index and the history each,
2 ms a card. In one hold of the write lock a category of 6,000 members (at
100,000 cards) held every user of the server up for about 12 s. Here the
category's own entry changes in one hold, then the members are rewritten as
an import writes (``model.in_short_holds``), and a last hold catches members
who joined in between.

What a client sees in between is the rename part done: some members under
the old name, some under the new one, as if it had synced in the middle of
another client's edits; at the end every member has the new name. A rename
cut off (the server stopped) is finished by renaming again with ``cardfile
categories rename``, which merges into the new name (the API refuses a
rename onto a category that exists); a delete, by deleting again. The
CardDAV ways in (a group card PUT or DELETE) stay in Radicale's one hold:
they change what one client sent, at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from cardfile.plugin.contacts import model
from cardfile.plugin.contacts.categories import Categories, Category
from cardfile.plugin.vcard import card_edit
from cardfile.plugin.vcard.card_edit import category_key

#: The book's categories within one hold of its write lock.
Hold = Callable[[], contextlib.AbstractContextManager[Categories]]


def rename(hold: Hold, old: str, new: str,
           within_first: Callable[[Categories, str], object] | None = None,
           check_first: Callable[[Categories], object] | None = None) -> Category:
    """Rename ``old`` to ``new`` on the category's entry and every member.

    ``check_first(categories)`` runs in the first hold before anything changes
    (the API refuses there a name another category has); ``within_first
    (categories, new name)`` after the entry is renamed (the API changes
    colour and description there).
    """
    with hold() as cats:
        if check_first is not None:
            check_first(cats)
        new_name, hrefs = cats.rename_entry(old, new)
        if within_first is not None:
            within_first(cats, new_name)

    def change(text: str) -> str:
        return card_edit.rename_category(text, old, new_name)

    _rewrite_members(hold, old, hrefs, change, category_key(old) == category_key(new_name))
    with hold() as cats:
        return cats.require(new_name)


def delete(hold: Hold, name: str) -> int:
    """Delete the category ``name``; its contacts stay. How many held it."""
    with hold() as cats:
        hrefs = cats.delete_entry(name)

    def change(text: str) -> str:
        return card_edit.remove_category(text, name)

    _rewrite_members(hold, name, hrefs, change)
    return len(hrefs)


def _rewrite_members(hold: Hold, name: str, hrefs: list[str],
                     change: Callable[[str], str], same_key: bool = False) -> None:
    """``change`` on each member (by href) in short holds, then on any card that
    came to hold ``name`` meanwhile (a client's edit between two holds)."""
    def one(cats: Categories, href: str) -> None:
        cats.rewrite_href(href, change)

    model.in_short_holds(hold, hrefs, one)
    # Every card holding ``name`` now, a rewritten one given it back included. A
    # rename that only changes the spelling keeps the key: its rewritten cards
    # still count as members, and are left out.
    done = set(hrefs) if same_key else set()
    with hold() as cats:
        late = [row.href for row in cats.members(name) if row.href not in done]
    model.in_short_holds(hold, late, one)
