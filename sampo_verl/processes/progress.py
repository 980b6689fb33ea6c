"""Progress bars (tqdm, with ETA) over the steps verl's file logger writes while a trainer runs.

The package's commands send verl's own console output to a log file and show these instead: one bar
per phase (behaviour cloning, RL, an arena cell), a line above it at each validation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS, metric_series, read_metrics

Describe = Callable[[int, dict[str, float]], tuple[str | None, str | None]]


class StepProgress:
    """A progress bar (tqdm, with ETA) over the steps a verl file logger writes while a run goes on.

    A thread polls ``metrics_file``; each new step goes through ``describe(step, metrics)``, which
    returns ``(postfix, note)``: the bar's postfix (None: not a step to count yet) and a line to print
    above the bar (None: nothing to say).
    """

    def __init__(
        self,
        metrics_file: Path,
        total: int | None,
        desc: str,
        describe: Describe,
        every: float = 2.0,
    ):
        self.metrics_file, self.describe, self.every = metrics_file, describe, every
        self.bar = tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
        self._stop = threading.Event()
        self._shown: set[int] = set()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> StepProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self.bar.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self._poll()

    def _poll(self) -> None:
        history = read_metrics(self.metrics_file) if self.metrics_file.exists() else {}
        for step, metrics in sorted(history.items()):
            if step in self._shown:
                continue
            postfix, note = self.describe(step, metrics)
            if note is not None:
                self.bar.write(note)
            if postfix is not None or note is not None:
                self._shown.add(step)
            if postfix is not None:
                done = step if self.bar.total is None else min(step, self.bar.total)
                self.bar.update(max(0, done - self.bar.n))
                self.bar.set_postfix_str(postfix)


def rl_progress(total: int, prefix: str = "  RL", start: str = "behaviour cloning") -> Describe:
    """The RL bar's postfix (train success, valid format) and a line at each validation
    (``prefix step 4/12: held-out success ...``; step 0 is named ``start``)."""

    def describe(step: int, m: dict[str, float]) -> tuple[str | None, str | None]:
        val = step_value(m, VAL_SUCCESS)
        note = None if val is None else rl_validation_line(step, total, val, prefix, start)
        if step == 0 or TRAIN_SUCCESS not in m:
            return None, note
        valid_format = m.get("sampo/format_valid_rate", float("nan"))
        return f"train success {m[TRAIN_SUCCESS]:.3f}, valid format {valid_format:.3f}", note

    return describe


def rl_validation_line(step: int, total: int, success: float, prefix: str = "  RL", start: str = "") -> str:
    line = f"{prefix} step {step}/{total}: held-out success {success:.3f}"
    return f"{line} ({start})" if step == 0 and start else line


def step_value(metrics: dict[str, float], metric: str) -> float | None:
    """``metric`` (a key or pattern, see :mod:`sampo_verl.metrics`) in one step's metrics, or None."""
    _, values = metric_series({0: metrics}, metric)
    return float(values[0]) if values.size else None


def bc_progress(step: int, m: dict[str, float]) -> tuple[str | None, str | None]:
    loss = m.get("train/loss")
    return (None if loss is None else f"loss {loss:.4f}"), None
