"""Dynamic filtering of uid groups that carry no learning signal, with refill over generation rounds.

SPEC "Dynamic filtering": a group (``uid``) carries no signal when every episode in it has the
same final reward (criterion ``reward``, DAPO). With GiGPO a group can have equal episode rewards
and still non-zero step advantages, so criterion ``advantage`` drops a group only when every one
of its samples has a zero advantage. Both use the group's *spread*:

- ``reward``: ``max - min`` of the group's episode rewards;
- ``advantage``: ``max |A|`` over the group's samples (and tokens, for a (B, T) tensor).

A group is kept when its spread exceeds ``atol``. "Least bad" dropped groups (used to top up a
batch that stayed short) are those with the largest spread, ties broken by the larger mean
``|A|`` (when advantages are given), then by arrival order.

Config: ``algorithm.filter_groups`` (see ``FilterOptions``). verl's ``enable`` and
``max_num_gen_batches`` keep their meaning; ``criterion``, ``cold_start_steps`` and ``atol`` are
ours (add them with ``+algorithm.filter_groups.<key>=...``); verl's ``metric`` and
``max_inflight_gen_batches`` belong to verl's own replay-buffer filter and are not read here.
Note that ``enable=true`` also switches on verl v1's own reward filter in its replay buffer, which
would drop equal-reward groups before the ``advantage`` criterion sees them: the trainer using
this module must replace that buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional

import numpy as np
import torch

CRITERIA = ("reward", "advantage")
_VERL_ONLY_KEYS = {"metric", "max_inflight_gen_batches", "_target_"}


@dataclass(frozen=True)
class FilterOptions:
    """``algorithm.filter_groups.*`` as read by this module.

    enable: filter at all. criterion: ``reward`` or ``advantage``. max_num_gen_batches: generation
    rounds per training step before topping up (<= 0: no limit, as in verl). cold_start_steps:
    training steps (verl's ``global_steps``, counted from 1) that run unfiltered. atol: spread at or
    below which a group counts as signal-free.
    """

    enable: bool = False
    criterion: str = "reward"
    max_num_gen_batches: int = 0
    cold_start_steps: int = 0
    atol: float = 1e-6

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"algorithm.filter_groups.criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.cold_start_steps < 0:
            raise ValueError(f"algorithm.filter_groups.cold_start_steps must be >= 0, got {self.cold_start_steps}")
        if not self.atol >= 0.0:
            raise ValueError(f"algorithm.filter_groups.atol must be >= 0, got {self.atol}")

    @classmethod
    def from_algorithm_config(cls, algorithm_config: Optional[Mapping[str, Any]]) -> "FilterOptions":
        """Read ``algorithm.filter_groups`` (DictConfig, FilterGroupsConfig or dict; absent -> disabled)."""
        section = (algorithm_config or {}).get("filter_groups", None) or {}
        options = {key: section[key] for key in section if key not in _VERL_ONLY_KEYS}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown algorithm.filter_groups option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)

    def active(self, global_step: int) -> bool:
        """Whether filtering applies at this training step (after the cold start)."""
        return self.enable and global_step > self.cold_start_steps


@dataclass(frozen=True)
class GroupVerdict:
    """Per-group outcome of one generation round; groups in order of first appearance."""

    uids: np.ndarray  # (G,) group ids
    keep: np.ndarray  # (G,) bool: carries signal
    spread: np.ndarray  # (G,) criterion spread (higher = more signal)
    tiebreak: np.ndarray  # (G,) mean |advantage| (0 without advantages)
    row_group: np.ndarray  # (B,) group position of each row


def _per_row(values: Any, name: str, n_rows: Optional[int] = None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to(torch.float64).cpu().numpy()
    out = np.asarray(values, dtype=np.float64)
    if out.ndim == 2:  # (B, T) token advantages, zero off the response mask
        out = np.abs(out).max(axis=1)
    if out.ndim != 1 or (n_rows is not None and len(out) != n_rows):
        raise ValueError(f"{name} must hold one value per row ({n_rows}), got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} holds NaN/inf at rows {np.flatnonzero(~np.isfinite(out))[:5].tolist()}")
    return out


def judge_groups(
    uid: np.ndarray,
    episode_reward: Any,
    advantages: Any = None,
    *,
    criterion: str = "reward",
    atol: float = 1e-6,
) -> GroupVerdict:
    """Decide which uid groups carry signal.

    uid (B,), episode_reward (B,); advantages (B,) per row or (B, T) token advantages (required
    for ``criterion="advantage"``). Vectorised: np.unique + ufunc.at reductions per group.
    """
    uid = np.asarray(uid)
    if uid.ndim != 1 or len(uid) == 0:
        raise ValueError(f"uid must be a non-empty 1-D array, got shape {uid.shape}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    reward = _per_row(episode_reward, "episode_reward", len(uid))
    abs_adv = None if advantages is None else np.abs(_per_row(advantages, "advantages", len(uid)))
    if criterion == "advantage" and abs_adv is None:
        raise ValueError("criterion 'advantage' needs the advantages of the round")

    uniques, first, inverse = np.unique(uid, return_index=True, return_inverse=True)
    arrival = np.argsort(first, kind="stable")  # group positions in order of first appearance
    rank = np.empty_like(arrival)
    rank[arrival] = np.arange(len(arrival))
    row_group = rank[inverse.reshape(-1)]
    n_groups = len(uniques)

    if criterion == "reward":
        high = np.full(n_groups, -np.inf)
        low = np.full(n_groups, np.inf)
        np.maximum.at(high, row_group, reward)
        np.minimum.at(low, row_group, reward)
        spread = high - low
    else:
        spread = np.zeros(n_groups)
        np.maximum.at(spread, row_group, abs_adv)
    if abs_adv is None:
        tiebreak = np.zeros(n_groups)
    else:
        tiebreak = np.bincount(row_group, weights=abs_adv, minlength=n_groups) / np.bincount(row_group)
    return GroupVerdict(
        uids=uniques[arrival], keep=spread > atol, spread=spread, tiebreak=tiebreak, row_group=row_group
    )


@dataclass(frozen=True)
class FilterResult:
    """Rows to train on from each generation round, and ``filter/*`` metrics."""

    rows: list[np.ndarray]  # per round: sorted row indices to keep from that round's batch
    metrics: dict[str, float]


class GroupAccumulator:
    """Collect signal-carrying groups over generation rounds of one training step.

    Usage per training step: ``acc = GroupAccumulator(options, target_groups, global_step)``; then
    ``while not acc.done: acc.add_round(uid, episode_reward, advantages)`` after each generation
    round; finally ``acc.result()`` selects, per round, the rows to concatenate. Kept groups are
    taken in arrival order up to ``target_groups``; when the round limit is reached short of the
    target, the least-bad dropped groups top the batch up. Before the cold start ends (or with
    ``enable=False``) the first round is kept whole.
    """

    def __init__(self, options: FilterOptions, target_groups: int, global_step: int):
        if target_groups < 1:
            raise ValueError(f"target_groups must be >= 1, got {target_groups}")
        self.options = options
        self.target_groups = target_groups
        self.filtering = options.active(global_step)
        self._verdicts: list[GroupVerdict] = []

    @property
    def rounds(self) -> int:
        return len(self._verdicts)

    @property
    def kept_groups(self) -> int:
        return int(sum(v.keep.sum() for v in self._verdicts))

    @property
    def done(self) -> bool:
        if not self._verdicts:
            return False
        if not self.filtering or self.kept_groups >= self.target_groups:
            return True
        limit = self.options.max_num_gen_batches
        return limit > 0 and self.rounds >= limit

    def add_round(self, uid: np.ndarray, episode_reward: Any, advantages: Any = None) -> None:
        """Judge one generation round's groups (uid, episode_reward (B,), advantages (B,) or (B, T))."""
        if self.done:
            raise RuntimeError("GroupAccumulator is done: call result() instead of adding rounds")
        verdict = judge_groups(
            uid, episode_reward, advantages, criterion=self.options.criterion, atol=self.options.atol
        )
        if not self.filtering:
            verdict = replace(verdict, keep=np.ones_like(verdict.keep))
        self._verdicts.append(verdict)

    def result(self) -> FilterResult:
        """Rows to keep per round and metrics ``filter/{active, rounds, kept_groups, dropped_groups,
        topped_up_groups, surplus_groups, missing_groups}``."""
        if not self.done:
            raise RuntimeError("GroupAccumulator.result() before done: add more rounds")
        n_groups = [len(v.keep) for v in self._verdicts]
        round_of = np.repeat(np.arange(self.rounds), n_groups)
        group_of = np.concatenate([np.arange(n) for n in n_groups])
        keep = np.concatenate([v.keep for v in self._verdicts])
        if not self.filtering:
            chosen = np.ones_like(keep)
            topped_up = 0
        else:
            kept_idx = np.flatnonzero(keep)[: self.target_groups]  # arrival order
            dropped_idx = np.flatnonzero(~keep)
            spread = np.concatenate([v.spread for v in self._verdicts])[dropped_idx]
            tiebreak = np.concatenate([v.tiebreak for v in self._verdicts])[dropped_idx]
            least_bad = dropped_idx[np.lexsort((dropped_idx, -tiebreak, -spread))]
            top_up = least_bad[: max(self.target_groups - len(kept_idx), 0)]
            topped_up = len(top_up)
            chosen = np.zeros_like(keep)
            chosen[kept_idx] = True
            chosen[top_up] = True

        rows = []
        for r, verdict in enumerate(self._verdicts):
            chosen_groups = group_of[(round_of == r) & chosen]
            rows.append(np.flatnonzero(np.isin(verdict.row_group, chosen_groups)))
        kept = int(min(keep.sum(), self.target_groups)) if self.filtering else len(keep)
        metrics = {
            "filter/active": float(self.filtering),
            "filter/rounds": float(self.rounds),
            "filter/kept_groups": float(kept),
            "filter/dropped_groups": float((~keep).sum()),
            "filter/topped_up_groups": float(topped_up),
            "filter/surplus_groups": float(max(int(keep.sum()) - self.target_groups, 0)) if self.filtering else 0.0,
            "filter/missing_groups": float(max(self.target_groups - kept - topped_up, 0)),
        }
        return FilterResult(rows=rows, metrics=metrics)
