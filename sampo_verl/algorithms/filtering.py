"""Dynamic filtering of uid groups that carry no learning signal, with refill over generation rounds.

the paper's "Dynamic filtering": a group (``uid``) carries no signal when every episode in it has the
same final reward (criterion ``reward``, DAPO). With GiGPO a group can have equal episode rewards
and still non-zero step advantages, so criterion ``advantage`` drops a group only when every one
of its samples has a zero advantage. Both use the group's *spread*:

- ``reward``: ``max - min`` of the group's episode rewards;
- ``advantage``: ``max |A|`` over the group's samples (and tokens, for a (B, T) tensor).

A group is kept when its spread exceeds ``atol``. The SAMPO trainer's replay buffer
(:mod:`sampo_verl.trainer.replay_buffer`) applies these verdicts over generation rounds: it evicts
signal-free groups until its round limit, then tops a short batch up with signal-free groups in
arrival order (``topup_order=arrival``, as the ARLArena release fills its last round) or the
least-bad first (``topup_order=spread``: largest spread).

Config: ``algorithm.filter_groups`` (see ``FilterOptions``). verl's ``enable`` and
``max_num_gen_batches`` keep their meaning; ``criterion``, ``cold_start_steps`` and ``atol`` are
ours (``sampo_verl.main_ppo``'s config has them; on verl's own entry point add them with
``+algorithm.filter_groups.<key>=...``); verl's ``metric`` and
``max_inflight_gen_batches`` belong to verl's own replay-buffer filter and are not read here.
Note that ``enable=true`` also switches on verl v1's own reward filter in its replay buffer, which
would drop equal-reward groups before the ``advantage`` criterion sees them: the trainer using
this module must replace that buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

from sampo_verl.options import options_section, read_options, section_of

CRITERIA = ("reward", "advantage")
TOPUP_ORDERS = ("arrival", "spread")
FLAG = "algorithm.filter_groups"
_VERL_ONLY_KEYS = ("metric", "max_inflight_gen_batches", "_target_")


@options_section(FLAG, ignore=_VERL_ONLY_KEYS)
@dataclass(frozen=True)
class FilterOptions:
    """``algorithm.filter_groups.*`` as read by this module.

    enable: filter at all. criterion: ``reward`` or ``advantage``. max_num_gen_batches: generation
    rounds per training step before topping up (<= 0: no limit, as in verl). cold_start_steps:
    training steps (verl's ``global_steps``, counted from 1) that run unfiltered. atol: spread at or
    below which a group counts as signal-free. topup_order: which signal-free groups top up a short
    batch: ``arrival`` (the release) or ``spread`` (largest spread first).
    """

    enable: bool = False
    criterion: str = "reward"
    max_num_gen_batches: int = 0
    cold_start_steps: int = 0
    atol: float = 1e-6
    topup_order: str = "arrival"

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"algorithm.filter_groups.criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.cold_start_steps < 0:
            raise ValueError(f"algorithm.filter_groups.cold_start_steps must be >= 0, got {self.cold_start_steps}")
        if not self.atol >= 0.0:
            raise ValueError(f"algorithm.filter_groups.atol must be >= 0, got {self.atol}")
        if self.topup_order not in TOPUP_ORDERS:
            raise ValueError(
                f"algorithm.filter_groups.topup_order must be one of {TOPUP_ORDERS}, got {self.topup_order!r}"
            )

    def active(self, global_step: int) -> bool:
        """Whether filtering applies at this training step (after the cold start)."""
        return self.enable and global_step > self.cold_start_steps


@dataclass(frozen=True)
class GroupVerdict:
    """Per-group outcome of one generation round; groups in order of first appearance."""

    uids: np.ndarray  # (G,) group ids
    keep: np.ndarray  # (G,) bool: carries signal
    spread: np.ndarray  # (G,) criterion spread (higher = more signal)


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
    return GroupVerdict(uids=uniques[arrival], keep=spread > atol, spread=spread)


def filter_options(algorithm_config: Optional[Mapping[str, Any]]) -> FilterOptions:
    """``algorithm.filter_groups`` of verl's algorithm config (DictConfig, AlgoConfig or dict; absent: disabled)."""
    return read_options(FilterOptions, section_of(algorithm_config, "filter_groups"), FLAG, ignore=_VERL_ONLY_KEYS)
