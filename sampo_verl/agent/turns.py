"""The per-turn schema: the fields the environment agent loop writes into every turn sample, and who reads them.

One verl sample is one LLM turn of a multi-turn episode. :class:`sampo_verl.agent.loop.EnvAgentLoop`
stores the fields below in the sample's ``extra_fields`` (:func:`turn_extra_fields`); verl's v1
trainer keeps them in TransferQueue, and the SAMPO trainer hands them on as columns
(:func:`columns`) to the multi-turn advantage estimators, the group filter and the turn metrics
(:func:`turn_metrics`). :data:`SCHEMA` says, per field, its type, its meaning and its readers;
estimator errors about a missing field quote it.

The episode outcome (:class:`EpisodeOutcome`) is equal on every turn of an episode and is also put
in ``reward_extra_info`` (so verl logs it, e.g. in validation), with ``acc`` = success: verl's
validation reports ``val-core/<data_source>/acc/mean@n``. ``reward_extra_info`` also names the task
(``task_seed``, the dataset row's seed) so that the SAMPO trainer can record which held-out task
each validation solved (:mod:`sampo_verl.trainer.val_outcomes`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TRAJ_UID = "traj_uid"
STEP = "step"
ANCHOR = "anchor"
STEP_REWARD = "step_reward"
EPISODE_REWARD = "episode_reward"
ACTION_VALID = "action_valid"
FORMAT_VALID = "format_valid"
PARSE_REASON = "parse_reason"
WON = "won"
SUCCESS = "success"
EPISODE_LENGTH = "episode_length"
INVALID_ACTION_RATE = "invalid_action_rate"
ENV_ERROR = "env_error"
ENV_ERROR_REASON = "env_error_reason"
ENV_CLOSE_FAILED = "env_close_failed"
ENV_RESET_FAILURES = "env_reset_failures"
REWARD_EXTRA_INFO = "reward_extra_info"
VAL_ACC = "acc"  # verl's core validation metric name
TASK_SEED = "task_seed"  # in reward_extra_info: the episode's dataset seed (one held-out task)

ESTIMATORS = "multi-turn advantage estimators (sampo_verl.algorithms.advantages)"
FILTER = "group filter (sampo_verl.trainer.replay_buffer)"
METRICS = "turn metrics (sampo/*)"
VALIDATION = "verl's validation metrics (reward_extra_info)"


@dataclass(frozen=True)
class TurnField:
    """One field of a turn sample's ``extra_fields``."""

    name: str
    kind: type
    meaning: str
    readers: tuple[str, ...]


SCHEMA: dict[str, TurnField] = {
    f.name: f
    for f in (
        TurnField(TRAJ_UID, str, "the episode ('{uid}_{session_id}')", (ESTIMATORS, METRICS)),
        TurnField(STEP, int, "turn index inside the episode, from 0", (ESTIMATORS, METRICS)),
        TurnField(ANCHOR, str, "str of the raw environment state before the turn", (ESTIMATORS,)),
        TurnField(
            STEP_REWARD, float, "environment reward of the turn (0 when invalid: env not stepped)", (ESTIMATORS,)
        ),
        TurnField(
            EPISODE_REWARD, float, "sum of the episode's environment rewards, on all its turns", (ESTIMATORS, FILTER)
        ),
        TurnField(ACTION_VALID, bool, "the response parsed into an admissible action", (ESTIMATORS, METRICS)),
        TurnField(FORMAT_VALID, bool, "the response followed the tag format (action may be inadmissible)", (METRICS,)),
        TurnField(PARSE_REASON, str, "the parser's reason code (sampo_verl.agent.action_parser.ParseReason)", ()),
        TurnField(WON, bool, "the environment reported a win after this turn", (METRICS,)),
        TurnField(SUCCESS, float, "episode outcome: the last turn won", (VALIDATION,)),
        TurnField(EPISODE_LENGTH, int, "episode outcome: number of turns", (VALIDATION,)),
        TurnField(INVALID_ACTION_RATE, float, "episode outcome: fraction of invalid turns", (VALIDATION,)),
        TurnField(ENV_ERROR, float, "episode outcome: 1 when an environment call failed", (VALIDATION, METRICS)),
        TurnField(
            ENV_ERROR_REASON,
            str,
            "why the environment ended the episode ('' when it did not; sampo_verl.agent.env_calls.REASONS)",
            (METRICS,),
        ),
        TurnField(ENV_CLOSE_FAILED, bool, "the environment's close() failed after the episode", (METRICS,)),
        TurnField(
            ENV_RESET_FAILURES,
            int,
            "episodes of the same worker process that could not start (dropped) since the previous one that did",
            (METRICS,),
        ),
    )
}


def schema_markdown() -> str:
    """:data:`SCHEMA` as a Markdown table (the documentation's concepts page is built from it)."""
    rows = ["| field | type | what it holds | read by |", "|---|---|---|---|"]
    for f in SCHEMA.values():
        readers = "; ".join(f.readers) or "logged only"
        rows.append(f"| `{f.name}` | `{f.kind.__name__}` | {f.meaning} | {readers} |")
    return "\n".join(rows) + "\n"


def source(name: str) -> str:
    """Who writes field ``name`` and what it holds (for error messages)."""
    return f"the environment agent loop: {SCHEMA[name].meaning}"


@dataclass(frozen=True)
class EpisodeOutcome:
    """What an episode ended with; equal on all its turns."""

    success: float
    episode_length: int
    invalid_action_rate: float
    env_error: float


@dataclass(frozen=True)
class EnvIncidents:
    """What went wrong with the environment around an episode (not in ``reward_extra_info``: not all numbers)."""

    reason: str
    close_failed: bool
    reset_failures: int


def turn_extra_fields(
    *,
    traj_uid: str,
    step: int,
    anchor: str,
    step_reward: float,
    episode_reward: float,
    action_valid: bool,
    format_valid: bool,
    parse_reason: str,
    won: bool,
    episode: EpisodeOutcome,
    incidents: EnvIncidents,
    task_seed: int,
) -> dict[str, Any]:
    """The ``extra_fields`` of one turn sample (the agent loop's only writer of the schema)."""
    outcome = asdict(episode)
    return {
        TRAJ_UID: traj_uid,
        STEP: step,
        ANCHOR: anchor,
        STEP_REWARD: step_reward,
        EPISODE_REWARD: episode_reward,
        ACTION_VALID: action_valid,
        FORMAT_VALID: format_valid,
        PARSE_REASON: parse_reason,
        WON: won,
        ENV_ERROR_REASON: incidents.reason,
        ENV_CLOSE_FAILED: incidents.close_failed,
        ENV_RESET_FAILURES: incidents.reset_failures,
        **outcome,
        REWARD_EXTRA_INFO: {**outcome, VAL_ACC: episode.success, TASK_SEED: task_seed},
    }


def columns(extra_fields: list[dict[str, Any]], names: set[str]) -> dict[str, np.ndarray]:
    """Column arrays (dtype object) of the fields ``names`` over the samples' ``extra_fields`` dicts.

    A field missing from any sample is left out, so the reader's check can name it.
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        if all(isinstance(ef, dict) and name in ef for ef in extra_fields):
            out[name] = np.array([ef[name] for ef in extra_fields], dtype=object)
    return out


def turn_metrics(extra_fields: list[dict[str, Any]]) -> dict[str, float]:
    """Per-turn rates logged every step (``sampo/*``); empty when the rollout has no such fields."""
    rows = [ef for ef in extra_fields if isinstance(ef, dict)]
    out: dict[str, float] = {}
    for name, metric in ((FORMAT_VALID, "format_valid_rate"), (ACTION_VALID, "action_valid_rate")):
        values = [float(ef[name]) for ef in rows if name in ef]
        if values:
            out[f"sampo/{metric}"] = float(np.mean(values))
    # one value per episode: the last turn carries the episode outcome
    last_turns: dict[str, dict] = {}
    for ef in rows:
        if TRAJ_UID in ef and STEP in ef:
            prev = last_turns.get(ef[TRAJ_UID])
            if prev is None or ef[STEP] > prev[STEP]:
                last_turns[ef[TRAJ_UID]] = ef
    if last_turns:
        episodes = list(last_turns.values())
        out["sampo/success_rate"] = float(np.mean([float(ef.get(WON, 0.0)) for ef in episodes]))
        out["sampo/episode_length"] = float(np.mean([ef[STEP] + 1 for ef in episodes]))
        out.update(env_fault_metrics(episodes))
    return out


def env_fault_metrics(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """Environment faults over episodes (one turn's fields each): the error rate, counts by reason, close
    and reset failures. Reasons that did not occur are not logged."""
    out: dict[str, float] = {}
    if all(ENV_ERROR in ef for ef in episodes):
        out["sampo/env_error_rate"] = float(np.mean([float(ef[ENV_ERROR]) for ef in episodes]))
    reasons = Counter(ef.get(ENV_ERROR_REASON) or "" for ef in episodes)
    out.update({f"sampo/env_errors/{reason}": float(n) for reason, n in sorted(reasons.items()) if reason})
    out["sampo/env_close_failures"] = float(sum(bool(ef.get(ENV_CLOSE_FAILED, False)) for ef in episodes))
    out["sampo/env_reset_failures"] = float(sum(int(ef.get(ENV_RESET_FAILURES, 0)) for ef in episodes))
    return out
