"""The per-turn schema's readers: columns and turn metrics."""

import pytest

from turn_samples import turn

from sampo_verl.agent.turns import columns, turn_metrics


def test_columns_leave_out_fields_missing_anywhere():
    extra = [turn("a_0", 0, 1.0), {**turn("a_0", 1, 1.0)}]
    del extra[1]["anchor"]
    cols = columns(extra, {"traj_uid", "anchor", "step"})
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


def test_the_schema_names_the_estimators_as_readers_of_the_fields_they_read():
    from sampo_verl.agent.turns import ESTIMATORS, SCHEMA
    from sampo_verl.algorithms.multi_turn import MULTI_TURN_ESTIMATORS

    read = set().union(*(e.turn_fields for e in MULTI_TURN_ESTIMATORS.values()))
    assert read == {name for name, field in SCHEMA.items() if ESTIMATORS in field.readers}
