"""The SAMPO trainer's replay buffers: verl's sync and async replay buffers with the group filter of
:mod:`sampo_verl.algorithms.filtering` (``algorithm.filter_groups.enable=true``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer, ReplayBufferAsync

from sampo_verl.agent import turns
from sampo_verl.algorithms import filtering
from sampo_verl.options import options_section, read_options, section_of
from sampo_verl.trainer.turn_batch import group_advantages, pop_extra_fields


@options_section("sampo.sampler")
@dataclass(frozen=True)
class SamplerOptions:
    """``sampo.sampler``: how the trainer waits for rollouts.

    poll_interval_s: how often the sync replay buffer looks for finished groups while a step's
    rollouts run. verl's buffer is built with its default of 2 s (no config reaches it), so every
    generation round ended on the next 2-s tick: ~1 s lost per round, 1-3 rounds per step. Each look
    is one TransferQueue listing (a few ms).
    """

    poll_interval_s: float = 0.1

    def check(self, prefix: str) -> None:
        if not self.poll_interval_s > 0:
            raise ValueError(f"{prefix}.poll_interval_s must be > 0, got {self.poll_interval_s}")


def sampler_options(sampo_config: Mapping[str, Any] | None) -> SamplerOptions:
    """``sampo.sampler`` of the ``sampo`` config section (absent: the defaults)."""
    return read_options(SamplerOptions, section_of(sampo_config, "sampler"), "sampo.sampler")


class GroupFilter:
    """The group filter of :mod:`sampo_verl.algorithms.filtering`, mixed in before one of verl's buffers.

    verl's loops stay as they are (poll finished groups, evict those without signal, dispatch new prompts:
    twice as many in sync mode, as many in the async modes; select); this class only changes three
    decisions in them:

    - which finished groups carry no signal: ``criterion=reward`` (all episode rewards equal) or
      ``criterion=advantage`` (every advantage of the configured multi-turn estimator is ~0);
    - when to stop: after ``max_num_gen_batches`` refill rounds in one training step nothing more
      is evicted, and during the first ``cold_start_steps`` steps nothing is;
    - which groups fill the batch: signal-carrying groups first, then signal-free ones in arrival order
      (``topup_order=arrival``, the release) or the least-bad first (``spread``: largest spread), so a
      batch that stayed short is topped up rather than waited for.
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
        if all(turns.EPISODE_REWARD in ef for ef in extra):
            reward = np.array([float(ef[turns.EPISODE_REWARD]) for ef in extra])
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

        # arrival: the order in which the groups' samples entered the partition (verl's own order sorts a
        # set by dispatch step, which leaves ties in hash order)
        arrival = {uid: i for i, uid in enumerate(dict.fromkeys(key.split("_")[0] for key in partition_snapshot))}

        def rank(uid: str) -> tuple[bool, float, int]:
            keep, spread = self._verdicts.get(uid, (True, 0.0))
            least_bad_first = -spread if self.options.topup_order == "spread" else 0.0
            return not keep, least_bad_first, arrival.get(uid, len(arrival))

        selected.sort(key=rank)  # signal first, then the signal-free groups
        return selected[:batch_size], partition_snapshot, steps


class SampoReplayBuffer(GroupFilter, ReplayBuffer):
    """verl's sync replay buffer with :class:`GroupFilter`."""


class SampoReplayBufferAsync(GroupFilter, ReplayBufferAsync):
    """verl's async replay buffer (``colocate_async``, ``separate_async``) with :class:`GroupFilter`."""


# verl's buffer -> the same buffer with the group filter
FILTERING_BUFFERS: dict[type[ReplayBuffer], type[ReplayBuffer]] = {
    ReplayBuffer: SampoReplayBuffer,
    ReplayBufferAsync: SampoReplayBufferAsync,
}
