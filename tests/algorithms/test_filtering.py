import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sampo_verl.algorithms.filtering import FilterOptions, filter_options, judge_groups


def rows_for(groups):
    """groups: {uid: [episode rewards, one per row]} -> (uid (B,), reward (B,))."""
    uid = np.array([u for u, rewards in groups.items() for _ in rewards], dtype=object)
    reward = np.array([r for rewards in groups.values() for r in rewards], dtype=np.float64)
    return uid, reward


def test_reward_criterion_drops_groups_with_equal_rewards():
    uid, reward = rows_for({"q1": [1, 1, 1], "q0": [0, 1, 0], "q2": [0, 0], "q3": [0.5]})
    verdict = judge_groups(uid, reward, criterion="reward")
    assert list(verdict.uids) == ["q1", "q0", "q2", "q3"]  # arrival order
    assert list(verdict.keep) == [False, True, False, False]
    np.testing.assert_array_equal(verdict.spread, [0, 1, 0, 0])


def test_advantage_criterion_keeps_equal_reward_groups_with_step_signal():
    uid, reward = rows_for({"a": [1, 1, 1], "b": [1, 1], "c": [0, 1]})
    advantages = np.array([0.0, 0.3, -0.3, 0.0, 1e-9, 0.5, -0.5])
    by_reward = judge_groups(uid, reward, advantages, criterion="reward")
    by_advantage = judge_groups(uid, reward, advantages, criterion="advantage", atol=1e-6)
    assert list(by_reward.keep) == [False, False, True]
    assert list(by_advantage.keep) == [True, False, True]
    np.testing.assert_allclose(by_advantage.spread, [0.3, 1e-9, 0.5])


def test_token_level_advantages_are_reduced_per_row():
    uid, reward = rows_for({"a": [1, 1], "b": [0, 0]})
    token_adv = torch.zeros(4, 3)
    token_adv[1, 2] = -0.2  # only group a has a non-zero token
    verdict = judge_groups(uid, reward, token_adv, criterion="advantage")
    assert list(verdict.keep) == [True, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.0, 1.0])), min_size=1, max_size=30), st.randoms())
def test_verdict_matches_definition_and_ignores_row_order(rows, rnd):
    uid = np.array([f"u{g}" for g, _ in rows], dtype=object)
    reward = np.array([r for _, r in rows])
    verdict = judge_groups(uid, reward)
    for u, keep in zip(verdict.uids, verdict.keep):
        assert keep == (len(set(reward[uid == u])) > 1)
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    shuffled = judge_groups(uid[perm], reward[perm])
    assert dict(zip(shuffled.uids, shuffled.keep)) == dict(zip(verdict.uids, verdict.keep))


def test_options_from_verl_config():
    algorithm = OmegaConf.create(
        {
            "gamma": 1.0,
            "filter_groups": {
                "_target_": "verl.trainer.config.FilterGroupsConfig",
                "enable": True,
                "metric": "acc",
                "max_num_gen_batches": 4,
                "max_inflight_gen_batches": 1,
                "criterion": "advantage",
                "cold_start_steps": 10,
            },
        }
    )
    opts = filter_options(algorithm)
    assert opts == FilterOptions(enable=True, criterion="advantage", max_num_gen_batches=4, cold_start_steps=10)
    assert not opts.active(10) and opts.active(11)
    assert filter_options(OmegaConf.create({"filter_groups": None})) == FilterOptions()


@pytest.mark.parametrize(
    "section, message",
    [
        ({"criterion": "entropy"}, "algorithm.filter_groups.criterion"),
        ({"cold_start_steps": -1}, "algorithm.filter_groups.cold_start_steps"),
        ({"atol": -1.0}, "algorithm.filter_groups.atol"),
        ({"cold_start": 3}, "unknown algorithm.filter_groups option"),
        ({"topup_order": "random"}, "algorithm.filter_groups.topup_order"),
    ],
)
def test_bad_options_name_the_flag(section, message):
    with pytest.raises(ValueError, match=message):
        filter_options({"filter_groups": section})


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        judge_groups(np.array([], dtype=object), np.array([]))
    with pytest.raises(ValueError, match="episode_reward.*NaN"):
        judge_groups(np.array(["a", "a"], dtype=object), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="criterion 'advantage' needs"):
        judge_groups(np.array(["a"], dtype=object), np.array([1.0]), criterion="advantage")
    with pytest.raises(ValueError, match="one value per row"):
        judge_groups(np.array(["a", "b"], dtype=object), np.array([1.0]))
