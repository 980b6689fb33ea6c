"""verl's file-logger metrics read back: per-step histories, metric series, seed bands, collapse steps.

Used by the launcher, the quickstart and the arena; drawing them is :mod:`sampo_verl.plots`'s job.

verl's file logger (``trainer.logger=[file]``, path from ``VERL_FILE_LOGGER_PATH``) writes one JSON
line per ``logger.log`` call: ``{"step": 3, "data": {"actor/entropy": 6.2, ...}}``. A step can
appear on several lines (validation before training is logged at step 0; a resumed run logs a step
again), so :func:`read_metrics` merges the lines of a step, later lines winning, and keeps only
finite numbers: any key may be missing at any step, and a loss that does not produce a metric
simply never logs it.

A metric name may be an ``fnmatch`` pattern; its value at a step is then the mean of the keys that
match there. ``VAL_SUCCESS`` (``val-core/*/acc/mean@*``) is verl's validation success averaged over
data sources: our agent loop reports ``acc`` = episode success, and verl files the mean over the
largest number of validation samples per prompt ``n`` under ``val-core/<data_source>/acc/mean@<n>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

History = Mapping[int, Mapping[str, float]]
"""One run's metrics: step -> {metric name: value}, as :func:`read_metrics` returns them."""

VAL_SUCCESS = "val-core/*/acc/mean@*"
TRAIN_SUCCESS = "sampo/success_rate"
COLLAPSE = "collapse/any"


def read_jsonl(path: str | Path, skipped: list[str] | None = None) -> list[tuple[int, Any]]:
    """The JSON values of a JSONL file's lines with their line numbers. Blank lines are ignored; a line
    that is not UTF-8 or not JSON (e.g. the torn last line of a killed run) is left out and, when
    ``skipped`` is given, noted there with the file and line number."""
    records = []
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            records.append((number, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            why = "not UTF-8" if isinstance(error, UnicodeDecodeError) else "not JSON"
            skip(skipped, f"{path}: line {number} is {why} (a torn line?)")
    return records


def skip(skipped: list[str] | None, note: str) -> None:
    """Note what a reader left out, where the caller collects such notes."""
    if skipped is not None:
        skipped.append(note)


def read_metrics(path: str | Path, skipped: list[str] | None = None) -> dict[int, dict[str, float]]:
    """Read a file-logger JSONL file into step -> metrics, sorted by step.

    Lines that are not a JSON object with an integer ``step`` and a ``data`` object (noted in
    ``skipped``, see :func:`read_jsonl`) and values that are not finite numbers are left out.
    """
    history: dict[int, dict[str, float]] = {}
    for number, record in read_jsonl(path, skipped):
        is_record = isinstance(record, dict) and isinstance(record.get("data"), dict)
        step = record.get("step") if is_record else None
        if not (is_number(step) and step == int(step)):
            skip(skipped, f"{path}: line {number} is not a metrics record ({{'step': int, 'data': {{...}}}})")
            continue
        merged = history.setdefault(int(step), {})
        for key, value in record["data"].items():
            if is_number(value):
                merged[key] = float(value)
    return dict(sorted(history.items()))


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what the readers keep of a logged value."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_series(history: History, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps at which ``metric`` (a key or fnmatch pattern) was logged, and its values there."""
    steps, values = [], []
    for step, row in history.items():
        found = _matching(row, metric)
        if found:
            steps.append(step)
            values.append(sum(found) / len(found))
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps, dtype=int)[order], np.asarray(values, dtype=float)[order]


def has_metric(history: History, metric: str) -> bool:
    """Whether ``metric`` (a key or fnmatch pattern) was logged at any step."""
    return any(_matching(row, metric) for row in history.values())


def seed_band(histories: Sequence[History], metric: str) -> tuple[np.ndarray, ...] | None:
    """Aggregate one metric over seeds: ``(steps, mean, low, high)`` or ``None`` if no seed logged it.

    ``steps`` is the union of the seeds' steps; at each step the mean, minimum and maximum are taken
    over the seeds that logged the metric there.
    """
    series = [metric_series(history, metric) for history in histories]
    series = [(s, v) for s, v in series if s.size]
    if not series:
        return None
    steps = np.unique(np.concatenate([s for s, _ in series]))
    table = np.full((len(series), steps.size), np.nan)
    for row, (s, v) in enumerate(series):
        table[row, np.searchsorted(steps, s)] = v
    return steps, np.nanmean(table, axis=0), np.nanmin(table, axis=0), np.nanmax(table, axis=0)


Z95 = 1.959964


def wilson_interval(successes, n: int, z: float = Z95) -> tuple:
    """The Wilson score interval (95% at the default ``z``) of ``successes`` out of ``n`` tasks, elementwise
    for arrays: ``(p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``;
    good at rates near 0 or 1 and for small ``n``; ``(0, 1)`` when ``n`` is 0."""
    if n == 0:
        return 0.0, 1.0
    p = np.clip(np.asarray(successes, dtype=float) / n, 0.0, 1.0)
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = np.clip((centre - half) / (1 + z * z / n), 0, 1), np.clip((centre + half) / (1 + z * z / n), 0, 1)
    return (float(low), float(high)) if low.ndim == 0 else (low, high)


def collapse_steps(history: History) -> list[int]:
    """Steps at which the collapse detector fired (``collapse/any`` > 0)."""
    steps, values = metric_series(history, COLLAPSE)
    return steps[values > 0].tolist()


def _matching(row: Mapping[str, float], metric: str) -> list[float]:
    """Values of ``metric`` in one step's row: the key itself, or every key an fnmatch pattern matches."""
    if not any(char in metric for char in "*?["):
        return [row[metric]] if metric in row else []
    return [value for key, value in row.items() if fnmatchcase(key, metric)]
