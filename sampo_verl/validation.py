"""Start-up checks of ``python -m sampo_verl.main_ppo``: impossible combinations and bad values fail
before Ray starts, with a message naming the flags involved and the values given."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
from hydra.errors import InstantiationException
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.utils.config import omega_conf_to_dataclass

from sampo_verl.agent.dataset import AGENT_NAME
from sampo_verl.algorithms.multi_turn import MULTI_TURN_ESTIMATORS
from sampo_verl.algorithms.filtering import filter_options
from sampo_verl.algorithms.loss_config import SeqMaskConfig
from sampo_verl.algorithms.losses import SEQ_MASK_LOSSES
from sampo_verl.cpu.vllm_checks import vllm_rollout_errors
from sampo_verl.envs import ENV_REGISTRY
from sampo_verl.trainer.modes import SAMPO_MODES, mode_errors
from sampo_verl.trainer.old_log_prob import config_errors as old_log_prob_errors
from sampo_verl.trainer.old_log_prob import old_log_prob_options
from sampo_verl.options import OPTIONS_SECTIONS, section_errors

# numeric flags of verl's config that the package's methods rely on: (flag, test, what it must be)
NUMBERS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("algorithm.gamma", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("actor_rollout_ref.actor.clip_ratio_low", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("actor_rollout_ref.actor.clip_ratio_high", lambda v: v >= 0, ">= 0"),
    ("actor_rollout_ref.actor.kl_loss_coef", lambda v: v >= 0, ">= 0"),
    ("actor_rollout_ref.actor.entropy_coeff", lambda v: v >= 0, ">= 0"),
    ("actor_rollout_ref.rollout.n", lambda v: v >= 1 and v == int(v), "an integer >= 1"),
)


def validate_sampo_config(config: Any) -> None:
    """Raise ValueError on a configuration that cannot run; checks only what verl does not."""
    algorithm = config.algorithm
    actor = config.actor_rollout_ref.actor
    rollout = config.actor_rollout_ref.rollout
    estimator = algorithm.adv_estimator
    errors: list[str] = []

    if not config.trainer.get("use_v1", False):
        errors.append("trainer.use_v1=false: sampo-verl runs on verl's v1 trainer (set trainer.use_v1=true)")

    errors += _number_errors(config)
    if estimator not in ADV_ESTIMATOR_REGISTRY:
        errors.append(f"algorithm.adv_estimator={estimator} is not registered; known: {sorted(ADV_ESTIMATOR_REGISTRY)}")
    try:  # the policy-loss config's own checks (loss name, seq_mask, aggregation), built as verl builds it
        omega_conf_to_dataclass(actor.policy_loss)
    except InstantiationException as error:
        errors.append(str(error.__cause__ or error))

    errors += section_errors(config)  # every registered options section, used or not
    errors += mode_errors(config)

    if estimator in MULTI_TURN_ESTIMATORS:
        if config.trainer.v1.trainer_mode not in SAMPO_MODES:
            errors.append(
                f"algorithm.adv_estimator={estimator} needs per-turn fields that only the SAMPO trainer passes: "
                f"set trainer.v1.trainer_mode to one of {list(SAMPO_MODES)} (got {config.trainer.v1.trainer_mode})"
            )
        if rollout.agent.default_agent_loop != AGENT_NAME:
            errors.append(
                f"algorithm.adv_estimator={estimator} needs the environment agent loop: set "
                f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME} "
                f"(got {rollout.agent.default_agent_loop})"
            )
        if algorithm.get("use_kl_in_reward", False):
            errors.append(
                f"algorithm.use_kl_in_reward=true is ignored by algorithm.adv_estimator={estimator} "
                "(it reads environment rewards): use actor_rollout_ref.actor.use_kl_loss=true instead"
            )

    policy_loss = actor.policy_loss
    changed = _changed_seq_mask(policy_loss.get("seq_mask", None) or {})
    if changed and policy_loss.loss_mode not in SEQ_MASK_LOSSES:
        flags = ", ".join(f"actor_rollout_ref.actor.policy_loss.seq_mask.{key}={value}" for key, value in changed)
        errors.append(
            f"{flags} with actor_rollout_ref.actor.policy_loss.loss_mode={policy_loss.loss_mode}, which does not "
            f"mask: sequence masking is the loss modes {list(SEQ_MASK_LOSSES)} "
            f"(e.g. loss_mode={policy_loss.loss_mode}_seqmask)"
        )

    if ("reference", "rollout") in changed and not rollout.get("calculate_log_probs", False):
        errors.append(
            "actor_rollout_ref.actor.policy_loss.seq_mask.reference=rollout needs the rollout's log-probs: set "
            "actor_rollout_ref.rollout.calculate_log_probs=true"
        )

    options = filter_options(algorithm)
    if options.enable:
        if rollout.n < 2:
            errors.append(
                "algorithm.filter_groups.enable=true with actor_rollout_ref.rollout.n=1: a group of one never "
                "carries signal; use rollout.n >= 2"
            )
        at_sampling = sorted(name for name, e in MULTI_TURN_ESTIMATORS.items() if e.at_sampling_time)
        if options.criterion == "advantage" and estimator not in at_sampling:
            errors.append(
                f"algorithm.filter_groups.criterion=advantage needs algorithm.adv_estimator in "
                f"{at_sampling} (computed at sampling time), got {estimator}"
            )
        if config.trainer.v1.trainer_mode not in SAMPO_MODES:
            errors.append(
                f"algorithm.filter_groups.enable=true needs trainer.v1.trainer_mode in {list(SAMPO_MODES)} "
                f"(got {config.trainer.v1.trainer_mode})"
            )

    sampo = config.get("sampo", None) or {}
    known = sorted(p.split(".")[1] for p in OPTIONS_SECTIONS if p.startswith("sampo."))
    unknown = sorted(set(sampo) - set(known))
    if unknown:
        errors.append(f"unknown sampo option(s) {unknown}; known: {known}")
    try:
        errors += old_log_prob_errors(old_log_prob_options(sampo), bool(rollout.get("calculate_log_probs", False)))
    except ValueError:
        pass  # reported with the sections above
    _raise(errors)


def _changed_seq_mask(seq_mask: Any) -> list[tuple[str, Any]]:
    """The ``seq_mask`` settings that differ from their defaults (they only act in a masking loss mode)."""
    defaults = SeqMaskConfig()
    return [
        (key, value) for key, value in seq_mask.items() if hasattr(defaults, key) and getattr(defaults, key) != value
    ]


def validate_sampo_inputs(config: Any) -> None:
    """Raise ValueError when what the config points at is not there or cannot run: a local model path,
    the train/val files, an environment those files name that no imported module registered, the vLLM
    engine (installed; on CPU, a head size it serves)."""
    errors = []
    model_path = str(config.actor_rollout_ref.model.path)
    if _looks_local(model_path) and not os.path.exists(os.path.expanduser(model_path)):
        errors.append(f"actor_rollout_ref.model.path={model_path} does not exist")
    elif _looks_local(model_path) and not os.path.isdir(os.path.expanduser(model_path)):
        errors.append(f"actor_rollout_ref.model.path={model_path} is a file, not a model folder (config.json, weights)")
    errors += vllm_rollout_errors(config)
    if config.actor_rollout_ref.rollout.agent.default_agent_loop == AGENT_NAME:
        errors += _environment_errors(config)
    _raise(errors)


def _raise(errors: list[str]) -> None:
    if errors:
        raise ValueError("invalid sampo-verl configuration:\n  - " + "\n  - ".join(errors))


def _number_errors(config: Any) -> list[str]:
    errors = []
    for flag, ok, must_be in NUMBERS:
        value = OmegaConf.select(config, flag)
        if value is None:
            continue
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (is_number and math.isfinite(value) and ok(value)):
            errors.append(f"{flag}={value} must be {must_be}")
    return errors


def _looks_local(path: str) -> bool:
    """A filesystem path rather than a hub id (``org/name``)."""
    return path.startswith(("/", "./", "../", "~")) or os.path.exists(path)


def _task_rows(path: str) -> tuple[list[Any], str]:
    """The ``extra_info`` column of a task parquet file, or what is wrong with the file."""
    try:
        columns = pq.read_schema(path).names
        if "extra_info" not in columns:
            return [], f"has no extra_info column (columns: {columns})"
        return pq.read_table(path, columns=["extra_info"]).column(0).to_pylist(), ""
    except (OSError, ValueError) as error:  # pyarrow's errors derive from these
        return [], f"is not a readable parquet file ({error})"


def _environment_errors(config: Any) -> list[str]:
    """Every environment the train/val files name must be registered (importing verl imported the
    modules of ``VERL_USE_EXTERNAL_MODULES`` in this process, as it does in every worker)."""
    errors = []
    for flag in ("data.train_files", "data.val_files"):
        files = OmegaConf.select(config, flag)
        for path in [files] if isinstance(files, str) else list(files or []):
            path = os.path.expanduser(path)
            if not os.path.exists(path):
                errors.append(f"{flag}: {path} does not exist")
                continue
            rows, problem = _task_rows(path)
            if problem:
                errors.append(f"{flag}: {path} {problem}")
                continue
            without = sum(1 for row in rows if not isinstance(row, dict) or row.get("env") is None)
            if without:
                errors.append(
                    f"{flag}: {path}: {without} of {len(rows)} rows have no extra_info.env (the environment agent "
                    "loop's task rows name their environment; write them with sampo-verl dataset)"
                )
                continue
            names = {row["env"] for row in rows}
            unknown = sorted(str(name) for name in names - set(ENV_REGISTRY))
            if unknown:
                errors.append(
                    f"{flag}: {path} names environment(s) {unknown} that are not registered "
                    f"(registered: {sorted(ENV_REGISTRY)}; add your module to VERL_USE_EXTERNAL_MODULES)"
                )
    return errors
