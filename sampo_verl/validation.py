"""Start-up checks of ``python -m sampo_verl.main_ppo``: impossible combinations fail before Ray
starts, with a message naming the flags involved."""

from __future__ import annotations

from typing import Any

from sampo_verl.agent.dataset import AGENT_NAME
from sampo_verl.algorithms.advantages import MULTI_TURN_ESTIMATORS
from sampo_verl.algorithms.diagnostics import collapse_options
from sampo_verl.algorithms.filtering import filter_options
from sampo_verl.algorithms.losses import SEQ_MASK_LOSSES


def validate_sampo_config(config: Any) -> None:
    """Raise ValueError on a configuration that cannot run; checks only what verl does not."""
    algorithm = config.algorithm
    actor = config.actor_rollout_ref.actor
    rollout = config.actor_rollout_ref.rollout
    estimator = algorithm.adv_estimator
    errors: list[str] = []

    if not config.trainer.get("use_v1", False):
        errors.append("trainer.use_v1=false: sampo-verl runs on verl's v1 trainer (set trainer.use_v1=true)")

    for registration in MULTI_TURN_ESTIMATORS.values():  # every algorithm.<estimator> section, used or not
        try:
            registration.read_options(algorithm)
        except ValueError as error:
            errors.append(str(error))

    if estimator in MULTI_TURN_ESTIMATORS:
        if config.trainer.v1.trainer_mode != "sampo":
            errors.append(
                f"algorithm.adv_estimator={estimator} needs per-turn fields that only the SAMPO trainer passes: "
                f"set trainer.v1.trainer_mode=sampo (got {config.trainer.v1.trainer_mode})"
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
    seq_mask = policy_loss.get("seq_mask", None) or {}
    if seq_mask.get("enable", False) and policy_loss.loss_mode not in SEQ_MASK_LOSSES:
        errors.append(
            f"actor_rollout_ref.actor.policy_loss.seq_mask.enable=true with "
            f"actor_rollout_ref.actor.policy_loss.loss_mode={policy_loss.loss_mode}: sequence masking composes "
            f"with {list(SEQ_MASK_LOSSES)} (e.g. loss_mode={policy_loss.loss_mode}_seqmask)"
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
        if config.trainer.v1.trainer_mode != "sampo":
            errors.append("algorithm.filter_groups.enable=true needs trainer.v1.trainer_mode=sampo")

    sampo = config.get("sampo", None) or {}
    collapse_options(sampo)  # raises naming the sampo.collapse flag

    if errors:
        raise ValueError("invalid sampo-verl configuration:\n  - " + "\n  - ".join(errors))
