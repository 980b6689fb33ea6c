"""Staleness per turn and per episode, worked out by hand."""

import pytest

from sampo_verl.trainer.staleness import dropped_metrics, staleness_metrics


def turn(traj: str, lo: int, hi: int | None = None) -> dict:
    return {"traj_uid": traj, "min_global_steps": lo, "max_global_steps": lo if hi is None else hi}


def test_staleness_of_turns_and_episodes_at_a_step():
    # step 5 trains version 4. Episode a: turns on 2, 2->3 (resumed after an abort), 3; episode b: 4, 4;
    # episode c: one turn on 0.
    extra = [turn("a", 2), turn("a", 2, 3), turn("a", 3), turn("b", 4), turn("b", 4), turn("c", 0)]
    m = staleness_metrics(extra, global_steps=5)
    # per-turn staleness (4 - newest version): 2, 1, 1, 0, 0, 4
    assert m["sampo/staleness/turn_mean"] == pytest.approx(8 / 6)
    assert m["sampo/staleness/turn_max"] == 4
    assert m["sampo/staleness/turn_span_frac"] == pytest.approx(1 / 6)
    dist = [m[f"sampo/staleness/turn_dist/{k}"] for k in ("0", "1", "2", "3+")]
    assert dist == pytest.approx([2 / 6, 2 / 6, 1 / 6, 1 / 6]) and sum(dist) == pytest.approx(1)
    # episode versions: a spans 2..3 (2 versions), b 1, c 1
    assert m["sampo/staleness/episode_span_frac"] == pytest.approx(1 / 3)
    assert m["sampo/staleness/episode_versions_mean"] == pytest.approx(4 / 3)


def test_on_policy_batch_is_zero_stale():
    m = staleness_metrics([turn("a", 6), turn("a", 6), turn("b", 6)], global_steps=7)
    assert m["sampo/staleness/turn_max"] == 0 and m["sampo/staleness/turn_dist/0"] == 1.0
    assert m["sampo/staleness/episode_span_frac"] == 0.0


def test_turns_without_versions_give_no_metrics():
    assert staleness_metrics([], global_steps=3) == {}
    assert staleness_metrics([turn("a", 1), {"traj_uid": "b"}], global_steps=3) == {}


def test_dropped_fraction_counts_the_groups_dropped_for_staleness():
    assert dropped_metrics({"training/off_policy/evicted_samples": 2}, trained_groups=6) == {
        "sampo/staleness/dropped_group_frac": 0.25
    }
    assert dropped_metrics({}, trained_groups=6)["sampo/staleness/dropped_group_frac"] == 0.0
