"""SAMPO trainer: verl 0.9.1's v1 PPO trainers plus the hooks multi-turn agents need.

One mixin, :class:`SampoHooks`, over each of verl's v1 modes, registered as ``trainer.v1.trainer_mode=``
``sampo`` (verl's ``sync``), ``sampo_colocate_async`` and ``sampo_separate_async`` (:mod:`.modes`).
Everything not listed here is verl's own (rollout, partial rollout, KL loss, checkpoints, validation, logging).

- ``_compute_advantage``: for the multi-turn estimators (``gigpo``, ``empg``, ``grpo_steps``) it runs
  verl's rollout correction (``algorithm.rollout_correction``) as verl's own step does, then reads the
  per-turn fields that the environment agent loop stored in each sample's ``extra_fields``
  (:mod:`.turn_batch`; verl only hands ``index`` and tensors to registered estimators) and the
  old-policy token entropy that verl's ``_compute_old_log_prob`` keeps in TransferQueue.
- Dynamic filtering: the buffers of :mod:`.replay_buffer` replace verl's sync and async replay buffers when
  ``algorithm.filter_groups.enable=true`` (criteria ``reward`` or ``advantage``, cold start,
  a limit on refill rounds, then a top-up with signal-free groups).
- ``_balance_batch``: after verl's balancing, its padding rows are spread evenly over the actor's
  mini-batches instead of filling the last one (:mod:`.mini_batches`); ``sampo/mini_batch_samples_{min,max}``.
- ``_compute_old_log_prob``: with ``sampo.old_log_prob.from_rollout=true`` the rollout's log-probs are the
  old policy's, without a second forward (:mod:`.old_log_prob`).
- ``_val_metrics_update``: each validation's per-task outcomes go to ``sampo.validation.outcomes_file``
  (:mod:`.val_outcomes`); verl's means are unchanged.
- ``_compute_metrics``: per-turn rates (format-valid, action-valid, success), staleness per turn and
  per episode (:mod:`.staleness`; with ``sampo/staleness/optimizer_steps`` from ``_balance_batch``) and the collapse
  detector of :mod:`sampo_verl.algorithms.diagnostics`, which can stop the run with a checkpoint.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import transfer_queue as tq
from omegaconf import DictConfig, open_dict
from tensordict import TensorDict
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_colocate_async import PPOTrainerColocateAsync
from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.workers.utils.padding import response_to_nested

from sampo_verl.agent.turns import turn_metrics
from sampo_verl.algorithms import advantages  # noqa: F401  (registers the estimators)
from sampo_verl.algorithms import multi_turn
from sampo_verl.algorithms.diagnostics import CollapseDetector, collapse_options
from sampo_verl.algorithms.filtering import filter_options
from sampo_verl.trainer.mini_batches import mini_batch_sample_counts, spread_padding
from sampo_verl.trainer.modes import SAMPO_MODES
from sampo_verl.trainer.old_log_prob import (
    ENTROPY_METRIC,
    UPDATE_ENTROPY_METRIC,
    old_log_prob_options,
    skips_forward,
)
from sampo_verl.trainer.replay_buffer import FILTERING_BUFFERS, sampler_options
from sampo_verl.trainer.staleness import OPTIMIZER_STEPS_METRIC, dropped_metrics, staleness_metrics
from sampo_verl.trainer.turn_batch import multi_turn_advantages, pop_extra_fields, real_rows, rollout_correction
from sampo_verl.trainer.val_outcomes import append_outcomes, outcomes_record, take_task_seeds, validation_options

logger = logging.getLogger(__name__)


class SampoHooks:
    """The hooks of this project over one of verl's v1 trainers (mixed in before it).

    verl branches on its literal mode names ("sync" or not: replay buffer class, refill, checkpoints, the
    ``trainer.v1.<mode>`` config section) from inside ``__init__`` on; each SAMPO mode is verl's trainer
    registered under another name, so the mode verl assigns from the config is replaced by verl's own.
    """

    verl_mode: str = "sync"

    @property
    def trainer_mode(self) -> str:
        return self.verl_mode

    @trainer_mode.setter
    def trainer_mode(self, value: str) -> None:
        pass

    def __init__(self, config: DictConfig):
        super().__init__(config)
        self.collapse_detector = CollapseDetector(collapse_options(config.get("sampo", None)))
        self.val_outcomes_file = validation_options(config.get("sampo", None)).outcomes_file
        self.old_log_probs_from_rollout = skips_forward(
            old_log_prob_options(config.get("sampo", None)), config.algorithm.adv_estimator
        )
        if self.old_log_probs_from_rollout:  # the policy's entropy is then measured in the update's forward
            with open_dict(self.config):
                self.config.actor_rollout_ref.actor.calculate_entropy = True

    # ------------------------------------------------------------------ mini-batches
    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        batch = super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)
        actor = self.config.actor_rollout_ref
        mini_batch_size = actor.actor.ppo_mini_batch_size * actor.rollout.n
        if len(batch) % mini_batch_size:  # no actor update this step (critic warm-up): verl padded for the critic
            return batch
        dp_size = max(self.actor_rollout_wg._dispatch_info["actor"]) + 1  # filled in by verl's _balance_batch
        padding = ~real_rows(batch.tags)
        if padding.any():
            order = spread_padding(padding, dp_size, mini_batch_size)
            batch.reorder(order.tolist())
            padding = padding[order]
        counts = mini_batch_sample_counts(padding, dp_size, mini_batch_size)
        metrics["sampo/mini_batch_samples_min"] = int(counts.min())
        metrics["sampo/mini_batch_samples_max"] = int(counts.max())
        # optimiser steps on this rollout batch: the mini-batch lag of the later ones is this minus one
        metrics[OPTIMIZER_STEPS_METRIC] = actor.actor.ppo_epochs * len(batch) // mini_batch_size
        return batch

    # ------------------------------------------------------------------ old policy
    def _compute_old_log_prob(self, batch, metrics: dict):
        if not self.old_log_probs_from_rollout:
            return super()._compute_old_log_prob(batch, metrics)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["rollout_log_probs"])
        fields = TensorDict({"old_log_probs": data["rollout_log_probs"]}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=fields)

    def _update_actor(self, batch, metrics: dict):
        batch = super()._update_actor(batch, metrics)
        if self.old_log_probs_from_rollout and UPDATE_ENTROPY_METRIC in metrics:
            metrics[ENTROPY_METRIC] = metrics[UPDATE_ENTROPY_METRIC]
        return batch

    # ------------------------------------------------------------------ advantages
    def _compute_advantage(self, batch, metrics: dict):
        name = self.config.algorithm.adv_estimator
        if name not in multi_turn.MULTI_TURN_ESTIMATORS:
            return super()._compute_advantage(batch, metrics)

        tensor_fields = multi_turn.required_tensor_fields(name)
        fields = ["uid", "response_mask", "rm_scores", "extra_fields", "old_log_probs", "rollout_log_probs"]
        fields += [field for field in tensor_fields if field not in fields]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        response_mask = data["response_mask"]
        uid = np.array(data.pop("uid").tolist(), dtype=object)
        extra = pop_extra_fields(data)
        padded = dict(data.to_padded_tensor().items())
        corrected, correction_metrics = rollout_correction(self.config.algorithm, padded)
        metrics.update(correction_metrics)
        padded.update(corrected)  # rejection sampling's mask is the one the advantages see, as in verl
        adv, returns = multi_turn_advantages(
            self.config.algorithm,
            uid,
            extra,
            {field: padded[field] for field in ["rm_scores", "response_mask", *tensor_fields]},
            real_rows(batch.tags),
        )
        output = {"advantages": adv, "returns": returns, **corrected}
        output = TensorDict(
            {field: response_to_nested(value, response_mask) for field, value in output.items()},
            batch_size=len(batch),
        )
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)

    # ------------------------------------------------------------------ filtering
    def _build_replay_buffer(self) -> ReplayBuffer:
        replay_buffer = super()._build_replay_buffer()
        replay_buffer.poll_interval = sampler_options(self.config.get("sampo", None)).poll_interval_s
        options = filter_options(self.config.algorithm)
        filtering_cls = FILTERING_BUFFERS.get(type(replay_buffer))  # None: a user's custom sampler
        if not options.enable or filtering_cls is None:
            return replay_buffer
        # verl builds its own buffer with the right sizes; rebuild ours from the same arguments.
        params = inspect.signature(ReplayBuffer.__init__).parameters
        kwargs = {name: getattr(replay_buffer, name) for name in params if name != "self"}
        return filtering_cls(options=options, algorithm_config=self.config.algorithm, **kwargs)

    # ------------------------------------------------------------------ validation
    def _val_metrics_update(
        self, data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected_acc_counts=None
    ) -> dict[str, float]:
        task_seeds, reward_extra_infos_dict = take_task_seeds(reward_extra_infos_dict)
        if self.val_outcomes_file and task_seeds is not None:
            expected = sum((expected_acc_counts or {}).values()) or len(task_seeds)
            record = outcomes_record(self.global_steps, data_sources, task_seeds, reward_extra_infos_dict, expected)
            append_outcomes(self.val_outcomes_file, record)
        return super()._val_metrics_update(
            data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected_acc_counts=expected_acc_counts
        )

    # ------------------------------------------------------------------ metrics
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        extra = [ef for ef, real in zip(pop_extra_fields(data), real_rows(batch.tags), strict=True) if real]
        metrics.update(turn_metrics(extra))
        metrics.update(staleness_metrics(extra, global_steps))
        metrics.update(dropped_metrics(metrics, len({key.split("_")[0] for key in batch.keys})))

        fired = self.collapse_detector.update(global_steps, metrics)
        if self.collapse_detector.config.enable:
            metrics.update(self.collapse_detector.step_metrics(fired))
        if fired and self.collapse_detector.config.enable:
            logger.warning("collapse detected at step %d: %s", global_steps, ", ".join(fired))
            if self.collapse_detector.config.stop_on_collapse:
                self._save_checkpoint()
                print(
                    f"[sampo] stopping at step {global_steps}: collapse rule(s) {fired} fired "
                    f"(sampo.collapse.*); checkpoint saved to {self.config.trainer.default_local_dir}"
                )
                self.total_training_steps = global_steps


@register_trainer("sampo")
class SampoTrainer(SampoHooks, PPOTrainerSync):
    """verl's v1 ``sync`` trainer with :class:`SampoHooks`."""

    verl_mode = SAMPO_MODES["sampo"]


@register_trainer("sampo_colocate_async")
class SampoColocateAsyncTrainer(SampoHooks, PPOTrainerColocateAsync):
    """verl's v1 ``colocate_async`` trainer (partial rollout, one pool) with :class:`SampoHooks`."""

    verl_mode = SAMPO_MODES["sampo_colocate_async"]


@register_trainer("sampo_separate_async")
class SampoSeparateAsyncTrainer(SampoHooks, PPOTrainerSeparateAsync):
    """verl's v1 ``separate_async`` trainer (rollout on its own pool) with :class:`SampoHooks`."""

    verl_mode = SAMPO_MODES["sampo_separate_async"]
