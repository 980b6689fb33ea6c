"""Per-method numbers of the arena report, computed from the cells' metric histories.

Definitions (the report states them too):

- success metric of an environment: validation success (:data:`~sampo_verl.metrics.VAL_SUCCESS`)
  when every cell of the environment logged it after training started (at a step > 0), otherwise
  the training success rate ``sampo/success_rate``; one metric for all methods of an environment.
- per seed: *final* success is the last logged value, *best* the largest, *drop* the largest fall from a
  value to a later one (a run that falls to 0 and recovers dropped too; best - final when the lowest
  point after the peak is the last); *collapses* the number of
  steps at which the collapse detector fired (``collapse/any`` > 0); *lowest valid-format rate* the
  minimum of ``sampo/format_valid_rate`` over the run.
- per task: the cells' per-task validation outcomes (``val_outcomes.jsonl``,
  :mod:`sampo_verl.trainer.val_outcomes`) on the environment's task list (every task any cell
  validated); *final* is the last validation's success per task, *best* the one of the seed's best
  validation, *drop* the difference between the two validations of the seed's largest fall.
- over seeds: the mean and the sample standard deviation (ddof 1) of the seeds that logged the
  value; the spread of a single seed is undefined (NaN).
- intervals (:meth:`MethodSummary.estimate`, :func:`paired`): 95% bootstrap over seeds and tasks
  (:func:`sampo_verl.stats.bootstrap_mean`) when every seed has per-task outcomes, otherwise over
  seeds only; none for one seed without per-task outcomes.
- ranking: by mean final success, then mean best success (both descending), then mean collapses.
- cost of a cell: its wall time (``done.json``, every attempt), of which training steps (verl's
  ``timing_s/step`` summed, checkpoints included) and validations (``timing_s/testing`` summed; verl
  does not time the one before training, counted at the mean of the timed ones); the rest is start-up
  (Ray, workers, loading the model) and shutdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sampo_verl.arena.layout import Cell
from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS, History, collapse_steps, metric_series, skip
from sampo_verl.stats import Interval, bootstrap_mean
from sampo_verl.trainer.staleness import OPTIMIZER_STEPS_METRIC
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, read_val_outcomes

FORMAT_VALID = "sampo/format_valid_rate"
STEP_TIME, VALIDATION_TIME = "timing_s/step", "timing_s/testing"  # verl's timers, seconds per step


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


def largest_fall(values: np.ndarray) -> tuple[int, int]:
    """Indices ``(peak, trough)``, peak <= trough, of the largest fall from a value to a later one (the
    earliest of ties; ``(i, i)`` when the values never fall)."""
    fall = np.maximum.accumulate(values) - values
    trough = int(np.argmax(fall))
    return int(np.argmax(values[: trough + 1])), trough


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
    final_tasks: tuple[float, ...] | None = None  # per task of the environment's task list; None: not recorded
    best_tasks: tuple[float, ...] | None = None
    drop_tasks: tuple[float, ...] | None = None  # the largest fall's first minus its second validation, per task
    low_tasks: tuple[float, ...] | None = None  # the lowest validation after the start's, per task
    train_s: float = math.nan  # of the wall time: training steps
    validation_s: float = math.nan  # and validations
    curve: tuple[float, ...] = ()  # the success metric at each logged step (final and best come from it)
    optimizer_steps: float = math.nan  # optimiser steps a sampled batch, mean over the cell's steps

    @property
    def low(self) -> float:
        """The curve's lowest value after its first (the start's): how far training took it down, whether or
        not it rose first (NaN with fewer than two values)."""
        return float(min(self.curve[1:])) if len(self.curve) > 1 else math.nan

    @property
    def drop(self) -> float:
        """The curve's largest fall from a value to a later one (NaN without a curve)."""
        if not self.curve:
            return math.nan
        curve = np.asarray(self.curve)
        peak, trough = largest_fall(curve)
        return float(curve[peak] - curve[trough])

    def values(self, value: str) -> np.ndarray:
        """``value`` (a field name) per task when recorded, else ``[scalar]``."""
        tasks = getattr(self, f"{value}_tasks", None)
        return np.asarray(tasks if tasks is not None else [getattr(self, value)], dtype=float)


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds (and tasks) with its 95% bootstrap interval (None: one seed and no tasks, or no data)."""

    mean: float
    interval: Interval | None
    seeds: int
    tasks: int  # 0: per-seed values only
    seed_means: tuple[float, ...] = ()  # each seed's mean (over tasks, where it has them)
    seed_var: float = math.nan  # the variance of one seed's mean (variance_parts; NaN: fewer than two seeds)
    tasks_var: float = 0.0  # the mean's variance from the tasks' own differences: more seeds leave it (variance_parts)

    def text(self, signed: bool = False) -> str:
        """'mean [low, high]', the mean alone without an interval, '–' without data."""
        if self.interval is not None:
            return self.interval.text(signed)
        return "–" if math.isnan(self.mean) else f"{self.mean:+.3f}" if signed else f"{self.mean:.3f}"

    def basis(self) -> str:
        return f"{self.seeds} seed(s)" + (f" x {self.tasks} tasks" if self.tasks else ", no per-task outcomes")

    def side(self) -> int:
        """+1 when the interval lies above 0, -1 when below, 0 when it contains 0 or there is none."""
        if self.interval is None:
            return 0
        return 1 if self.interval.low > 0 else -1 if self.interval.high < 0 else 0


def variance_parts(values: np.ndarray) -> tuple[float, float]:
    """``(seed_var, tasks_var)`` of ``values`` [seeds, tasks] under a two-way random-effects model (seed,
    task, seed-by-task residual with mean square r): the variance of one seed's mean, the seed means' sample
    variance but at least r / T (no seed's mean is less noisy than its tasks' outcomes), and the variance the
    task list adds to the grand mean, which more seeds do not reduce: (variance of the per-task means - r /
    seeds) / T, at least 0. ``(NaN, 0)`` with one seed; without tasks r is 0."""
    seeds, tasks = values.shape
    if seeds < 2:
        return math.nan, 0.0
    seed_means = values.mean(axis=1)
    if tasks < 2:
        return float(seed_means.var(ddof=1)), 0.0
    residual = values - seed_means[:, None] - values.mean(axis=0) + values.mean()
    r = float((residual**2).sum()) / ((seeds - 1) * (tasks - 1))
    between = float(values.mean(axis=0).var(ddof=1)) - r / seeds
    return max(float(seed_means.var(ddof=1)), r / tasks), max(between, 0.0) / tasks


def estimate(rows: Sequence[np.ndarray]) -> Estimate:
    """The mean of per-seed rows (equal lengths: per task, or one value each) and its interval;
    rows with a NaN are left out."""
    rows = [row for row in rows if np.isfinite(row).all()]
    if not rows:
        return Estimate(math.nan, None, 0, 0)
    tasks = len(rows[0]) if len(rows[0]) > 1 else 0
    values = np.stack(rows)
    interval = bootstrap_mean(values) if len(rows) > 1 or tasks else None
    seed_means = tuple(values.mean(axis=1).tolist())
    return Estimate(float(values.mean()), interval, len(rows), tasks, seed_means, *variance_parts(values))


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

    def estimate(self, value: str) -> Estimate:
        """Mean of ``value`` over seeds (and tasks, when every seed has them) with its interval."""
        return estimate(_rows(self, value, per_task=self.per_task))

    @property
    def per_task(self) -> bool:
        return all(s.final_tasks is not None for s in self.seeds)

    @property
    def tasks(self) -> int:
        return len(self.seeds[0].final_tasks) if self.per_task and self.seeds else 0


def _rows(summary: MethodSummary, value: str, per_task: bool, seeds: Sequence[int] | None = None) -> list:
    rows = [s.values(value) for s in summary.seeds if seeds is None or s.seed in seeds]
    return rows if per_task else [np.asarray([row.mean()]) for row in rows]


def paired_rows(a: MethodSummary, b: MethodSummary, value: str, per_task: bool = True) -> list[np.ndarray]:
    """Per common seed, ``value`` of ``a`` minus that of ``b``: per task when both recorded the same tasks
    (and ``per_task``), else the seed means' difference."""
    seeds = sorted({s.seed for s in a.seeds} & {s.seed for s in b.seeds})
    per_task = per_task and a.per_task and b.per_task and a.tasks == b.tasks
    left, right = _rows(a, value, per_task, seeds), _rows(b, value, per_task, seeds)
    return [x - y for x, y in zip(left, right, strict=True)]


def paired(a: MethodSummary, b: MethodSummary, value: str) -> Estimate:
    """``value`` of ``a`` minus that of ``b``, paired over their common seeds (and tasks, when both
    recorded them), with its interval."""
    return estimate(paired_rows(a, b, value))


def pooled_paired(pairs: Sequence[tuple[MethodSummary, MethodSummary]], value: str) -> Estimate:
    """The :func:`paired` differences of several ``(a, b)`` pairs as one sample, each pair's seed a row (per
    task when every pair has the same tasks): the mean difference over pairs and seeds, with its interval."""
    tasks = {a.tasks if a.per_task and b.per_task else 0 for a, b in pairs}
    per_task = len(tasks) == 1 and 0 not in tasks
    return estimate([row for a, b in pairs for row in paired_rows(a, b, value, per_task)])


def success_metric(cells: Sequence[tuple[Cell, History]]) -> str:
    """Validation success if every finished cell (every cell, when none finished) logged it at a step > 0,
    else training success: a cell still short of its first validation does not switch the metric."""
    finished = [history for cell, history in cells if cell.done() is not None]
    histories = finished or [history for _, history in cells]
    validated = [metric_series(h, VAL_SUCCESS)[0] for h in histories]
    return VAL_SUCCESS if histories and all((steps > 0).any() for steps in validated) else TRAIN_SUCCESS


def cell_outcomes(cell: Cell, skipped: list[str] | None = None) -> dict[int, ValOutcomes]:
    """step -> the cell's per-task validation outcomes ({} when it recorded none)."""
    return read_val_outcomes(cell.path / OUTCOMES_FILE, skipped)


def task_list(outcomes: Sequence[dict[int, ValOutcomes]]) -> list[int]:
    """Every task (seed) any of the cells validated, sorted: the environment's task list."""
    return sorted({seed for cell in outcomes for record in cell.values() for seed in record.task_seed})


def _per_task(outcomes: dict[int, ValOutcomes], tasks: Sequence[int]) -> dict[str, tuple]:
    """The final and best validations' per-task success (the best: highest mean, the earliest of ties), the
    per-task difference across the seed's largest fall, and the lowest validation after the first.

    A cell validates one environment, so every record counts whatever its data source: a CPU testbed's
    cell is named for the testbed (``frozenlake_long_big``), its episodes for the environment (``frozenlake``)."""
    if not outcomes or not tasks:
        return {}
    success = np.stack([outcomes[step].success(tasks) for step in sorted(outcomes)])
    means = success.mean(axis=1)
    peak, trough = largest_fall(means)
    low = {"low_tasks": tuple(success[1 + int(np.argmin(means[1:]))].tolist())} if len(means) > 1 else {}
    return {
        "final_tasks": tuple(success[-1].tolist()),
        "best_tasks": tuple(success[int(np.argmax(means))].tolist()),
        "drop_tasks": tuple((success[peak] - success[trough]).tolist()),
        **low,
    }


def seed_stats(
    cell: Cell, history: History, metric: str, outcomes: dict[int, ValOutcomes] | None = None,
    tasks: Sequence[int] = (), skipped: list[str] | None = None,
) -> SeedStats:  # fmt: skip
    """The numbers of one cell for success metric ``metric`` (per task: on validation success only)."""
    steps, success = metric_series(history, metric)
    if metric == VAL_SUCCESS and outcomes:
        success, outcomes = _common_validations(cell, steps, success, outcomes, skipped)
    _, valid_format = metric_series(history, FORMAT_VALID)
    train_s = metric_series(history, STEP_TIME)[1]
    optimizer_steps = metric_series(history, OPTIMIZER_STEPS_METRIC)[1]
    done = cell.done(skipped)
    per_task = _per_task(outcomes or {}, tasks) if metric == VAL_SUCCESS else {}
    return SeedStats(
        seed=cell.seed,
        finished=done is not None,
        final=float(success[-1]) if success.size else math.nan,
        best=float(success.max()) if success.size else math.nan,
        collapses=len(collapse_steps(history)),
        format_min=float(valid_format.min()) if valid_format.size else math.nan,
        wall_time_s=float(done["wall_time_s"]) if done else math.nan,
        train_s=float(train_s.sum()) if train_s.size else math.nan,
        validation_s=_validation_time(history),
        curve=tuple(success.tolist()),
        optimizer_steps=float(optimizer_steps.mean()) if optimizer_steps.size else math.nan,
        **per_task,
    )


def _validation_time(history: History) -> float:
    """Seconds of the cell's validations: verl's timer summed, the untimed one before training at the
    timed ones' mean (0 without validations)."""
    validated, _ = metric_series(history, VAL_SUCCESS)
    timed_steps, timed = metric_series(history, VALIDATION_TIME)
    untimed = len(set(validated.tolist()) - set(timed_steps.tolist()))
    return float(timed.sum() + (timed.mean() * untimed if timed.size else 0.0))


def _common_validations(
    cell: Cell, steps: np.ndarray, success: np.ndarray, outcomes: dict[int, ValOutcomes], skipped: list[str] | None
) -> tuple[np.ndarray, dict[int, ValOutcomes]]:
    """The validations that both the metrics and the outcomes recorded, so that the ranking (metrics) and
    the per-task table (outcomes) read the same steps; any other is noted in ``skipped``."""
    logged = set(steps.tolist())
    for step in sorted(logged ^ outcomes.keys()):
        has, lacks = ("metrics.jsonl", OUTCOMES_FILE) if step in logged else (OUTCOMES_FILE, "metrics.jsonl")
        skip(skipped, f"{cell.name}: the validation of step {step} is in {has} but not in {lacks}; left out of both")
    return success[np.isin(steps, list(outcomes))], {step: o for step, o in outcomes.items() if step in logged}


def summarise_methods(
    cells: Sequence[tuple[Cell, History]],
    metric: str,
    tasks: Sequence[int] | None = None,
    outcomes: Sequence[dict[int, ValOutcomes]] | None = None,
    skipped: list[str] | None = None,
) -> list[MethodSummary]:
    """Group one environment's cells by method and rank the methods (best first); per-task values on
    ``tasks`` (default: every task the cells validated), from ``outcomes`` (one per cell, default: read
    from the cell folders); what the readers left out is noted in ``skipped``."""
    outcomes = [cell_outcomes(cell, skipped) for cell, _ in cells] if outcomes is None else outcomes
    tasks = task_list(outcomes) if tasks is None else tasks
    by_method: dict[str, list[SeedStats]] = {}
    for (cell, history), recorded in zip(cells, outcomes, strict=True):
        by_method.setdefault(cell.method, []).append(seed_stats(cell, history, metric, recorded, tasks, skipped))
    summaries = [MethodSummary(m, tuple(sorted(s, key=lambda x: x.seed))) for m, s in by_method.items()]
    return sorted(summaries, key=_rank_key)


def _rank_key(summary: MethodSummary) -> tuple[float, float, float, str]:
    def desc(value: float) -> float:
        return -value if math.isfinite(value) else math.inf

    return desc(summary.final.mean), desc(summary.best.mean), summary.collapses.mean, summary.method
