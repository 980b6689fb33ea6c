"""The filtering replay buffers without Ray (TransferQueue replaced by an in-memory table): the sync
buffer and the async modes' buffer give the same verdicts and choices on the same groups."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from turn_samples import TABLE

from sampo_verl.algorithms.filtering import FilterOptions
from sampo_verl.trainer import replay_buffer
from sampo_verl.trainer.replay_buffer import SampoReplayBuffer, SampoReplayBufferAsync

pytestmark = pytest.mark.parametrize("buffer_cls", [SampoReplayBuffer, SampoReplayBufferAsync])


class FakeTQ:
    """kv_batch_get over an in-memory {key: extra_fields} table, as the replay buffer uses it."""

    def __init__(self, table):
        self.table = table

    def kv_batch_get(self, keys, partition_id, select_fields):
        extra = np.empty(len(keys), dtype=object)
        extra[:] = [self.table[k] for k in keys]
        return {
            "extra_fields": extra,
            "rm_scores": [torch.tensor([0.0, self.table[k]["episode_reward"]]) for k in keys],
        }


def make_buffer(monkeypatch, buffer_cls, table, adv_estimator="gigpo", **options):
    monkeypatch.setattr(replay_buffer, "tq", FakeTQ(table))
    dispatched = []
    buf = buffer_cls(
        options=FilterOptions(enable=True, **options),
        algorithm_config=OmegaConf.create(
            {"adv_estimator": adv_estimator, "gamma": 1.0, "gigpo": {"mode": "mean_norm"}}
        ),
        trainer_mode="sync" if buffer_cls is SampoReplayBuffer else "colocate_async",
        trainer_config={},
        max_off_policy_threshold=None,
        max_off_policy_strategy="drop",
        sampler_kwargs={},
        refill_fn=dispatched.append,
        filter_groups_metric="reward",
        train_batch_size=2,
        gen_batch_size=1,
    )
    buf._global_steps = 1
    for key in table:
        buf.partitions["train"][key] = {"status": "success", "global_steps": 1}
    buf.finished_keys["train"] = {key.split("_")[0] for key in table}
    return buf, dispatched


def test_reward_criterion_drops_equal_reward_groups(monkeypatch, buffer_cls):
    buf, _ = make_buffer(monkeypatch, buffer_cls, TABLE, criterion="reward")
    dropped, _ = buf._dapo_filtered_keys("train")
    assert dropped == {"flat", "steps"}


def test_advantage_criterion_keeps_groups_with_step_signal(monkeypatch, buffer_cls):
    buf, _ = make_buffer(monkeypatch, buffer_cls, TABLE, criterion="advantage")
    dropped, _ = buf._dapo_filtered_keys("train")
    assert dropped == {"flat"}  # gigpo step term: anchor x has returns 1 vs 0 -> +-0.5


def test_no_filtering_in_cold_start_after_round_limit_or_on_val(monkeypatch, buffer_cls):
    buf, dispatched = make_buffer(monkeypatch, buffer_cls, TABLE, cold_start_steps=1)
    assert buf._dapo_filtered_keys("train")[0] == set()  # step 1 <= cold_start_steps
    buf, dispatched = make_buffer(monkeypatch, buffer_cls, TABLE, max_num_gen_batches=1)
    buf.refill_fn(4)  # one refill round dispatched
    assert dispatched == [4] and buf._rounds == 1
    assert buf._dapo_filtered_keys("train")[0] == set()  # limit reached: keep everything
    assert buf._dapo_filtered_keys("val")[0] == set()


def test_selection_prefers_signal_then_least_bad(monkeypatch, buffer_cls):
    buf, _ = make_buffer(
        monkeypatch, buffer_cls, TABLE, criterion="reward", max_num_gen_batches=1, topup_order="spread"
    )
    buf._judge("train", {"sig", "flat", "steps"})
    buf._verdicts["steps"] = (False, 0.5)  # pretend: a dropped group with some spread
    selected, _, _ = buf._select_prompt_uids("train", {"flat", "steps", "sig"}, 2)
    assert selected == ["sig", "steps"]


def test_top_up_in_arrival_order_by_default(monkeypatch, buffer_cls):
    """The release fills its last round with signal-free groups in the order they arrived."""
    buf, _ = make_buffer(monkeypatch, buffer_cls, TABLE, criterion="reward", max_num_gen_batches=1)
    assert buf.options.topup_order == "arrival"
    buf._judge("train", {"sig", "flat", "steps"})
    buf._verdicts["steps"] = (False, 0.5)  # a larger spread does not jump the queue
    selected, _, _ = buf._select_prompt_uids("train", {"steps", "flat", "sig"}, 2)
    assert selected == ["sig", "flat"]  # the partition holds sig, flat, steps in that order
    selected, _, _ = buf._select_prompt_uids("train", {"steps", "flat", "sig"}, 3)
    assert selected == ["sig", "flat", "steps"]
