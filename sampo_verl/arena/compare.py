"""``arena compare DIR_A DIR_B``: did a change (code, config, a guard) move an arena's results?

For every (environment, method) in both results folders: final success in each, and the paired
difference B - A over the seeds both ran and the held-out tasks both validated
(:func:`~sampo_verl.arena.summary.paired`; per seed only where a folder has no per-task outcomes),
with its 95% bootstrap interval. "B higher" when the interval lies above 0, "B lower" when it lies
below 0, otherwise "no detectable change". The largest fall (the collapse size) and the lowest success
after the start are paired the same way: a guard shows as a B - A fall below 0 and a lowest above 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sampo_verl.arena.report import load_results
from sampo_verl.arena.summary import Estimate, cell_outcomes, paired, success_metric, summarise_methods, task_list

HIGHER, LOWER, SAME = "B higher", "B lower", "no detectable change"


@dataclass(frozen=True)
class Comparison:
    """One (environment, method) in both folders."""

    env: str
    method: str
    a: Estimate
    b: Estimate
    change: Estimate  # B - A, paired
    a_drop: Estimate
    b_drop: Estimate
    drop_change: Estimate  # B - A of the largest fall, paired
    a_low: Estimate
    b_low: Estimate
    low_change: Estimate  # B - A of the lowest success after the start, paired

    @property
    def verdict(self) -> str:
        return {1: HIGHER, -1: LOWER, 0: SAME}[self.change.side()]


def compare_runs(dir_a: str | Path, dir_b: str | Path) -> list[Comparison]:
    """Every (environment, method) both folders hold, in environment then method order."""
    runs_a, runs_b = load_results(dir_a), load_results(dir_b)
    comparisons = []
    for env in sorted(runs_a.keys() & runs_b.keys()):
        cells_a, cells_b = runs_a[env], runs_b[env]
        metric = success_metric([*cells_a, *cells_b])
        recorded_a, recorded_b = ([cell_outcomes(cell) for cell, _ in cells] for cells in (cells_a, cells_b))
        tasks = sorted(set(task_list(recorded_a)) & set(task_list(recorded_b)))
        a = {s.method: s for s in summarise_methods(cells_a, metric, tasks, recorded_a)}
        b = {s.method: s for s in summarise_methods(cells_b, metric, tasks, recorded_b)}
        for method in [m for m in a if m in b]:
            finals, drops, lows = ([a[method].estimate(v), b[method].estimate(v), paired(b[method], a[method], v)]
                                   for v in ("final", "drop", "low"))  # fmt: skip
            comparisons.append(Comparison(env, method, *finals, *drops, *lows))
    return comparisons


def comparison_table(comparisons: list[Comparison], dir_a: Path, dir_b: Path) -> str:
    """The console table of :func:`compare_runs`."""
    lines = [
        f"A: {dir_a}",
        f"B: {dir_b}",
        "env | method | paired over | A final success | B final success | B - A [95% interval] | verdict"
        " | A largest fall | B largest fall | B - A fall | A lowest | B lowest | B - A lowest",
    ]
    for c in comparisons:
        lines.append(
            f"{c.env} | {c.method} | {c.change.basis()} | {c.a.text()} | {c.b.text()} | "
            f"{c.change.text(signed=True)} | {c.verdict} | {c.a_drop.text()} | {c.b_drop.text()} | "
            f"{c.drop_change.text(signed=True)} | {c.a_low.text()} | {c.b_low.text()} | "
            f"{c.low_change.text(signed=True)}"
        )
    return "\n".join(lines)
