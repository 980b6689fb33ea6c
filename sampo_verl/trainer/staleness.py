"""Off-policy staleness of a training batch, per turn and per episode.

Every turn sample carries the weight versions its generation ran on: verl's rollout clients put
``min_global_steps`` / ``max_global_steps`` in the output's extra fields (equal unless the request was
aborted and resumed under new weights: partial rollout), and the environment agent loop keeps them on
each turn. At training step ``G`` the policy being updated is version ``G - 1`` (weights sync after
each step), so a turn generated on versions ``[lo, hi]`` is ``(G - 1) - hi`` versions stale (its
freshest tokens; verl's ``trajectory_staleness`` convention). An episode spans versions when its turns
together ran on more than one (under partial rollout an episode can outlive a weight update).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sampo_verl.agent import turns

MIN_VERSION = "min_global_steps"
MAX_VERSION = "max_global_steps"
PREFIX = "sampo/staleness"
OPTIMIZER_STEPS_METRIC = f"{PREFIX}/optimizer_steps"  # per rollout batch: epochs x mini-batches
EVICTED_METRIC = "training/off_policy/evicted_samples"  # verl's async buffer: groups dropped as too stale
DIST_BINS = (0, 1, 2)  # turn staleness 0, 1, 2, then "3+"


def staleness_metrics(extra: Sequence[Mapping[str, Any]], global_steps: int) -> dict[str, float]:
    """Staleness metrics of the real turn samples ``extra`` (their extra fields) at training step ``global_steps``.

    - ``turn_mean`` / ``turn_max``: versions between each turn's newest weights and the policy being trained;
    - ``turn_dist/{0,1,2,3+}``: the fraction of turns at each staleness;
    - ``turn_span_frac``: turns whose own generation ran on more than one version;
    - ``episode_span_frac``: episodes (``traj_uid``) whose turns ran on more than one version, and
      ``episode_versions_mean``: versions per episode (``max - min + 1`` over its turns).

    Empty when there are no turns or a turn carries no versions (a server that reports none).
    """
    if not extra or any(ef.get(MIN_VERSION) is None or ef.get(MAX_VERSION) is None for ef in extra):
        return {}
    lo = np.array([int(ef[MIN_VERSION]) for ef in extra])
    hi = np.array([int(ef[MAX_VERSION]) for ef in extra])
    staleness = (global_steps - 1) - hi
    metrics = {
        f"{PREFIX}/turn_mean": float(staleness.mean()),
        f"{PREFIX}/turn_max": float(staleness.max()),
        f"{PREFIX}/turn_span_frac": float((hi > lo).mean()),
    }
    for value in DIST_BINS:
        metrics[f"{PREFIX}/turn_dist/{value}"] = float((staleness == value).mean())
    metrics[f"{PREFIX}/turn_dist/{DIST_BINS[-1] + 1}+"] = float((staleness > DIST_BINS[-1]).mean())

    episodes: dict[str, tuple[int, int]] = {}
    for ef, turn_lo, turn_hi in zip(extra, lo.tolist(), hi.tolist(), strict=True):
        uid = str(ef.get(turns.TRAJ_UID))
        first, last = episodes.get(uid, (turn_lo, turn_hi))
        episodes[uid] = (min(first, turn_lo), max(last, turn_hi))
    versions = np.array([last - first + 1 for first, last in episodes.values()])
    metrics[f"{PREFIX}/episode_span_frac"] = float((versions > 1).mean())
    metrics[f"{PREFIX}/episode_versions_mean"] = float(versions.mean())
    return metrics


def dropped_metrics(metrics: Mapping[str, Any], trained_groups: int) -> dict[str, float]:
    """``dropped_group_frac``: of the finished groups the buffer looked at, the fraction it dropped for staleness
    (``trainer.v1.sampler.max_off_policy_strategy=drop``), from verl's eviction count; 0 when none was."""
    dropped = float(metrics.get(EVICTED_METRIC, 0.0))
    total = dropped + trained_groups
    return {f"{PREFIX}/dropped_group_frac": dropped / total if total else 0.0}
