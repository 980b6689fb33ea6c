"""Per-method numbers of the arena report, computed from the cells' metric histories.

Definitions (the report states them too):

- success metric of an environment: validation success (:data:`~sampo_verl.metrics.VAL_SUCCESS`)
  when every cell of the environment logged it after training started (at a step > 0), otherwise
  the training success rate ``sampo/success_rate``; one metric for all methods of an environment.
- per seed: *final* success is the last logged value, *best* the largest; *collapses* the number of
  steps at which the collapse detector fired (``collapse/any`` > 0); *lowest valid-format rate* the
  minimum of ``sampo/format_valid_rate`` over the run.
- over seeds: the mean and the sample standard deviation (ddof 1) of the seeds that logged the
  value; the spread of a single seed is undefined (NaN).
- *drop* of a method: mean best success minus mean final success (how far it fell from its peak).
- ranking: by mean final success, then mean best success (both descending), then mean collapses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sampo_verl.arena.layout import Cell
from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS, History, collapse_steps, metric_series

FORMAT_VALID = "sampo/format_valid_rate"


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation over the seeds that have a value (``n`` of them)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
        mean = float(finite.mean()) if finite.size else math.nan
        std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        return cls(mean, std, int(finite.size))


@dataclass(frozen=True)
class SeedStats:
    """One cell's numbers (NaN where the metric was never logged)."""

    seed: int
    finished: bool
    final: float
    best: float
    collapses: int
    format_min: float
    wall_time_s: float


@dataclass(frozen=True)
class MethodSummary:
    """One method's seeds on one environment."""

    method: str
    seeds: tuple[SeedStats, ...]

    @property
    def finished(self) -> int:
        return sum(s.finished for s in self.seeds)

    @property
    def final(self) -> Spread:
        return Spread.of([s.final for s in self.seeds])

    @property
    def best(self) -> Spread:
        return Spread.of([s.best for s in self.seeds])

    @property
    def collapses(self) -> Spread:
        return Spread.of([s.collapses for s in self.seeds])

    @property
    def format_min(self) -> Spread:
        return Spread.of([s.format_min for s in self.seeds])

    @property
    def drop(self) -> float:
        return self.best.mean - self.final.mean


def success_metric(histories: Sequence[History]) -> str:
    """Validation success if every history logged it at a step > 0, else training success."""
    validated = [metric_series(h, VAL_SUCCESS)[0] for h in histories]
    return VAL_SUCCESS if histories and all((steps > 0).any() for steps in validated) else TRAIN_SUCCESS


def seed_stats(cell: Cell, history: History, metric: str) -> SeedStats:
    """The numbers of one cell for success metric ``metric``."""
    _, success = metric_series(history, metric)
    _, valid_format = metric_series(history, FORMAT_VALID)
    done = cell.done()
    return SeedStats(
        seed=cell.seed,
        finished=done is not None,
        final=float(success[-1]) if success.size else math.nan,
        best=float(success.max()) if success.size else math.nan,
        collapses=len(collapse_steps(history)),
        format_min=float(valid_format.min()) if valid_format.size else math.nan,
        wall_time_s=float(done.get("wall_time_s", math.nan)) if done else math.nan,
    )


def summarise_methods(cells: Sequence[tuple[Cell, History]], metric: str) -> list[MethodSummary]:
    """Group one environment's cells by method and rank the methods (best first)."""
    by_method: dict[str, list[SeedStats]] = {}
    for cell, history in cells:
        by_method.setdefault(cell.method, []).append(seed_stats(cell, history, metric))
    summaries = [MethodSummary(m, tuple(sorted(s, key=lambda x: x.seed))) for m, s in by_method.items()]
    return sorted(summaries, key=_rank_key)


def _rank_key(summary: MethodSummary) -> tuple[float, float, float, str]:
    def desc(value: float) -> float:
        return -value if math.isfinite(value) else math.inf

    return desc(summary.final.mean), desc(summary.best.mean), summary.collapses.mean, summary.method
