"""The multi-turn estimators' shared ground: their options (``algorithm.<estimator>``), their registry
(:data:`MULTI_TURN_ESTIMATORS`: what each reads) and the per-turn fields of a batch gathered into
arrays (:func:`collect_turns`). The estimators themselves are :mod:`sampo_verl.algorithms.advantages`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
from verl.trainer.ppo.core_algos import register_adv_est

from sampo_verl.agent import turns as schema
from sampo_verl.options import options_section, read_options, section_of

UID = "uid"
TRAJ_UID = schema.TRAJ_UID
STEP = schema.STEP
ANCHOR = schema.ANCHOR
STEP_REWARD = schema.STEP_REWARD
EPISODE_REWARD = schema.EPISODE_REWARD
ACTION_VALID = schema.ACTION_VALID
ENTROPY = "entropy"

EPS = 1e-6
MODES = ("mean_norm", "mean_std_norm")
EPISODE_STATS = ("steps", "episodes")
PENALTY_PLACEMENTS = ("turn", "discounted")
SIMILARITY_RULES = ("sorted", "release")

TURN_FIELDS = frozenset({TRAJ_UID, STEP, EPISODE_REWARD, ACTION_VALID})  # every multi-turn estimator reads these
ENTROPY_SOURCE = (
    "verl's old-log-prob pass (calculate_entropy=True; absent with "
    "algorithm.rollout_correction.bypass_mode=true), passed on by the trainer"
)


@dataclass(frozen=True)
class EpisodeOptions:
    """Episode-term options shared by all three estimators (``algorithm.grpo_steps.*``).

    mode: group normalisation, ``mean_norm`` (subtract the group mean) or ``mean_std_norm`` (also divide
    by the group's standard deviation); episode_stats: the group statistics over all turn samples
    (``steps``) or one value per episode (``episodes``); invalid_penalty: subtracted per invalid turn from
    the episode's score (and, in GiGPO, from that turn's step reward).
    """

    mode: str = "mean_std_norm"
    episode_stats: str = "steps"
    invalid_penalty: float = 0.1

    def check(self, prefix: str) -> None:
        """Range checks; errors name ``<prefix>.<option>`` (the reader passes ``algorithm.<estimator>``)."""
        if self.mode not in MODES:
            raise ValueError(f"{prefix}.mode must be one of {MODES}, got {self.mode!r}")
        if self.episode_stats not in EPISODE_STATS:
            raise ValueError(f"{prefix}.episode_stats must be one of {EPISODE_STATS}, got {self.episode_stats!r}")
        if not (np.isfinite(self.invalid_penalty) and self.invalid_penalty >= 0.0):
            raise ValueError(f"{prefix}.invalid_penalty must be finite and >= 0, got {self.invalid_penalty}")


@dataclass(frozen=True)
class GiGPOOptions(EpisodeOptions):
    """``algorithm.gigpo.*``: episode options plus the step term's weight, the invalid-action penalty's
    placement in the step returns and optional anchor similarity.

    penalty_placement: ``turn`` (the release's): ``G_t = sum_k gamma^k r_{t+k} - p_t``, the penalty lowers
    only the return of its own turn; ``discounted``: ``G_t = sum_k gamma^k (r_{t+k} - p_{t+k})``, it also
    lowers every earlier turn's return by ``gamma^k p``.
    similarity_rule (with ``similarity_threshold``): ``sorted``: the distinct anchors of a uid group in
    sorted order, difflib with autojunk off, so the grouping does not depend on the row order;
    ``release``: the release's rule, anchors in batch order, difflib's defaults (autojunk on, which for
    anchors of 200+ characters ignores their most frequent characters), each compared as
    ``SequenceMatcher(None, anchor, first member of the cluster)``.
    """

    step_weight: float = 1.0
    penalty_placement: str = "turn"
    similarity_threshold: Optional[float] = None
    similarity_rule: str = "sorted"

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if not np.isfinite(self.step_weight):
            raise ValueError(f"{prefix}.step_weight must be finite, got {self.step_weight}")
        if self.penalty_placement not in PENALTY_PLACEMENTS:
            raise ValueError(
                f"{prefix}.penalty_placement must be one of {PENALTY_PLACEMENTS}, got {self.penalty_placement!r}"
            )
        if self.similarity_threshold is not None and not 0.0 < self.similarity_threshold < 1.0:
            raise ValueError(
                f"{prefix}.similarity_threshold must be in (0, 1) or null, got {self.similarity_threshold}"
            )
        if self.similarity_rule not in SIMILARITY_RULES:
            raise ValueError(
                f"{prefix}.similarity_rule must be one of {SIMILARITY_RULES}, got {self.similarity_rule!r}"
            )


@dataclass(frozen=True)
class EMPGOptions(EpisodeOptions):
    """``algorithm.empg.*``: episode options plus EMPG's entropy modulation.

    k: sharpness of the confidence scale ``g(H) = exp(-k H) / mean(exp(-k H))`` over the batch's
    min-max-normalised step entropies; k_f and zeta: the future-clarity bonus ``zeta exp(-k_f H_{t+1})``
    from the next step's entropy.
    """

    k: float = 1.0
    k_f: float = 1.0
    zeta: float = 0.05

    def check(self, prefix: str) -> None:
        super().check(prefix)
        for name in ("k", "k_f", "zeta"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{prefix}.{name} must be finite and >= 0, got {value}")


@dataclass(frozen=True)
class MultiTurnEstimator:
    """A multi-turn estimator as registered: its options and the fields it reads.

    ``turn_fields``: per-turn ``non_tensor_batch`` fields (names of :data:`sampo_verl.agent.turns.SCHEMA`)
    besides verl's ``uid``; ``tensor_fields``: ``batch`` tensors it reads beyond verl's rewards and
    response mask, each with where it comes from. An estimator without tensor fields can be computed
    from the rollout alone, before the old-log-prob pass (the group filter's ``advantage`` criterion).
    """

    name: str
    options: type[EpisodeOptions]
    turn_fields: frozenset[str]
    tensor_fields: Mapping[str, str] = field(default_factory=dict)

    def read_options(self, algorithm_config: Optional[Mapping[str, Any]]) -> EpisodeOptions:
        """``algorithm.<name>`` of verl's algorithm config (DictConfig or AlgoConfig); bad options name the flag."""
        return read_options(self.options, section_of(algorithm_config, self.name), f"algorithm.{self.name}")

    @property
    def at_sampling_time(self) -> bool:
        return not self.tensor_fields


MULTI_TURN_ESTIMATORS: dict[str, MultiTurnEstimator] = {}


def register_multi_turn(
    name: str,
    options: type[EpisodeOptions],
    turn_fields: frozenset[str] = TURN_FIELDS,
    tensor_fields: Optional[Mapping[str, str]] = None,
) -> Callable[[Callable], Callable]:
    """Register an estimator in verl (``register_adv_est``), in :data:`MULTI_TURN_ESTIMATORS` and its
    options as the config section ``algorithm.<name>``."""

    def decorator(fn: Callable) -> Callable:
        MULTI_TURN_ESTIMATORS[name] = MultiTurnEstimator(
            name, options, frozenset(turn_fields), dict(tensor_fields or {})
        )
        options_section(f"algorithm.{name}")(options)
        return register_adv_est(name)(fn)

    return decorator


def estimator(name: str) -> MultiTurnEstimator:
    """The registration of multi-turn estimator ``name``; an unknown name fails listing the known ones."""
    if name not in MULTI_TURN_ESTIMATORS:
        raise ValueError(f"unknown multi-turn estimator {name!r}; known: {sorted(MULTI_TURN_ESTIMATORS)}")
    return MULTI_TURN_ESTIMATORS[name]


def required_fields(adv_estimator: str) -> set[str]:
    """Per-turn ``non_tensor_batch`` fields ``adv_estimator`` reads (besides verl's ``uid``)."""
    return set(estimator(adv_estimator).turn_fields)


def required_tensor_fields(adv_estimator: str) -> set[str]:
    """``batch`` tensors ``adv_estimator`` reads beyond verl's rewards and response mask."""
    return set(estimator(adv_estimator).tensor_fields)


def validate_fields(
    adv_estimator: str, non_tensor_batch: Optional[Mapping[str, Any]], batch: Optional[Mapping[str, Any]] = None
) -> None:
    """Raise a ValueError naming every field ``adv_estimator`` needs that the batch lacks, and its source."""
    registration = estimator(adv_estimator)
    missing = sorted(registration.turn_fields - set(non_tensor_batch or {}))
    sources = [f"{name}: {schema.source(name)}" for name in missing]
    missing_tensors = sorted(set(registration.tensor_fields) - set(batch.keys() if batch is not None else ()))
    sources += [f"{name}: {registration.tensor_fields[name]}" for name in missing_tensors]
    if missing or missing_tensors:
        raise ValueError(
            f"advantage estimator {adv_estimator!r} needs per-turn field(s) {missing + missing_tensors} that the "
            f"batch lacks (produced by {'; '.join(sources)})"
        )


@dataclass(frozen=True)
class Turns:
    """Validated per-turn arrays of one batch (rows in batch order) and their episode layout."""

    group: np.ndarray  # uid group id per row, 0..n_groups-1
    episode: np.ndarray  # episode id per row, 0..n_episodes-1
    order: np.ndarray  # rows sorted by (episode, step)
    position: np.ndarray  # turn position within its episode, for the rows in ``order``
    score: np.ndarray  # R_i = episode_reward - invalid penalty
    penalty: np.ndarray  # p_i = invalid_penalty * [turn i invalid]
    n_groups: int
    n_episodes: int

    @property
    def n_rows(self) -> int:
        return len(self.group)

    def next_row(self) -> np.ndarray:
        """Row of the next turn of the same episode, -1 for an episode's last turn."""
        sorted_episode = self.episode[self.order]
        nxt = np.full(self.n_rows, -1)
        same = sorted_episode[1:] == sorted_episode[:-1]
        nxt[self.order[:-1][same]] = self.order[1:][same]
        return nxt


def row_codes(values: Any, name: str, n_rows: int) -> np.ndarray:
    """Factorise a per-row field of hashable values into ids 0..n_unique-1 (equal values, equal ids).

    ``map(dict.setdefault, values, range(n))`` gives each row the index of the first row holding an
    equal value, in C (no Python-level loop per row); a cumulative count of first rows makes the ids
    dense. Ids follow first appearance, which changes no result.
    """
    values = np.asarray(values, dtype=object)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(f"field {name!r} must hold one value per row ({n_rows}), got shape {values.shape}")
    try:
        first = np.fromiter(map({}.setdefault, values, range(n_rows)), dtype=np.int64, count=n_rows)
    except TypeError as err:
        raise ValueError(f"field {name!r} must hold hashable values (e.g. str): {err}") from err
    return (np.cumsum(first == np.arange(n_rows)) - 1)[first]


def row_floats(values: Any, name: str, n_rows: int) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"field {name!r} must hold numbers: {err}") from err
    if len(out) != n_rows:
        raise ValueError(f"field {name!r} must hold one value per row ({n_rows}), got {len(out)}")
    if not np.isfinite(out).all():
        raise ValueError(f"field {name!r} holds NaN/inf at rows {np.flatnonzero(~np.isfinite(out))[:5].tolist()}")
    return out


def collect_turns(index: Any, non_tensor_batch: Mapping[str, Any], invalid_penalty: float, adv_estimator: str) -> Turns:
    """Validate the per-turn fields and lay the rows out by episode; bad input raises ValueError.

    Call ``validate_fields`` first: this assumes the fields exist.
    """
    if index is None:
        raise ValueError(f"advantage estimator {adv_estimator!r} needs the uid of every row (verl's index)")
    n_rows = len(index)
    if n_rows == 0:
        raise ValueError(f"advantage estimator {adv_estimator!r} got an empty batch")
    group = row_codes(index, UID, n_rows)
    episode = row_codes(non_tensor_batch[TRAJ_UID], TRAJ_UID, n_rows)
    try:
        step = np.asarray(non_tensor_batch[STEP]).astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"field {STEP!r} must hold integers: {err}") from err
    episode_reward = row_floats(non_tensor_batch[EPISODE_REWARD], EPISODE_REWARD, n_rows)
    valid = np.asarray(non_tensor_batch[ACTION_VALID]).astype(bool).reshape(-1)
    if len(step) != n_rows or len(valid) != n_rows:
        raise ValueError(f"fields {STEP!r} and {ACTION_VALID!r} must hold one value per row ({n_rows})")

    order = np.lexsort((step, episode))
    sorted_episode, sorted_step = episode[order], step[order]
    same_episode = sorted_episode[1:] == sorted_episode[:-1]
    repeated = same_episode & (sorted_step[1:] == sorted_step[:-1])
    if repeated.any():
        rows = order[1:][repeated][:5]
        pairs = [(non_tensor_batch[TRAJ_UID][row], int(step[row])) for row in rows]
        raise ValueError(f"two rows share the same ({TRAJ_UID}, {STEP}), e.g. {pairs}: each turn must appear once")
    starts = np.flatnonzero(np.r_[True, ~same_episode])
    lengths = np.diff(np.r_[starts, n_rows])
    position = np.arange(n_rows) - np.repeat(starts, lengths)

    n_episodes = len(starts)
    # one uid per episode and one episode reward per episode
    first_row = order[starts]
    if (group[order] != np.repeat(group[first_row], lengths)).any():
        raise ValueError(f"an episode ({TRAJ_UID}) spans several uid groups")
    if (episode_reward[order] != np.repeat(episode_reward[first_row], lengths)).any():
        raise ValueError(f"field {EPISODE_REWARD!r} differs between turns of one episode")

    return Turns(
        group=group,
        episode=episode,
        order=order,
        position=position,
        score=episode_reward - invalid_penalty * (~valid),
        penalty=invalid_penalty * (~valid),
        n_groups=int(group.max()) + 1,
        n_episodes=n_episodes,
    )
