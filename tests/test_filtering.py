import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from sampo_verl.filtering import FilterOptions, GroupAccumulator, judge_groups


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
    np.testing.assert_array_equal(verdict.row_group, [0, 0, 0, 1, 1, 1, 2, 2, 3])


def test_advantage_criterion_keeps_equal_reward_groups_with_step_signal():
    uid, reward = rows_for({"a": [1, 1, 1], "b": [1, 1], "c": [0, 1]})
    advantages = np.array([0.0, 0.3, -0.3, 0.0, 1e-9, 0.5, -0.5])
    by_reward = judge_groups(uid, reward, advantages, criterion="reward")
    by_advantage = judge_groups(uid, reward, advantages, criterion="advantage", atol=1e-6)
    assert list(by_reward.keep) == [False, False, True]
    assert list(by_advantage.keep) == [True, False, True]
    np.testing.assert_allclose(by_advantage.spread, [0.3, 1e-9, 0.5])
    np.testing.assert_allclose(by_advantage.tiebreak, [0.2, 0.5e-9, 0.5])


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


def options(**kw):
    return FilterOptions(**{"enable": True, **kw})


def test_accumulator_collects_until_target():
    acc = GroupAccumulator(options(max_num_gen_batches=5), target_groups=3, global_step=1)
    acc.add_round(*rows_for({"a": [0, 1], "b": [1, 1], "c": [0, 1]}))  # a, c kept
    assert not acc.done
    acc.add_round(*rows_for({"d": [0, 0], "e": [1, 0], "f": [0, 1]}))  # e, f kept: 4 >= 3
    assert acc.done
    result = acc.result()
    # rows: round 0 keeps a and c; round 1 keeps e only (f is surplus beyond the target)
    assert [r.tolist() for r in result.rows] == [[0, 1, 4, 5], [2, 3]]
    assert result.metrics == {
        "filter/active": 1.0,
        "filter/rounds": 2.0,
        "filter/kept_groups": 3.0,
        "filter/dropped_groups": 2.0,
        "filter/topped_up_groups": 0.0,
        "filter/surplus_groups": 1.0,
        "filter/missing_groups": 0.0,
    }


def test_accumulator_tops_up_with_least_bad_groups_after_max_rounds():
    acc = GroupAccumulator(options(criterion="advantage", max_num_gen_batches=2), target_groups=4, global_step=1)
    uid, reward = rows_for({"a": [1, 1], "b": [0, 1], "c": [0, 0]})
    acc.add_round(uid, reward, np.array([0, 0, 0.5, -0.5, 1e-8, 0]))  # b kept; a spread 0, c 1e-8
    uid, reward = rows_for({"d": [1, 1], "e": [1, 1]})
    acc.add_round(uid, reward, np.array([1e-7, 0, 1e-7, -1e-7]))  # both dropped; e has larger mean |A|
    assert acc.done
    result = acc.result()
    # top up 3: d and e (spread 1e-7; e wins the tie on mean |A|), then c (1e-8); a stays out
    assert [r.tolist() for r in result.rows] == [[2, 3, 4, 5], [0, 1, 2, 3]]
    assert result.metrics["filter/topped_up_groups"] == 3.0
    assert result.metrics["filter/kept_groups"] == 1.0
    assert result.metrics["filter/missing_groups"] == 0.0

    # top-up order among the dropped: e before d before c
    acc = GroupAccumulator(options(criterion="advantage", max_num_gen_batches=2), target_groups=2, global_step=1)
    acc.add_round(*rows_for({"a": [1, 1], "b": [0, 1], "c": [0, 0]}), np.array([0, 0, 0.5, -0.5, 1e-8, 0]))
    acc.add_round(*rows_for({"d": [1, 1], "e": [1, 1]}), np.array([1e-7, 0, 1e-7, -1e-7]))
    assert [r.tolist() for r in acc.result().rows] == [[2, 3], [2, 3]]


def test_accumulator_reports_missing_groups_when_everything_is_short():
    acc = GroupAccumulator(options(max_num_gen_batches=1), target_groups=5, global_step=3)
    acc.add_round(*rows_for({"a": [1, 1], "b": [0, 1]}))
    assert acc.done
    result = acc.result()
    assert [r.tolist() for r in result.rows] == [[0, 1, 2, 3]]
    assert result.metrics["filter/missing_groups"] == 3.0
    assert result.metrics["filter/topped_up_groups"] == 1.0


def test_no_round_limit_keeps_sampling():
    acc = GroupAccumulator(options(max_num_gen_batches=0), target_groups=1, global_step=1)
    for _ in range(10):
        acc.add_round(*rows_for({"a": [1, 1]}))
        assert not acc.done
    with pytest.raises(RuntimeError, match="before done"):
        acc.result()


@pytest.mark.parametrize("enable, step, filtering", [(True, 2, False), (True, 3, True), (False, 9, False)])
def test_cold_start_and_disabled_keep_the_first_round_whole(enable, step, filtering):
    acc = GroupAccumulator(FilterOptions(enable=enable, cold_start_steps=2), target_groups=2, global_step=step)
    acc.add_round(*rows_for({"a": [1, 1], "b": [0, 1], "c": [0, 0]}))
    assert acc.done == (not filtering)
    if not filtering:
        result = acc.result()
        assert [r.tolist() for r in result.rows] == [list(range(6))]
        assert result.metrics["filter/active"] == 0.0
        assert result.metrics["filter/dropped_groups"] == 0.0
        with pytest.raises(RuntimeError, match="done"):
            acc.add_round(*rows_for({"d": [0, 1]}))


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
    opts = FilterOptions.from_algorithm_config(algorithm)
    assert opts == FilterOptions(enable=True, criterion="advantage", max_num_gen_batches=4, cold_start_steps=10)
    assert not opts.active(10) and opts.active(11)
    assert FilterOptions.from_algorithm_config(OmegaConf.create({"filter_groups": None})) == FilterOptions()


@pytest.mark.parametrize(
    "section, message",
    [
        ({"criterion": "entropy"}, "algorithm.filter_groups.criterion"),
        ({"cold_start_steps": -1}, "algorithm.filter_groups.cold_start_steps"),
        ({"atol": -1.0}, "algorithm.filter_groups.atol"),
        ({"cold_start": 3}, "unknown algorithm.filter_groups option"),
    ],
)
def test_bad_options_name_the_flag(section, message):
    with pytest.raises(ValueError, match=message):
        FilterOptions.from_algorithm_config({"filter_groups": section})


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        judge_groups(np.array([], dtype=object), np.array([]))
    with pytest.raises(ValueError, match="episode_reward.*NaN"):
        judge_groups(np.array(["a", "a"], dtype=object), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="criterion 'advantage' needs"):
        judge_groups(np.array(["a"], dtype=object), np.array([1.0]), criterion="advantage")
    with pytest.raises(ValueError, match="one value per row"):
        judge_groups(np.array(["a", "b"], dtype=object), np.array([1.0]))
    with pytest.raises(ValueError, match="target_groups"):
        GroupAccumulator(FilterOptions(), target_groups=0, global_step=1)
