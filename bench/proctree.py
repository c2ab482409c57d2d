"""CPU and memory of a server's whole process tree, from /proc.

Cardfile runs a Granian master plus one worker process per core, so the
server's cost is the sum over every process descended from the one we
started; reading only that one (the master) would show almost nothing.
Stock Radicale and Xandikos are single processes, for which the sums are
just their own figures.

Memory is summed three ways, because no single sum is exact:

- ``hwm_kb``: each process's own peak (``VmHWM``). The peaks need not be
  at the same moment, so the sum is an upper bound of the tree's peak.
- ``rss_kb``: resident memory now. Pages shared between the processes
  (the interpreter, copy-on-write after a fork) are counted once per process.
- ``pss_kb``: proportional set size now (``smaps_rollup``), each shared page
  split between the processes sharing it: the tree's real footprint now.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def tree_pids(root: int) -> list[int]:
    """The root and every live descendant (walks /proc once for parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in found or not Path(f"/proc/{pid}").exists():
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float | None:
    """User+system CPU of the tree so far, including reaped children's (cutime/cstime).

    A worker that exited and was waited for has its time moved into its
    parent's cutime/cstime, so differences of this sum stay right when a
    worker is replaced during a run. None when the root is gone.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    seen = False
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        seen = True
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / ticks if seen else None


def _status_kb(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def per_process_kb(root: int) -> list[dict[str, int]]:
    """Each process of the tree (the root first): pid, VmHWM, VmRSS and Pss in kB.

    The sums hide where memory goes; a server's workers each hold their own
    caches, and this shows them one by one (a process whose PSS cannot be
    read has none).
    """
    rows = []
    for pid in tree_pids(root):
        status = _status_kb(pid)
        row = {"pid": pid, "hwm_kb": status.get("VmHWM", 0), "rss_kb": status.get("VmRSS", 0)}
        pss = _pss_kb(pid)
        if pss is not None:
            row["pss_kb"] = pss
        rows.append(row)
    return rows


def tree_memory_kb(root: int) -> dict[str, int]:
    """``hwm_kb`` (sum of peaks), ``rss_kb`` and ``pss_kb`` (now) and ``processes``."""
    pids = tree_pids(root)
    hwm = rss = pss = 0
    pss_known = True
    for pid in pids:
        status = _status_kb(pid)
        hwm += status.get("VmHWM", 0)
        rss += status.get("VmRSS", 0)
        value = _pss_kb(pid)
        if value is None:
            pss_known = False
        else:
            pss += value
    result = {"hwm_kb": hwm, "rss_kb": rss, "processes": len(pids)}
    if pss_known and pids:
        result["pss_kb"] = pss
    return result
