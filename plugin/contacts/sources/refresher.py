"""The background refresh of ``cardfile serve``: each source on its own interval.

One background thread (``background.Repeating``) looks every ``tick``
seconds for sources that are due (``sync.due``: interval passed, not backing
off, not waiting for a new sign-in) and refreshes them one after another.
A refresh holds the storage lock only while it writes a batch, so clients
are answered meanwhile; a source that fails only delays itself
(``sync.refresh`` records the failure and its back-off), never the others.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from cardfile.plugin.contacts import state_files
from cardfile.plugin.contacts.sources import registry, sync
from cardfile.plugin.store.background import Repeating

log = logging.getLogger("cardfile")


class Refresher:
    def __init__(self, storage: Any, tick: float = 1.0) -> None:
        self.storage = storage
        self.tick = tick
        self._schedule = Repeating("cardfile-sources", tick, self.run_once)

    def start(self) -> None:
        self._schedule.start()

    def stop(self) -> None:
        self._schedule.stop()

    def run_once(self, now: float | None = None) -> int:
        """Refresh every due source once; return how many were refreshed."""
        now = time.time() if now is None else now
        done = 0
        state_files.catch_up(self.storage.data_folder)  # sources added through other servers
        for user in registry.all_users(self.storage):
            for source, folder in registry.sources_of(self.storage, user):
                if self._schedule.stopping:
                    return done
                if not sync.due(registry.read_state(folder), now):
                    continue
                try:
                    # With PostgreSQL every server has a refresher: one refreshes a source,
                    # the others then find it no longer due (its state is shared).
                    with state_files.exclusive(os.path.join(folder, ".cardfile-refresh")):
                        if not sync.due(registry.read_state(folder), now):
                            continue
                        sync.refresh(self.storage, user, source.name)
                except Exception:  # a bug must not stop the other sources' refreshes
                    log.exception("Refresh of source %s of %s failed", source.name, user)
                done += 1
        return done
