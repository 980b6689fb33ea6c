"""The SAMPO trainer's modes (``trainer.v1.trainer_mode``) and what each needs, checked before Ray starts.

- ``sampo``: verl's ``sync`` mode, rollout and training take turns on one pool;
- ``sampo_colocate_async``: verl's ``colocate_async``: the next batches are generated while a step trains
  (``trainer.v1.colocate_async.num_warmup_batches`` ahead); at each weight update in-flight requests are
  aborted and resumed under the new weights (partial rollout) where the engine can abort (vLLM; the CPU
  ``hf`` engine finishes each request on the weights it started with);
- ``sampo_separate_async``: verl's ``separate_async``: rollout on its own GPUs, weights sent over a
  GPU checkpoint engine every ``parameter_sync_step`` mini-batches.

Kept apart from :mod:`.ppo` so that start-up checks can name the modes without importing verl's trainers.
"""

from __future__ import annotations

import importlib
from typing import Any

from sampo_verl.accelerators import cpu_platform_in_use

SAMPO_MODES: dict[str, str] = {
    "sampo": "sync",
    "sampo_colocate_async": "colocate_async",
    "sampo_separate_async": "separate_async",
}
OFF_POLICY_STRATEGIES = ("drop", "wait")


def mode_errors(config: Any) -> list[str]:
    """What the configured SAMPO mode cannot run with, naming the flags (empty for other modes)."""
    mode = config.trainer.v1.trainer_mode
    verl_mode = SAMPO_MODES.get(mode)
    if verl_mode in (None, "sync"):
        return []
    errors = _sampler_errors(config.trainer.v1.sampler)
    sync_step = (config.trainer.v1.get(verl_mode) or {}).get("parameter_sync_step", 1)
    if verl_mode == "colocate_async" and sync_step != 1:
        errors.append(
            f"trainer.v1.colocate_async.parameter_sync_step={sync_step}: colocate_async puts the rollout to sleep "
            "after the first local update of a step, so later ones would wait forever; only "
            "trainer_mode=sampo_separate_async updates several times between weight syncs"
        )
    if verl_mode == "separate_async":
        errors += _separate_async_errors(config, sync_step)
    return errors


def _sampler_errors(sampler: Any) -> list[str]:
    errors = []
    threshold = sampler.get("max_off_policy_threshold", None)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1):
        errors.append(
            f"trainer.v1.sampler.max_off_policy_threshold={threshold} must be an integer >= 1 (the most weight "
            "versions a trajectory may span) or null (no staleness control)"
        )
    strategy = sampler.get("max_off_policy_strategy", "drop")
    if strategy not in OFF_POLICY_STRATEGIES:
        errors.append(f"trainer.v1.sampler.max_off_policy_strategy={strategy} must be one of {OFF_POLICY_STRATEGIES}")
    return errors


def _separate_async_errors(config: Any, sync_step: int) -> list[str]:
    rollout = config.actor_rollout_ref.rollout
    train_batch, mini_batch = config.data.train_batch_size, config.actor_rollout_ref.actor.ppo_mini_batch_size
    errors = []
    if train_batch != sync_step * mini_batch:
        errors.append(
            f"data.train_batch_size={train_batch} must equal trainer.v1.separate_async.parameter_sync_step="
            f"{sync_step} x actor_rollout_ref.actor.ppo_mini_batch_size={mini_batch} (one mini-batch per local update)"
        )
    for flag in ("nnodes", "n_gpus_per_node"):
        if not (rollout.get(flag) or 0) > 0:
            errors.append(
                f"actor_rollout_ref.rollout.{flag}={rollout.get(flag)}: separate_async runs the rollout on GPUs "
                "of its own; set rollout.nnodes and rollout.n_gpus_per_node"
            )
    if cpu_platform_in_use():
        errors.append(
            "trainer.v1.trainer_mode=sampo_separate_async needs GPUs: its rollout pool receives weights over a "
            "GPU checkpoint engine (nccl, nixl, mooncake); on CPU use sampo_colocate_async"
        )
        return errors
    backend = rollout.checkpoint_engine.backend
    if backend == "naive":
        errors.append(
            "actor_rollout_ref.rollout.checkpoint_engine.backend=naive only syncs weights within one pool: "
            "separate_async needs nccl, nixl or mooncake"
        )
        return errors
    from verl.checkpoint_engine import CheckpointEngineRegistry

    custom = rollout.checkpoint_engine.get("custom_backend_module", None)
    try:
        if custom:
            importlib.import_module(custom)
        CheckpointEngineRegistry.get(backend)
    except (ImportError, ValueError) as error:
        errors.append(f"actor_rollout_ref.rollout.checkpoint_engine.backend={backend}: {error}")
    return errors
