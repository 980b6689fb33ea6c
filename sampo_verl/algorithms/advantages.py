"""Multi-turn advantage estimators registered in verl: ``gigpo``, ``empg`` and ``grpo_steps``.

One batch row is one LLM turn of a multi-turn episode. Besides verl's usual arguments every
estimator reads per-turn fields from ``non_tensor_batch``: those of the per-turn schema
(:mod:`sampo_verl.agent.turns`) listed in its registration (:data:`MULTI_TURN_ESTIMATORS`):

- ``uid`` (passed by verl as ``index``): the episode group, shared by all rollouts of one task/seed.
- ``traj_uid``: the episode; ``step``: the turn index inside it (any increasing integers).
- ``anchor``: the raw environment state before the turn (hashable, e.g. str).
- ``step_reward``: the environment's reward for the turn, without penalties (``sampo_env_agent``
  gives 0 on an invalid turn); ``episode_reward``: the episode's final reward without penalties,
  equal on all its turns.
- ``action_valid``: whether the turn's action parsed into a valid environment action.
- EMPG only, in ``batch``: ``entropy`` (B, T), the old policy's per-token entropy (the name under
  which verl's v1 trainer stores it; the legacy trainer's ``compute_log_prob`` calls it ``entropys``).

Rewards come from these fields; ``token_level_rewards`` only gives the output's shape, dtype and
device (so verl's in-reward KL penalty does not enter these estimators).

Shared definitions (the paper's "Advantages for multi-turn agents"):

- invalid penalty ``p_i = c * [turn i's action is invalid]`` (c = ``invalid_penalty``, default 0.1),
  applied here and only here, to the turn where it happened: the episode score
  ``R_i = episode_reward_i - p_i`` and GiGPO's discounted step return of that turn
  (``algorithm.gigpo.penalty_placement``, see :func:`compute_gigpo_advantage`);
- episode term ``A_E``: ``R_i - mean`` (``mean_norm``) or ``(R_i - mean) / (std + 1e-6)``
  (``mean_std_norm``) within the ``uid`` group, std unbiased as in verl's GRPO. Statistics over all
  turns of the group (``episode_stats=steps``, ARLArena default) or over one value per episode, the
  mean of ``R`` over its turns (``episode_stats=episodes``, plain GRPO). A group with a single
  statistic gets 0 under ``mean_norm`` and mean 0, std 1 under ``mean_std_norm`` (as verl's GRPO).

Options live in ``algorithm.<estimator>`` (``algorithm.gigpo.step_weight=0.5`` with
``sampo_verl.main_ppo``, whose config has the sections; ``+algorithm.gigpo.step_weight=0.5`` on
verl's own entry point); the discount of GiGPO is verl's own ``algorithm.gamma``. See the
``*Options`` dataclasses; :mod:`sampo_verl.validation` reads them at start-up.
Outputs are ``(advantages, returns)``, both (B, T), constant over each row's response tokens and
zero elsewhere, like verl's GRPO.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
import torch
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
    """Episode-term options shared by all three estimators (``algorithm.grpo_steps.*``)."""

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
    """``algorithm.empg.*``: episode options plus EMPG's k, k_f and zeta."""

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


def _codes(values: Any, name: str, n_rows: int) -> np.ndarray:
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


def _floats(values: Any, name: str, n_rows: int) -> np.ndarray:
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
    group = _codes(index, UID, n_rows)
    episode = _codes(non_tensor_batch[TRAJ_UID], TRAJ_UID, n_rows)
    try:
        step = np.asarray(non_tensor_batch[STEP]).astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"field {STEP!r} must hold integers: {err}") from err
    episode_reward = _floats(non_tensor_batch[EPISODE_REWARD], EPISODE_REWARD, n_rows)
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


def group_normalise(
    values: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    mode: str,
    singleton_zero: bool,
    stat_values: Optional[np.ndarray] = None,
    stat_group: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Normalise ``values`` within groups by the mean/std of ``stat_values`` (default: ``values``).

    A group with a single statistic has mean 0 and std 1; ``singleton_zero`` sets its rows to 0.
    """
    if stat_values is None:
        stat_values, stat_group = values, group
    count = np.bincount(stat_group, minlength=n_groups)
    mean = np.bincount(stat_group, weights=stat_values, minlength=n_groups) / np.maximum(count, 1)
    sq_dev = np.bincount(stat_group, weights=(stat_values - mean[stat_group]) ** 2, minlength=n_groups)
    std = np.sqrt(sq_dev / np.maximum(count - 1, 1))
    single = count == 1
    mean[single], std[single] = 0.0, 1.0
    out = values - mean[group]
    if mode == "mean_std_norm":
        out = out / (std[group] + EPS)
    if singleton_zero:
        out[single[group]] = 0.0
    return out


def episode_advantage(turns: Turns, options: EpisodeOptions) -> np.ndarray:
    """Episode term ``A_E`` per row (see the module docstring)."""
    singleton_zero = options.mode == "mean_norm"
    if options.episode_stats == "steps":
        return group_normalise(turns.score, turns.group, turns.n_groups, options.mode, singleton_zero)
    turns_per_episode = np.bincount(turns.episode, minlength=turns.n_episodes)
    episode_score = np.bincount(turns.episode, weights=turns.score, minlength=turns.n_episodes) / turns_per_episode
    episode_group = np.zeros(turns.n_episodes, dtype=np.int64)
    episode_group[turns.episode] = turns.group
    return group_normalise(
        turns.score, turns.group, turns.n_groups, options.mode, singleton_zero, episode_score, episode_group
    )


def discounted_returns(rewards: np.ndarray, turns: Turns, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` within each episode, per row.

    Rows are scattered into an (episodes, longest episode) matrix and scanned backwards over its
    columns, so the Python loop runs once per turn position, not once per row.
    """
    sorted_episode = turns.episode[turns.order]
    padded = np.zeros((turns.n_episodes, int(turns.position.max()) + 1))
    padded[sorted_episode, turns.position] = rewards[turns.order]
    running = np.zeros(turns.n_episodes)
    for column in range(padded.shape[1] - 1, -1, -1):
        running = padded[:, column] + gamma * running
        padded[:, column] = running
    out = np.empty_like(rewards)
    out[turns.order] = padded[sorted_episode, turns.position]
    return out


def similar_anchor_ids(anchors: np.ndarray, group: np.ndarray, threshold: float, rule: str = "sorted") -> np.ndarray:
    """Cluster text anchors inside each uid group: id per row.

    Within a group the distinct anchors are visited in sorted order (``rule="sorted"``) or in order of
    first appearance (``"release"``); each joins the first cluster whose first member is similar enough
    (difflib ratio >= ``threshold``, see :class:`GiGPOOptions`), else opens a new one.
    """
    cluster = np.empty(len(anchors), dtype=np.int64)
    next_id = 0
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        texts, first, inverse = np.unique(anchors[rows].astype(str), return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable") if rule == "release" else np.arange(len(texts))
        visited = _greedy_clusters([str(texts[i]) for i in order], threshold, release=rule == "release")
        text_cluster = np.empty(len(texts), dtype=np.int64)
        text_cluster[order] = visited
        cluster[rows] = next_id + text_cluster[inverse.reshape(-1)]
        next_id += int(visited.max()) + 1
    return cluster


def _greedy_clusters(texts: list[str], threshold: float, release: bool) -> np.ndarray:
    """Cluster index of each text, in visiting order (see :func:`similar_anchor_ids`).

    difflib's ratio is ``2 M / (len_a + len_b)`` with M matched characters, at most the size of the
    two texts' character-multiset intersection: that bound is computed for a text against every
    cluster at once (numpy), and difflib runs only where the bound reaches the threshold. Each
    matcher keeps its second sequence's index, so it is built once per text (``sorted``: the text
    is the second sequence) or once per cluster (``release``: the first member is).
    """
    alphabet = {ch: k for k, ch in enumerate(sorted(set().union(*texts)))}
    counts = np.zeros((len(texts), max(len(alphabet), 1)), dtype=np.int32)
    for i, text in enumerate(texts):
        codes = np.fromiter((alphabet[ch] for ch in text), dtype=np.int64, count=len(text))
        chars, n = np.unique(codes, return_counts=True)
        counts[i, chars] = n
    lengths = counts.sum(axis=1)
    assigned = np.empty(len(texts), dtype=np.int64)
    representatives: list[int] = []
    rep_matchers: list[difflib.SequenceMatcher] = []
    for i, text in enumerate(texts):
        assigned[i] = len(representatives)
        if representatives:
            reps = np.asarray(representatives)
            bound = 2.0 * np.minimum(counts[i], counts[reps]).sum(axis=1) / np.maximum(lengths[i] + lengths[reps], 1)
            text_matcher = None
            for c in np.flatnonzero(bound >= threshold):
                if release:  # SequenceMatcher(None, text, first member), difflib's defaults
                    matcher = rep_matchers[c]
                    matcher.set_seq1(text)
                else:  # SequenceMatcher(None, first member, text, autojunk=False)
                    text_matcher = text_matcher or difflib.SequenceMatcher(None, "", text, autojunk=False)
                    matcher = text_matcher
                    matcher.set_seq1(texts[representatives[c]])
                if matcher.ratio() >= threshold:
                    assigned[i] = c
                    break
        if assigned[i] == len(representatives):
            representatives.append(i)
            rep_matchers.append(difflib.SequenceMatcher(None, "", text) if release else None)
    return assigned


def step_advantage(
    turns: Turns, non_tensor_batch: Mapping[str, Any], gamma: float, options: GiGPOOptions
) -> np.ndarray:
    """GiGPO step term ``A_S``: discounted step returns normalised within anchor-state groups."""
    rewards = _floats(non_tensor_batch[STEP_REWARD], STEP_REWARD, turns.n_rows)
    if options.penalty_placement == "turn":
        returns = discounted_returns(rewards, turns, gamma) - turns.penalty
    else:
        returns = discounted_returns(rewards - turns.penalty, turns, gamma)
    anchors = np.asarray(non_tensor_batch[ANCHOR], dtype=object).reshape(-1)
    if options.similarity_threshold is None:
        anchor = _codes(anchors, ANCHOR, turns.n_rows)
    else:
        anchor = similar_anchor_ids(anchors, turns.group, options.similarity_threshold, options.similarity_rule)
    # step group = (uid, anchor)
    _, step_group = np.unique(turns.group * (int(anchor.max()) + 1) + anchor, return_inverse=True)
    step_group = step_group.reshape(-1)
    return group_normalise(returns, step_group, int(step_group.max()) + 1, options.mode, singleton_zero=True)


def _as_token_tensor(per_row: np.ndarray, token_level_rewards: torch.Tensor, response_mask: torch.Tensor):
    scores = torch.as_tensor(per_row, dtype=token_level_rewards.dtype, device=token_level_rewards.device)
    advantages = scores.unsqueeze(-1) * response_mask.to(token_level_rewards.dtype)
    return advantages, advantages


def _prepare(
    name: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Optional[Mapping[str, Any]],
    non_tensor_batch: Optional[Mapping[str, Any]],
    batch: Optional[Mapping[str, Any]] = None,
) -> tuple[Any, Turns]:
    """What every multi-turn estimator starts with: its options, checked inputs and the turn layout."""
    options = estimator(name).read_options(config)
    if token_level_rewards.shape != response_mask.shape or token_level_rewards.dim() != 2:
        raise ValueError(
            f"{name}: token_level_rewards {tuple(token_level_rewards.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must both be (B, T)"
        )
    if index is not None and len(index) != token_level_rewards.shape[0]:
        raise ValueError(f"{name}: {len(index)} uids for {token_level_rewards.shape[0]} rows")
    validate_fields(name, non_tensor_batch, batch)
    return options, collect_turns(index, non_tensor_batch, options.invalid_penalty, name)


@register_multi_turn("grpo_steps", EpisodeOptions)
def compute_grpo_steps_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    config: Optional[Mapping[str, Any]] = None,
    non_tensor_batch: Optional[Mapping[str, np.ndarray]] = None,
    **verl_extras: Any,  # verl may also pass reward_baselines / batch, unused here
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO over per-turn samples: ``A = A_E`` (group-normalised episode score, see module docstring).

    Options ``algorithm.grpo_steps.{mode, episode_stats, invalid_penalty}``.
    Shapes: token_level_rewards, response_mask (B, T); index, non_tensor_batch fields (B,).
    Returns (advantages, returns), both (B, T).
    """
    options, turns = _prepare("grpo_steps", token_level_rewards, response_mask, index, config, non_tensor_batch)
    return _as_token_tensor(episode_advantage(turns, options), token_level_rewards, response_mask)


@register_multi_turn("gigpo", GiGPOOptions, TURN_FIELDS | {ANCHOR, STEP_REWARD})
def compute_gigpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    config: Optional[Mapping[str, Any]] = None,
    non_tensor_batch: Optional[Mapping[str, np.ndarray]] = None,
    **verl_extras: Any,  # verl may also pass reward_baselines / batch, unused here
) -> tuple[torch.Tensor, torch.Tensor]:
    """GiGPO (Feng et al., "Group-in-Group Policy Optimization for LLM Agent Training", arXiv 2505.10978).

    ``A = A_E + w * A_S``. ``A_S``: discounted step return ``G_t = r_t + gamma * G_{t+1}`` within
    each episode (``r_t = step_reward_t``) minus the turn's invalid-action penalty ``p_t``, as the
    release does (``penalty_placement=discounted``: ``r_t = step_reward_t - p_t``, which also lowers
    the returns of the turns before it), normalised (same mode as ``A_E``) within the step group of
    rows sharing ``uid`` and ``anchor``; a step group of one row gets 0.
    ``gamma = algorithm.gamma``.
    Options ``algorithm.gigpo.{mode, episode_stats, invalid_penalty, step_weight, penalty_placement,
    similarity_threshold, similarity_rule}``; with ``similarity_threshold`` in (0, 1) anchors of one uid
    are clustered by difflib ratio.
    Shapes: token_level_rewards, response_mask (B, T); index, non_tensor_batch fields (B,).
    Returns (advantages, returns), both (B, T).
    """
    options, turns = _prepare("gigpo", token_level_rewards, response_mask, index, config, non_tensor_batch)
    gamma = float((config or {}).get("gamma", 1.0))
    advantage = episode_advantage(turns, options)
    if options.step_weight != 0.0:
        advantage = advantage + options.step_weight * step_advantage(turns, non_tensor_batch, gamma, options)
    return _as_token_tensor(advantage, token_level_rewards, response_mask)


@register_multi_turn("empg", EMPGOptions, tensor_fields={ENTROPY: ENTROPY_SOURCE})
def compute_empg_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Optional[np.ndarray] = None,
    config: Optional[Mapping[str, Any]] = None,
    non_tensor_batch: Optional[Mapping[str, np.ndarray]] = None,
    batch: Optional[Mapping[str, torch.Tensor]] = None,
    **verl_extras: Any,  # verl may also pass reward_baselines, unused here
) -> tuple[torch.Tensor, torch.Tensor]:
    """EMPG (Wang et al., "Harnessing Uncertainty: Entropy-Modulated Policy Gradients for Long-Horizon LLM Agents").

    ``H_t``: the turn's mean token entropy (``batch["entropy"]`` over the response mask), min-max
    normalised over the batch rows. ``g(H) = exp(-k H) / mean_batch(exp(-k H))``;
    ``A' = g(H_t) * A_E + zeta * exp(-k_f * H_{t+1})`` with ``H_{t+1}`` from the next turn of the
    same episode (no bonus on the last turn); ``A = A' - mean_batch(A')`` (mean over rows).
    Options ``algorithm.empg.{mode, episode_stats, invalid_penalty, k, k_f, zeta}``.
    Shapes: token_level_rewards, response_mask, entropy (B, T); index, non_tensor_batch fields (B,).
    Returns (advantages, returns), both (B, T).
    """
    options, turns = _prepare("empg", token_level_rewards, response_mask, index, config, non_tensor_batch, batch)
    token_entropy = batch[ENTROPY]
    if token_entropy.shape != response_mask.shape:
        raise ValueError(
            f"{ENTROPY} {tuple(token_entropy.shape)} must match response_mask {tuple(response_mask.shape)}"
        )
    mask = response_mask.detach().to(torch.float64).cpu()
    token_entropy = token_entropy.detach().to(torch.float64).cpu()
    entropy = ((token_entropy * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).numpy()
    if not np.isfinite(entropy).all():
        bad_rows = np.flatnonzero(~np.isfinite(entropy))[:5].tolist()
        raise ValueError(f"{ENTROPY} holds NaN/inf on the response tokens of rows {bad_rows}")
    entropy = (entropy - entropy.min()) / (entropy.max() - entropy.min() + EPS)

    confidence = np.exp(-options.k * entropy)
    nxt = turns.next_row()
    clarity = np.where(nxt >= 0, options.zeta * np.exp(-options.k_f * entropy[nxt]), 0.0)
    advantage = confidence / confidence.mean() * episode_advantage(turns, options) + clarity
    return _as_token_tensor(advantage - advantage.mean(), token_level_rewards, response_mask)
