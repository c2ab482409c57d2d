"""Forgetting old deletions in the PostgreSQL store, on a schedule (``[storage] tombstone_*``).

A deleted card stays in the database as a tombstone so that a client syncing
from an older token is told of the deletion. Kept for ever they only grow, so
one thread in one worker of each server (slot 0, ``cli/worker_slots.py``)
prunes them every ``tombstone_prune_interval`` seconds: a deletion is
forgotten when it is older than ``tombstone_days`` *and* not among its book's
newest ``tombstone_keep``. A client whose token is older than a forgotten
deletion gets 403 valid-sync-token and syncs the book afresh: nothing is
lost, but a phone then downloads the whole book again.

The defaults, and why:

- ``tombstone_days = 90``: clients sync every few minutes, but a phone left
  in a drawer, a laptop on a long trip or an app the user opens once a
  season must come back to an incremental sync, not a full one. A tombstone
  costs a row without a body (measured: about 300 bytes with its index
  entries, against about 1 KB for a 600-byte card), so even a book that
  deletes 100 cards a day keeps under 3 MB for 90 days.
- ``tombstone_keep = 1000``: a quiet book (a deletion now and then) keeps
  its last deletions however old, so a token of a rarely used client stays
  good there too; pruning those few rows would save almost nothing. The
  count never protects more than 1,000 rows (about 300 KB) per book.
- ``tombstone_prune_interval = 3600``: pruning is one indexed query over the
  tombstones, then one short transaction per book with something to forget;
  once an hour is plenty. 0 turns pruning off (tombstones are kept for ever).

Several servers on one database each run the schedule, but a round takes
a turn recorded in the database, so they prune once per interval between
them, not once each (``PgStore.prune_expired``: why a turn row and not an
advisory lock, and why overlapping rounds would be harmless anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardfile.plugin.refused import Refused
from cardfile.plugin.store.background import Repeating
from cardfile.plugin.store.postgres import PgStore, Pruned

log = logging.getLogger("cardfile")


@dataclass(frozen=True)
class TombstonePolicy:
    """How long deletions are remembered, and how often the forgetting runs."""

    days: float = 90.0
    keep: int = 1000
    interval: float = 3600.0

    @property
    def enabled(self) -> bool:
        return self.interval > 0


def policy_from(option: Callable[[str, str], str]) -> TombstonePolicy:
    """The policy of the ``[storage]`` options (``option(name, default)``).

    A value that is not a number, or is negative, is a ``ValueError`` naming
    the option: ``cardfile serve`` refuses to start on it (``cli/db.py``)
    rather than prune by a policy nobody wrote.
    """
    defaults = TombstonePolicy()

    def number(name: str, default: float) -> float:
        text = option(name, str(default)).strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"[storage] {name} = {text!r} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"[storage] {name} = {text!r} must be 0 or more")
        return value

    keep = number("tombstone_keep", defaults.keep)
    if keep != int(keep):
        raise ValueError(f"[storage] tombstone_keep = {keep!r} must be a whole number")
    return TombstonePolicy(days=number("tombstone_days", defaults.days), keep=int(keep),
                           interval=number("tombstone_prune_interval", defaults.interval))


def policy_of(configuration: Any) -> TombstonePolicy:
    """The policy of a Radicale configuration (Cardfile's options pass through ``[storage]``)."""

    def option(name: str, default: str) -> str:
        try:
            value = configuration.get("storage", name)
        except KeyError:
            return default
        return str(value) if value not in (None, "") else default

    return policy_from(option)


class TombstonePruner:
    """The schedule: a round every ``policy.interval`` seconds, in the background."""

    def __init__(self, store: PgStore, policy: TombstonePolicy) -> None:
        self.store = store
        self.policy = policy
        self._schedule = Repeating("cardfile-tombstones", policy.interval, self.run_once)

    def start(self) -> None:
        self._schedule.start()

    def stop(self) -> None:
        self._schedule.stop()

    def run_once(self) -> Pruned | None:
        """One round; None when another server had the turn or the database was away."""
        try:
            pruned = self.store.prune_expired(self.policy.days, self.policy.keep,
                                              turn_seconds=self.policy.interval)
        except Refused as e:  # the database is away: the next round tries again
            log.warning("Pruning deleted cards skipped: %s", e)
            return None
        if pruned is not None and pruned.tombstones:
            log.info("Forgot %d deleted card(s) in %d book(s) (older than %g days, beyond "
                     "each book's newest %d); clients syncing from before them sync afresh",
                     pruned.tombstones, pruned.books, self.policy.days, self.policy.keep)
        return pruned


def start_pruning(storage: Any, configuration: Any) -> TombstonePruner | None:
    """Start the schedule for a storage on PostgreSQL (None: files, or pruning turned off)."""
    shared = getattr(storage, "shared", None)
    if shared is None:
        return None
    policy = policy_of(configuration)
    if not policy.enabled:
        return None
    pruner = TombstonePruner(shared.store, policy)
    pruner.start()
    return pruner
