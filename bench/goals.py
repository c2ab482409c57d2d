"""The speed goals of issue 17, and the table that checks measured figures against them.

Each goal names the record it is read from (the yardstick's operation, or
one ``run_bench``/``cold_start``/``mix_bench`` adds), the unit, and its limit
at the address-book sizes the issue states it for. At another size the limit
of the next bigger stated size is used (a book that meets the 100,000-card
limit at 10,000 cards meets a bound, not the goal), and the verdict says so;
above every stated size there is no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """One line of the issue: what is measured, in what unit, and the limit by size."""

    text: str
    op: str
    unit: str
    # book size -> limit; the key 0 means "at any size"
    limits: Mapping[int, float]
    at_least: bool = False  # the figure must reach the limit, not stay under it

    def limit_at(self, n: int) -> tuple[float, int] | None:
        """(limit, the size it is stated for) that applies to a book of n cards."""
        if 0 in self.limits:
            return self.limits[0], 0
        bigger = sorted(size for size in self.limits if size >= n)
        if not bigger:
            return None
        return self.limits[bigger[0]], bigger[0]

    def verdict(self, value: float | None, n: int) -> str:
        if value is None:
            return "not measured"
        applies = self.limit_at(n)
        if applies is None:
            stated = ", ".join(f"{size:,}" for size in sorted(self.limits))
            return f"- (stated for {stated})"
        limit, size = applies
        met = value >= limit if self.at_least else value <= limit
        word = "met" if met else "NOT MET"
        return word if size in (0, n) else f"{word} (limit for {size:,})"

    def label(self, n: int) -> str:
        applies = self.limit_at(n)
        if applies is None:
            return self.text
        limit, size = applies
        at = "" if size in (0, n) else f" at {size:,}"
        sign = ">=" if self.at_least else "<="
        return f"{self.text} {sign} {limit:g} {self.unit}{at}"


# The yardstick's and the start probe's rows, by the operation they are read from.
SINGLE_SERVER_GOALS = (
    Goal("GET of one card, p50", "get_single", "ms", {0: 0.5}),
    Goal("multiget in batches of 10, total", "multiget_10", "s", {10000: 1.0, 100000: 10.0}),
    Goal("PROPFIND Depth 1", "propfind_depth1", "s", {100000: 0.5}),
    Goal("initial sync-collection", "sync_initial", "s", {100000: 0.5}),
    Goal("PUT create p50", "put_create", "ms", {10000: 5.0, 100000: 5.0}),
    Goal("PUT update p50", "put_update", "ms", {10000: 5.0, 100000: 5.0}),
    Goal("start, index rebuilt", "start_rebuild", "s", {100000: 10.0}),
    Goal("start, index present", "start_present", "s", {100000: 1.0}),
    Goal("memory (sum of VmHWM over the tree)", "start_memory", "MB", {100000: 200.0}),
)

# The 50-client mix (mix_bench): limits that do not depend on the book size.
MIX_P99 = Goal("50-client mix, p99 of all requests", "mix_p99", "ms", {0: 50.0})
MIX_CORES = Goal("both cores used (server CPU s / wall s)", "mix_cores", "cores", {0: 1.2},
                 at_least=True)


def fmt(value: float) -> str:
    """Four-ish significant digits without exponents, so columns stay readable."""
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def render(rows: list[tuple[str, dict[str, str], str]], labels: list[str],
           subject: str = "cardfile") -> str:
    """Fixed-width table: goal | one column per server | verdict for ``subject``."""
    header = ("goal", *labels, f"{subject}: goal")
    lines = [header] + [(text, *(cells.get(lb, "-") for lb in labels), verdict)
                        for text, cells, verdict in rows]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[c]) if c in (0, len(row) - 1)
                             else cell.rjust(widths[c]) for c, cell in enumerate(row)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def rows_for(goals: tuple[Goal, ...], values: Mapping[tuple[str, str], float], n: int,
             labels: list[str], subject: str = "cardfile"
             ) -> list[tuple[str, dict[str, str], str]]:
    """Rows for the goals that have at least one measured figure."""
    rows = []
    for goal in goals:
        cells = {lb: fmt(values[(goal.op, lb)]) for lb in labels if (goal.op, lb) in values}
        if not cells:
            continue
        rows.append((goal.label(n), cells, goal.verdict(values.get((goal.op, subject)), n)))
    return rows
