"""Intervals for success rates over held-out tasks and training seeds.

A success rate measured on T tasks with S training seeds has two sources of noise: which tasks
were drawn and which seeds. :func:`bootstrap_mean` resamples both (seeds, then tasks, with
replacement; the same task draw for every seed, so a paired difference stays paired) and reports
the percentile interval of the mean. Pass a difference of two runs on the same tasks (and seeds)
to get the paired interval of the change, narrower than the two unpaired ones when the runs agree
on which tasks are hard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 4000


@dataclass(frozen=True)
class Interval:
    """A mean and its ``level`` percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    level: float = 0.95

    def text(self, signed: bool = False) -> str:
        f = "{:+.3f}" if signed else "{:.3f}"
        return f"{f.format(self.mean)} [{f.format(self.low)}, {f.format(self.high)}]"


def bootstrap_mean(
    values: np.ndarray, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> Interval:
    """Mean of ``values`` (tasks ``[T]``, or seeds x tasks ``[S, T]``) with a bootstrap interval over
    tasks and seeds; with one seed only tasks are resampled."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"bootstrap_mean: values must be [tasks] or [seeds, tasks], got shape {values.shape}")
    seeds, tasks = values.shape
    rng = np.random.default_rng(seed)
    # a resample as counts: how often each task (seed) was drawn, [samples, tasks] ([samples, seeds])
    task_counts = rng.multinomial(tasks, np.full(tasks, 1 / tasks), size=samples)
    seed_counts = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=samples)
    per_seed = task_counts @ values.T / tasks  # each seed's mean over the drawn tasks: [samples, seeds]
    means = (per_seed * seed_counts).sum(axis=1) / seeds
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(values.mean()), float(low), float(high), level)
