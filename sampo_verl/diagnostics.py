"""Stability diagnostics: a collapse detector over the per-step metric history.

ARLArena reports that agentic RL runs often collapse after a promising start: the valid-format
rate falls, gradient norms spike and the policy entropy drops towards zero. The detector watches
those signals with simple, configurable rules and says which rule fired at which step.

Rules (each is off when its threshold is ``None``), all read from the metrics verl logs:
- ``format_drop``: ``format_metric`` falls below ``format_drop * best value so far``.
- ``grad_spike``: ``grad_norm_metric`` exceeds ``grad_spike * median of the previous window``.
- ``entropy_collapse``: ``entropy_metric`` falls below ``entropy_collapse * best value so far``.
No rule fires during the first ``warmup_steps`` steps (their values still build the history).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional


@dataclass
class CollapseConfig:
    """``sampo.collapse.*`` options."""

    enable: bool = True
    stop_on_collapse: bool = False
    warmup_steps: int = 3
    window: int = 10
    format_metric: str = "sampo/format_valid_rate"
    format_drop: Optional[float] = 0.5
    grad_norm_metric: str = "actor/grad_norm"
    grad_spike: Optional[float] = 10.0
    entropy_metric: str = "actor/entropy"
    entropy_collapse: Optional[float] = 0.1

    def __post_init__(self) -> None:
        for name in ("format_drop", "entropy_collapse"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"sampo.collapse.{name} must be in (0, 1) or null, got {value}")
        if self.grad_spike is not None and self.grad_spike <= 1.0:
            raise ValueError(f"sampo.collapse.grad_spike must be > 1 or null, got {self.grad_spike}")
        if self.warmup_steps < 0 or self.window < 1:
            raise ValueError("sampo.collapse.warmup_steps must be >= 0 and sampo.collapse.window >= 1")

    @classmethod
    def from_mapping(cls, options: Optional[Mapping[str, Any]]) -> "CollapseConfig":
        """Build from a (possibly partial) DictConfig/dict; unknown keys are an error naming them."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown sampo.collapse option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)


@dataclass
class CollapseDetector:
    """Feed one metrics dict per step; ``update`` returns the names of the rules that fired."""

    config: CollapseConfig = field(default_factory=CollapseConfig)
    steps_seen: int = 0
    best_format: float = -math.inf
    best_entropy: float = -math.inf
    grad_history: deque = field(default_factory=deque)
    events: list[tuple[int, str]] = field(default_factory=list)

    def update(self, step: int, metrics: Mapping[str, Any]) -> list[str]:
        cfg = self.config
        armed = self.steps_seen >= cfg.warmup_steps
        fired: list[str] = []

        fmt = _finite(metrics.get(cfg.format_metric))
        if fmt is not None:
            if armed and cfg.format_drop is not None and self.best_format > 0:
                if fmt < cfg.format_drop * self.best_format:
                    fired.append("format_drop")
            self.best_format = max(self.best_format, fmt)

        grad = _finite(metrics.get(cfg.grad_norm_metric))
        if grad is not None:
            if armed and cfg.grad_spike is not None and self.grad_history:
                baseline = sorted(self.grad_history)[len(self.grad_history) // 2]
                if baseline > 0 and grad > cfg.grad_spike * baseline:
                    fired.append("grad_spike")
            self.grad_history.append(grad)
            while len(self.grad_history) > cfg.window:
                self.grad_history.popleft()

        ent = _finite(metrics.get(cfg.entropy_metric))
        if ent is not None:
            if armed and cfg.entropy_collapse is not None and self.best_entropy > 0:
                if ent < cfg.entropy_collapse * self.best_entropy:
                    fired.append("entropy_collapse")
            self.best_entropy = max(self.best_entropy, ent)

        self.steps_seen += 1
        self.events.extend((step, rule) for rule in fired)
        return fired

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
