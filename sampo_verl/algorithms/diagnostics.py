"""Stability diagnostics: a collapse detector over the per-step metric history.

ARLArena reports that agentic RL runs often collapse after a promising start: the valid-format
rate falls, gradient norms spike and the policy entropy drops towards zero. The detector watches
those signals with simple, configurable rules and says which rule fired at which step.

Rules (each is off when its threshold is ``None``), all read from the metrics verl logs. Each has a
relative condition and an absolute one (``*_floor``; ``None``: relative only), and fires when both hold:
a noisy metric that halves from a high best is not a collapse until it is also low in absolute terms.
- ``format_drop``: ``format_metric`` falls below ``format_drop * best value so far`` and below
  ``format_floor``.
- ``grad_spike``: ``grad_norm_metric`` exceeds ``grad_spike * median of the previous window`` and
  ``grad_norm_floor``.
- ``entropy_collapse``: ``entropy_metric`` falls below ``entropy_collapse * best value so far`` and
  below ``entropy_floor``.
No rule fires during the first ``warmup_steps`` steps (their values still build the history). How the
defaults were chosen: ``tests/algorithms/test_diagnostics.py`` replays recorded healthy and collapsed runs.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from sampo_verl.options import options_section, read_options, section_of


FORMAT_FLOOR = 0.5
GRAD_NORM_FLOOR = 1.0
ENTROPY_FLOOR = 0.005


@options_section("sampo.collapse")
@dataclass
class CollapseConfig:
    """``sampo.collapse.*``: the collapse detector (docs/concepts.md).

    enable: run it; stop_on_collapse: save a checkpoint and stop when a rule fires; warmup_steps: steps
    before any rule may fire; window: the median window of the spike rule. Each rule needs both its
    relative and its absolute condition (a null relative threshold turns the rule off, a null floor
    drops the absolute condition): ``format_metric`` falls below ``format_drop`` x its best and below
    ``format_floor``; ``grad_norm_metric`` exceeds ``grad_spike`` x its window median and
    ``grad_norm_floor``; ``entropy_metric`` falls below ``entropy_collapse`` x its best and below
    ``entropy_floor``.
    """

    enable: bool = True
    stop_on_collapse: bool = False
    warmup_steps: int = 3
    window: int = 10
    format_metric: str = "sampo/format_valid_rate"
    format_drop: Optional[float] = 0.5
    format_floor: Optional[float] = FORMAT_FLOOR
    grad_norm_metric: str = "actor/grad_norm"
    grad_spike: Optional[float] = 10.0
    grad_norm_floor: Optional[float] = GRAD_NORM_FLOOR
    entropy_metric: str = "actor/entropy"
    entropy_collapse: Optional[float] = 0.1
    entropy_floor: Optional[float] = ENTROPY_FLOOR

    def __post_init__(self) -> None:
        for name in ("format_drop", "entropy_collapse"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"sampo.collapse.{name} must be in (0, 1) or null, got {value}")
        if self.grad_spike is not None and self.grad_spike <= 1.0:
            raise ValueError(f"sampo.collapse.grad_spike must be > 1 or null, got {self.grad_spike}")
        for name in ("format_floor", "grad_norm_floor", "entropy_floor"):
            value = getattr(self, name)
            if value is not None and not value > 0.0:
                raise ValueError(f"sampo.collapse.{name} must be > 0 or null, got {value}")
        if self.warmup_steps < 0 or self.window < 1:
            raise ValueError("sampo.collapse.warmup_steps must be >= 0 and sampo.collapse.window >= 1")


def collapse_options(sampo_config: Optional[Mapping[str, Any]]) -> CollapseConfig:
    """``sampo.collapse`` of the ``sampo`` config section (absent: the defaults); unknown keys raise naming them."""
    return read_options(CollapseConfig, section_of(sampo_config, "collapse"), "sampo.collapse")


@dataclass
class CollapseDetector:
    """Feed one metrics dict per step; ``update`` returns the names of the rules that fired."""

    config: CollapseConfig = field(default_factory=CollapseConfig)
    steps_seen: int = 0
    best: dict[str, float] = field(default_factory=dict)  # best value so far per metric of a "drop" rule
    grad_history: deque = field(default_factory=deque)
    events: list[tuple[int, str]] = field(default_factory=list)

    def update(self, step: int, metrics: Mapping[str, Any]) -> list[str]:
        cfg = self.config
        armed = self.steps_seen >= cfg.warmup_steps
        fired: list[str] = []

        if self._fell_below_best(cfg.format_metric, cfg.format_drop, cfg.format_floor, metrics, armed):
            fired.append("format_drop")

        grad = _finite(metrics.get(cfg.grad_norm_metric))
        if grad is not None:
            if armed and cfg.grad_spike is not None and self.grad_history:
                baseline = sorted(self.grad_history)[len(self.grad_history) // 2]
                floor = -math.inf if cfg.grad_norm_floor is None else cfg.grad_norm_floor
                if baseline > 0 and grad > cfg.grad_spike * baseline and grad > floor:
                    fired.append("grad_spike")
            self.grad_history.append(grad)
            while len(self.grad_history) > cfg.window:
                self.grad_history.popleft()

        if self._fell_below_best(cfg.entropy_metric, cfg.entropy_collapse, cfg.entropy_floor, metrics, armed):
            fired.append("entropy_collapse")

        self.steps_seen += 1
        self.events.extend((step, rule) for rule in fired)
        return fired

    def _fell_below_best(
        self, metric: str, fraction: Optional[float], floor: Optional[float], metrics: Mapping[str, Any], armed: bool
    ) -> bool:
        """Whether ``metric`` fell below ``fraction`` x its best value so far and below ``floor`` (then the
        best is updated)."""
        value = _finite(metrics.get(metric))
        if value is None:
            return False
        best = self.best.get(metric, -math.inf)
        self.best[metric] = max(best, value)
        low = floor is None or value < floor
        return armed and fraction is not None and best > 0 and value < fraction * best and low

    def step_metrics(self, fired: list[str]) -> dict[str, float]:
        """Metrics to log for one step: one flag per rule plus the running count of events."""
        out = {f"collapse/{rule}": float(rule in fired) for rule in ("format_drop", "grad_spike", "entropy_collapse")}
        out["collapse/any"] = float(bool(fired))
        out["collapse/num_events"] = float(len(self.events))
        return out


def _finite(value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
