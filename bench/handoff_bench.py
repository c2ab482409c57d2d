#!/usr/bin/env python3
"""What a request pays to hand work to another thread: its body read and its read slot.

In the 50-client mix nearly every request reads a small body through a
reader thread (``plugin/dav/body_reader.py``: the body may stall, and only
another thread can wait for it under a deadline) and takes one of its
process's read slots (``plugin/store/turnstile.py: ReadSlots``). Both hand
over between threads, and with 64 request threads per worker the cost is
interpreter time (locks, conditions, thread switches) that the mix's own
figures cannot separate from the machine's drift. This measures just that:
``--threads`` threads each doing ``--rounds`` times one body read of a
stream that has its bytes ready and one hold of a read slot around a little
work, and prints the CPU time and the wall time per round.

Compare two commits by running it at each:

    python bench/handoff_bench.py
    git stash && python bench/handoff_bench.py; git stash pop
"""

from __future__ import annotations

import argparse
import threading
import time

from cardfile.plugin.dav import body_reader
from cardfile.plugin.store.turnstile import ReadSlots

BODY = b"<C:addressbook-multiget/>" * 12


class _ArrivedBody:
    """A body stream whose bytes have all arrived (it has no deadline of its own)."""

    def read(self, size: int) -> bytes:
        return BODY[:size]


def measure(threads: int, rounds: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per round of ``threads`` threads doing ``rounds`` rounds each."""
    body_reader.configure(10.0, threads=64)
    slots = ReadSlots(2)

    def work() -> None:
        stream = _ArrivedBody()
        for _ in range(rounds):
            body_reader.read_chunk(stream, len(BODY))
            with slots.held():
                sum(range(200))  # a short read inside the lock

    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * rounds
    return ((time.process_time() - cpu) / total * 1e6,
            (time.perf_counter() - wall) / total * 1e6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=40, help="request threads (40)")
    p.add_argument("--rounds", type=int, default=2000, help="rounds per thread (2000)")
    p.add_argument("--repeat", type=int, default=3, help="runs (3)")
    args = p.parse_args(argv)
    for run in range(args.repeat):
        cpu_us, wall_us = measure(args.threads, args.rounds)
        print(f"run {run + 1}: {args.threads} threads x {args.rounds} rounds: "
              f"{cpu_us:.1f} µs CPU, {wall_us:.1f} µs wall per round")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
