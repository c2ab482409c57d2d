"""A few reads of one process hold the storage lock at once (``storage.READS_AT_ONCE``).

The rest wait for a slot before they queue for the lock, so a save waits for
a few short reads instead of dozens sharing one interpreter. These tests
hold reads open inside the lock and count them; a read nested in another
hold of the same thread needs no slot (it would otherwise wait for itself);
a freed slot goes to the read that waited longest, never to one just come.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardfile.cli.server import Recipe
from cardfile.plugin.contacts import storage as storage_mod
from cardfile.plugin.store.turnstile import ReadSlots

WAIT_S = 10


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[storage_mod.Storage]:
    yield storage_mod.Storage(Recipe(data_dir=str(tmp_path), config_file=None).configuration())


def _hold_reads(storage: storage_mod.Storage, count: int, release: threading.Event,
                inside: list[int], lock: threading.Lock) -> list[threading.Thread]:
    def read(n: int) -> None:
        with storage.acquire_lock("r"):
            with lock:
                inside.append(n)
            release.wait(WAIT_S)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _settle(inside: list[int], lock: threading.Lock, expected: int) -> int:
    """How many reads are inside once ``expected`` are (or WAIT_S passed)."""
    done = threading.Event()
    for _ in range(WAIT_S * 100):
        with lock:
            if len(inside) >= expected:
                break
        done.wait(0.01)
    done.wait(0.3)  # room for one more to get in, if the slots let it
    with lock:
        return len(inside)


def test_only_a_few_reads_of_a_process_are_inside_the_lock_at_once(
        storage: storage_mod.Storage) -> None:
    release, lock, inside = threading.Event(), threading.Lock(), []
    threads = _hold_reads(storage, storage_mod.READS_AT_ONCE + 3, release, inside, lock)
    try:
        assert _settle(inside, lock, storage_mod.READS_AT_ONCE) == storage_mod.READS_AT_ONCE
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT_S)
    assert sorted(inside) == list(range(storage_mod.READS_AT_ONCE + 3))  # all got in, in turn


def test_a_read_nested_in_a_hold_needs_no_slot(storage: storage_mod.Storage) -> None:
    release, lock, inside = threading.Event(), threading.Lock(), []
    threads = _hold_reads(storage, storage_mod.READS_AT_ONCE - 1, release, inside, lock)
    nested = threading.Event()

    def read_twice() -> None:
        with storage.acquire_lock("r"), storage.acquire_lock("r"):
            nested.set()

    try:
        _settle(inside, lock, storage_mod.READS_AT_ONCE - 1)
        reader = threading.Thread(target=read_twice)
        reader.start()  # takes the last slot, then reads again inside it
        assert nested.wait(WAIT_S), "a nested read waited for a slot its own thread held"
        reader.join(WAIT_S)
        release.set()
        with storage.acquire_lock("w"):  # and a save gets in once the reads are done
            assert storage.write_locked()
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT_S)


def test_a_freed_slot_goes_to_the_read_that_waited_longest() -> None:
    slots = ReadSlots(1)
    entered: list[str] = []
    order_lock = threading.Lock()

    def read(name: str) -> None:
        with slots.held():
            with order_lock:
                entered.append(name)

    threads: list[threading.Thread] = []
    with slots.held():
        for name in ("first", "second", "third"):
            thread = threading.Thread(target=read, args=(name,))
            thread.start()
            threads.append(thread)
            for _ in range(WAIT_S * 100):  # queued before the next one comes
                if len(slots._waiting) == len(threads):
                    break
                threading.Event().wait(0.01)
        assert entered == []
    # Released, and asked for again at once by the same thread, which runs on
    # before the waiting ones wake: it queues behind the three (a plain semaphore
    # gives it the slot it just freed).
    with slots.held():
        with order_lock:
            entered.append("again")
    for thread in threads:
        thread.join(WAIT_S)
    assert entered == ["first", "second", "third", "again"]
