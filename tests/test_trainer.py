"""SAMPO trainer pieces that run without Ray: per-turn field plumbing, turn metrics and the
filtering replay buffer (TransferQueue replaced by an in-memory table)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sampo_verl import trainer as trainer_mod
from sampo_verl.filtering import FilterOptions
from sampo_verl.trainer import SampoReplayBuffer, turn_fields, turn_metrics


def turn(traj, step, reward, anchor="s", step_reward=0.0, valid=True, won=False):
    return {
        "traj_uid": traj,
        "step": step,
        "anchor": anchor,
        "step_reward": step_reward,
        "episode_reward": reward,
        "action_valid": valid,
        "format_valid": valid,
        "won": won,
    }


def test_turn_fields_leaves_out_fields_missing_anywhere():
    extra = [turn("a_0", 0, 1.0), {**turn("a_0", 1, 1.0)}]
    del extra[1]["anchor"]
    cols = turn_fields(extra, {"traj_uid", "anchor", "step"})
    assert set(cols) == {"traj_uid", "step"}
    assert cols["step"].tolist() == [0, 1]


def test_turn_metrics_by_hand():
    extra = [
        turn("a_0", 0, 1.0),
        turn("a_0", 1, 1.0, won=True),  # 2-turn win
        turn("a_1", 0, 0.0, valid=False),
        turn("a_1", 1, 0.0),
        turn("a_1", 2, 0.0),  # 3-turn loss
    ]
    m = turn_metrics(extra)
    assert m["sampo/format_valid_rate"] == pytest.approx(4 / 5)
    assert m["sampo/action_valid_rate"] == pytest.approx(4 / 5)
    assert m["sampo/success_rate"] == 0.5
    assert m["sampo/episode_length"] == 2.5
    assert turn_metrics([{"reward_extra_info": {}}]) == {}  # single-turn rollouts: nothing to report


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


def make_buffer(monkeypatch, table, adv_estimator="gigpo", **options):
    monkeypatch.setattr(trainer_mod, "tq", FakeTQ(table))
    dispatched = []
    buf = SampoReplayBuffer(
        options=FilterOptions(enable=True, **options),
        algorithm_config=OmegaConf.create(
            {"adv_estimator": adv_estimator, "gamma": 1.0, "gigpo": {"mode": "mean_norm"}}
        ),
        trainer_mode="sync",
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


# group "sig": rewards differ; "flat": equal rewards and equal steps (no signal at all);
# "steps": equal episode rewards, but the same anchor led to different step returns (GiGPO signal)
TABLE = {
    "sig_0_0": turn("sig_0", 0, 1.0, step_reward=1.0),
    "sig_1_0": turn("sig_1", 0, 0.0),
    "flat_0_0": turn("flat_0", 0, 0.0),
    "flat_1_0": turn("flat_1", 0, 0.0),
    "steps_0_0": turn("steps_0", 0, 1.0, anchor="x", step_reward=1.0),
    "steps_0_1": turn("steps_0", 1, 1.0, anchor="y", step_reward=0.0),
    "steps_1_0": turn("steps_1", 0, 1.0, anchor="x", step_reward=0.0),
    "steps_1_1": turn("steps_1", 1, 1.0, anchor="z", step_reward=0.0),
}


def test_reward_criterion_drops_equal_reward_groups(monkeypatch):
    buf, _ = make_buffer(monkeypatch, TABLE, criterion="reward")
    dropped, _ = buf._dapo_filtered_keys("train")
    assert dropped == {"flat", "steps"}


def test_advantage_criterion_keeps_groups_with_step_signal(monkeypatch):
    buf, _ = make_buffer(monkeypatch, TABLE, criterion="advantage")
    dropped, _ = buf._dapo_filtered_keys("train")
    assert dropped == {"flat"}  # gigpo step term: anchor x has returns 1 vs 0 -> +-0.5


def test_no_filtering_in_cold_start_after_round_limit_or_on_val(monkeypatch):
    buf, dispatched = make_buffer(monkeypatch, TABLE, cold_start_steps=1)
    assert buf._dapo_filtered_keys("train")[0] == set()  # step 1 <= cold_start_steps
    buf, dispatched = make_buffer(monkeypatch, TABLE, max_num_gen_batches=1)
    buf.refill_fn(4)  # one refill round dispatched
    assert dispatched == [4] and buf._rounds == 1
    assert buf._dapo_filtered_keys("train")[0] == set()  # limit reached: keep everything
    assert buf._dapo_filtered_keys("val")[0] == set()


def test_selection_prefers_signal_then_least_bad(monkeypatch):
    buf, _ = make_buffer(monkeypatch, TABLE, criterion="reward", max_num_gen_batches=1)
    buf._judge("train", {"sig", "flat", "steps"})
    buf._verdicts["steps"] = (False, 0.5)  # pretend: a dropped group with some spread
    selected, _, _ = buf._select_prompt_uids("train", {"flat", "steps", "sig"}, 2)
    assert selected == ["sig", "steps"]


@pytest.mark.parametrize("method", ["sampo", "grpo"])
def test_trainer_runs_verl_sync_mode_with_the_filtering_buffer(method):
    """verl's __init__ assigns the configured mode ("sampo") and builds the replay buffer from it:
    the trainer must still take every "sync" branch, and filtering methods get SampoReplayBuffer."""
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    from sampo_verl.main_ppo import CONFIG_DIR
    from sampo_verl.trainer import SampoTrainer

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose("sampo_ppo", overrides=[f"method={method}"])
    trainer = object.__new__(SampoTrainer)
    trainer.config = config
    trainer.trainer_mode = config.trainer.v1.trainer_mode  # as verl's PPOTrainerBase.__init__ does
    assert config.trainer.v1.trainer_mode == "sampo" and trainer.trainer_mode == "sync"
    buffer = trainer._build_replay_buffer()
    assert buffer.trainer_mode == "sync"
    assert type(buffer) is (SampoReplayBuffer if method == "sampo" else ReplayBuffer)


def test_padding_rows_are_left_out_of_the_estimator_and_get_zero_advantage():
    """verl pads a batch with copies of its first row's metadata (same traj_uid and step): the
    estimator must see only the real rows, and the padding rows must not carry any advantage."""
    from sampo_verl.trainer import multi_turn_advantages

    config = OmegaConf.create({"adv_estimator": "gigpo", "gamma": 0.9, "gigpo": {"mode": "mean_norm"}})
    extra = [TABLE[key] for key in TABLE]
    uid = np.array([key.split("_")[0] for key in TABLE], dtype=object)
    n, length = len(extra), 3
    tensors = {"rm_scores": torch.zeros(n, length), "response_mask": torch.ones(n, length)}
    real_adv, real_returns = multi_turn_advantages(config, uid, extra, tensors, np.ones(n, dtype=bool))

    padded_extra = extra + [extra[0], extra[0]]
    padded_uid = np.concatenate([uid, np.array(["pad1", "pad1"], dtype=object)])
    padded_tensors = {k: torch.cat([v, v[:2]]) for k, v in tensors.items()}
    real = np.r_[np.ones(n, dtype=bool), False, False]
    adv, returns = multi_turn_advantages(config, padded_uid, padded_extra, padded_tensors, real)
    assert torch.equal(adv[:n], real_adv) and torch.equal(returns[:n], real_returns)
    assert not adv[n:].any() and not returns[n:].any()
    assert real_adv.abs().sum() > 0
    with pytest.raises(ValueError, match="share the same"):  # what verl's padding did before
        multi_turn_advantages(config, padded_uid, padded_extra, padded_tensors, np.ones(n + 2, dtype=bool))
