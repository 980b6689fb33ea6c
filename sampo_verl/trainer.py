"""SAMPO trainer: verl 0.9.1's v1 synchronous PPO trainer plus the hooks multi-turn agents need.

Registered as ``trainer.v1.trainer_mode=sampo``. Everything not listed here is verl's own
(rollout, KL loss, checkpoints, validation, logging).

- ``_compute_advantage``: for the multi-turn estimators (``gigpo``, ``empg``, ``grpo_steps``) it
  reads the per-turn fields that the environment agent loop stored in each sample's
  ``extra_fields`` (verl only hands ``index`` and tensors to registered estimators) and the
  old-policy token entropy that verl's ``_compute_old_log_prob`` keeps in TransferQueue.
- Dynamic filtering: ``SampoReplayBuffer`` replaces verl's sync replay buffer when
  ``algorithm.filter_groups.enable=true`` (criteria ``reward`` or ``advantage``, cold start,
  a limit on refill rounds, then a top-up with the least-bad groups).
- ``_compute_metrics``: per-turn rates (format-valid, action-valid, success) and the collapse
  detector of :mod:`sampo_verl.diagnostics`, which can stop the run with a checkpoint.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from typing import Any

import numpy as np
import torch
import transfer_queue as tq
from omegaconf import DictConfig
from tensordict import TensorDict

from verl.trainer.ppo import core_algos
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.workers.utils.padding import response_to_nested

from sampo_verl import advantages, filtering
from sampo_verl.diagnostics import CollapseConfig, CollapseDetector

logger = logging.getLogger(__name__)


def pop_extra_fields(data: Any) -> list[dict[str, Any]]:
    """The per-sample ``extra_fields`` dicts of a TransferQueue read, removed from ``data``."""
    return [getattr(ef, "data", ef) for ef in data.pop("extra_fields").tolist()]


def real_rows(tags: list[dict[str, Any]]) -> np.ndarray:
    """Rows that are not verl's synthetic padding (``upsample_batch_to_divisible_size`` appends copies
    of the first row's metadata, tagged ``is_padding``, to make the batch divisible by the mini-batch)."""
    return np.array([not tag.get("is_padding", False) for tag in tags], dtype=bool)


def multi_turn_advantages(
    algorithm_config: Any,
    uid: np.ndarray,
    extra_fields: list[dict[str, Any]],
    tensors: dict[str, torch.Tensor],
    real: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of the configured multi-turn estimator, (bs, response_length).

    ``tensors`` holds ``rm_scores``, ``response_mask`` and the estimator's extra tensors. The
    estimator sees the real rows only (a padding row repeats a real turn's ``traj_uid`` and ``step``);
    padding rows get zero advantages and returns, so they add nothing to the loss.
    """
    name = algorithm_config.adv_estimator
    all_real = bool(real.all())
    rows = torch.from_numpy(np.flatnonzero(real))
    non_tensor_batch = turn_fields([extra_fields[i] for i in rows.tolist()], advantages.required_fields(name))
    non_tensor_batch["uid"] = uid[real]
    selected = tensors if all_real else {field: tensor[rows] for field, tensor in tensors.items()}
    estimator_tensors = {f: selected[f] for f in advantages.required_tensor_fields(name)}
    advantages.validate_fields(name, non_tensor_batch, estimator_tensors)
    adv, returns = core_algos.get_adv_estimator_fn(name)(
        token_level_rewards=selected["rm_scores"],
        response_mask=selected["response_mask"],
        index=non_tensor_batch["uid"],
        config=algorithm_config,
        non_tensor_batch=non_tensor_batch,
        batch=estimator_tensors,
    )
    if all_real:
        return adv, returns
    full_adv = torch.zeros(tensors["response_mask"].shape, dtype=adv.dtype)
    full_returns = torch.zeros_like(full_adv)
    full_adv[rows] = adv
    full_returns[rows] = returns
    return full_adv, full_returns


def turn_fields(extra_fields: list[dict[str, Any]], names: set[str]) -> dict[str, np.ndarray]:
    """Column arrays of the per-turn fields ``names`` from each sample's ``extra_fields`` dict.

    A field missing from any sample is left out, so ``advantages.validate_fields`` can name it.
    """
    columns: dict[str, np.ndarray] = {}
    for name in names:
        if all(isinstance(ef, dict) and name in ef for ef in extra_fields):
            columns[name] = np.array([ef[name] for ef in extra_fields], dtype=object)
    return columns


@register_trainer("sampo")
class SampoTrainer(PPOTrainerSync):
    """verl's sync v1 trainer with multi-turn advantages, group filtering and collapse detection."""

    # verl branches on the literal mode name "sync" (replay buffer class, refill, checkpoints, the
    # trainer.v1.sync config section), from inside __init__ on; this trainer is its sync trainer
    # registered under another name, so the mode verl assigns from the config is ignored.
    @property
    def trainer_mode(self) -> str:
        return "sync"

    @trainer_mode.setter
    def trainer_mode(self, value: str) -> None:
        pass

    def __init__(self, config: DictConfig):
        super().__init__(config)
        sampo_cfg = config.get("sampo", None) or {}
        self.collapse_detector = CollapseDetector(CollapseConfig.from_mapping(sampo_cfg.get("collapse", None)))

    # ------------------------------------------------------------------ advantages
    def _compute_advantage(self, batch, metrics: dict):
        name = self.config.algorithm.adv_estimator
        if name not in advantages.MULTI_TURN_ESTIMATORS:
            return super()._compute_advantage(batch, metrics)

        tensor_fields = advantages.required_tensor_fields(name)
        fields = ["uid", "response_mask", "rm_scores", "extra_fields", *tensor_fields]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        response_mask = data["response_mask"]
        uid = np.array(data.pop("uid").tolist(), dtype=object)
        extra = pop_extra_fields(data)
        padded = data.to_padded_tensor()
        adv, returns = multi_turn_advantages(
            self.config.algorithm,
            uid,
            extra,
            {field: padded[field] for field in ["rm_scores", "response_mask", *tensor_fields]},
            real_rows(batch.tags),
        )
        output = TensorDict(
            {
                "advantages": response_to_nested(adv, response_mask),
                "returns": response_to_nested(returns, response_mask),
            },
            batch_size=len(batch),
        )
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)

    # ------------------------------------------------------------------ filtering
    def _build_replay_buffer(self) -> ReplayBuffer:
        replay_buffer = super()._build_replay_buffer()
        options = filtering.FilterOptions.from_algorithm_config(self.config.algorithm)
        if not options.enable or type(replay_buffer) is not ReplayBuffer:
            return replay_buffer
        # verl builds its own sync buffer with the right sizes; rebuild ours from the same arguments.
        params = inspect.signature(ReplayBuffer.__init__).parameters
        kwargs = {name: getattr(replay_buffer, name) for name in params if name != "self"}
        return SampoReplayBuffer(options=options, algorithm_config=self.config.algorithm, **kwargs)

    # ------------------------------------------------------------------ metrics
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        extra = pop_extra_fields(data)
        metrics.update(turn_metrics([ef for ef, real in zip(extra, real_rows(batch.tags), strict=True) if real]))

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


class SampoReplayBuffer(ReplayBuffer):
    """verl's sync replay buffer with the group filter of :mod:`sampo_verl.filtering`.

    verl's loop stays as it is (poll finished groups, evict those without signal, dispatch twice as
    many new prompts, drain, select); this class only changes three decisions in it:

    - which finished groups carry no signal: ``criterion=reward`` (all episode rewards equal) or
      ``criterion=advantage`` (every advantage of the configured multi-turn estimator is ~0);
    - when to stop: after ``max_num_gen_batches`` refill rounds in one training step nothing more
      is evicted, and during the first ``cold_start_steps`` steps nothing is;
    - which groups fill the batch: signal-carrying groups first, then the least-bad ones (largest
      spread), so a batch that stayed short is topped up rather than waited for.
    """

    def __init__(self, *, options: filtering.FilterOptions, algorithm_config: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.options = options
        self.algorithm_config = algorithm_config
        self._dispatch = self.refill_fn
        self.refill_fn = self._counted_refill
        self._rounds = 0
        self._dropped = 0
        self._global_steps = 0
        # uid -> (keeps signal, spread) for finished groups, as judged once
        self._verdicts: dict[str, tuple[bool, float]] = {}

    def _counted_refill(self, num_prompts: int) -> Any:
        self._rounds += 1
        return self._dispatch(num_prompts)

    def _filtering(self, partition_id: str) -> bool:
        if partition_id == "val" or not self.options.active(self._global_steps):
            return False
        limit = self.options.max_num_gen_batches
        return limit <= 0 or self._rounds < limit

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        if partition_id == "val":
            return super().sample(global_steps, partition_id, batch_size)
        self._global_steps, self._rounds, self._dropped = global_steps, 0, 0
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        chosen = {key.split("_")[0] for key in batch.keys}
        verdicts = [self._verdicts.get(uid, (True, 0.0)) for uid in chosen]
        metrics.update(
            {
                "filter/active": float(self.options.active(global_steps)),
                "filter/rounds": float(self._rounds),
                "filter/dropped_groups": float(self._dropped),
                "filter/kept_groups": float(sum(keep for keep, _ in verdicts)),
                "filter/topped_up_groups": float(sum(not keep for keep, _ in verdicts)),
            }
        )
        for uid in chosen:
            self._verdicts.pop(uid, None)
        return batch, metrics

    def _dapo_filtered_keys(self, partition_id: str) -> tuple[set[str], Counter]:
        if not self._filtering(partition_id):
            return set(), Counter()
        finished = self.finished_keys[partition_id]
        new_uids = finished - self._verdicts.keys()
        if new_uids:
            self._judge(partition_id, new_uids)
        dropped = {uid for uid in finished if not self._verdicts[uid][0]}
        self._dropped += len(dropped)
        for uid in dropped:
            del self._verdicts[uid]
        return dropped, Counter({0.0: len(dropped)}) if dropped else Counter()

    def _judge(self, partition_id: str, uids: set[str]) -> None:
        keys = [key for key in self.partitions[partition_id] if "_" in key and key.split("_")[0] in uids]
        if not keys:
            return
        data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["extra_fields", "rm_scores"])
        extra = pop_extra_fields(data)
        uid = np.array([key.split("_")[0] for key in keys], dtype=object)
        if all(advantages.EPISODE_REWARD in ef for ef in extra):
            reward = np.array([float(ef[advantages.EPISODE_REWARD]) for ef in extra])
        else:  # single-turn rollouts: verl's canonical reward
            reward = np.array([float(score.sum()) for score in data["rm_scores"]])
        adv = None
        if self.options.criterion == "advantage":
            adv = group_advantages(self.algorithm_config, uid, extra)
        verdict = filtering.judge_groups(uid, reward, adv, criterion=self.options.criterion, atol=self.options.atol)
        for group_uid, keep, spread in zip(verdict.uids, verdict.keep, verdict.spread, strict=True):
            self._verdicts[group_uid] = (bool(keep), float(spread))

    def _select_prompt_uids(self, partition_id: str, sampleable_keys: set[str], batch_size: int):
        selected, partition_snapshot, steps = super()._select_prompt_uids(
            partition_id, sampleable_keys, len(sampleable_keys)
        )

        def rank(uid: str) -> tuple[bool, float]:
            keep, spread = self._verdicts.get(uid, (True, 0.0))
            return not keep, -spread

        # stable sort: signal first, then the least bad (largest spread); verl's age order within ties
        selected.sort(key=rank)
        return selected[:batch_size], partition_snapshot, steps


def group_advantages(algorithm_config: Any, uid: np.ndarray, extra_fields: list[dict[str, Any]]) -> np.ndarray:
    """Per-row advantages of the configured multi-turn estimator (filter criterion ``advantage``)."""
    ones = torch.ones(len(uid), 1)
    tensors = {"rm_scores": torch.zeros_like(ones), "response_mask": ones}
    adv, _ = multi_turn_advantages(algorithm_config, uid, extra_fields, tensors, np.ones(len(uid), dtype=bool))
    return adv[:, 0].numpy()


def turn_metrics(extra_fields: list[dict[str, Any]]) -> dict[str, float]:
    """Per-turn rates logged every step (``sampo/*``); empty when the rollout has no such fields."""
    rows = [ef for ef in extra_fields if isinstance(ef, dict)]
    out: dict[str, float] = {}
    for field, metric in (("format_valid", "format_valid_rate"), ("action_valid", "action_valid_rate")):
        values = [float(ef[field]) for ef in rows if field in ef]
        if values:
            out[f"sampo/{metric}"] = float(np.mean(values))
    # one value per episode: the last turn carries the episode outcome
    last_turns: dict[str, dict] = {}
    for ef in rows:
        if "traj_uid" in ef and "step" in ef:
            prev = last_turns.get(ef["traj_uid"])
            if prev is None or ef["step"] > prev["step"]:
                last_turns[ef["traj_uid"]] = ef
    if last_turns:
        episodes = list(last_turns.values())
        out["sampo/success_rate"] = float(np.mean([float(ef.get("won", 0.0)) for ef in episodes]))
        out["sampo/episode_length"] = float(np.mean([ef["step"] + 1 for ef in episodes]))
    return out
