"""Multi-turn advantage estimators registered in verl: ``gigpo``, ``empg`` and ``grpo_steps``.

One batch row is one LLM turn of a multi-turn episode. Besides verl's usual arguments every
estimator reads per-turn fields from ``non_tensor_batch``: those of the per-turn schema
(:mod:`sampo_verl.agent.turns`) listed in its registration
(:data:`sampo_verl.algorithms.multi_turn.MULTI_TURN_ESTIMATORS`):

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
from typing import Any, Mapping, Optional

import numpy as np
import torch

from sampo_verl.algorithms.multi_turn import (
    ANCHOR,
    ENTROPY,
    ENTROPY_SOURCE,
    EPS,
    STEP_REWARD,
    TURN_FIELDS,
    EMPGOptions,
    EpisodeOptions,
    GiGPOOptions,
    Turns,
    collect_turns,
    estimator,
    register_multi_turn,
    row_codes,
    row_floats,
    validate_fields,
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
    rewards = row_floats(non_tensor_batch[STEP_REWARD], STEP_REWARD, turns.n_rows)
    if options.penalty_placement == "turn":
        returns = discounted_returns(rewards, turns, gamma) - turns.penalty
    else:
        returns = discounted_returns(rewards - turns.penalty, turns, gamma)
    anchors = np.asarray(non_tensor_batch[ANCHOR], dtype=object).reshape(-1)
    if options.similarity_threshold is None:
        anchor = row_codes(anchors, ANCHOR, turns.n_rows)
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
