"""Per-task validation outcomes (``sampo.validation``): the record of one validation from verl's
per-sample lists, the file across resumes, and the trainer hook that keeps verl's means unchanged."""

import json

import numpy as np
import pytest

from sampo_verl.trainer.ppo import SampoTrainer
from sampo_verl.trainer.val_outcomes import (
    ValOutcomes,
    append_outcomes,
    outcomes_record,
    read_val_outcomes,
    take_task_seeds,
    validation_options,
)


def verl_lists():
    """What verl's ``_validate`` hands ``_val_metrics_update``: one entry per validated episode."""
    sources = ["frozenlake", "frozenlake", "frozenlake", "sokoban"]
    infos = {
        "reward": [1.0, 0.0, 1.0, 0.0],
        "acc": [1.0, 0.0, 1.0, 0.0],
        "episode_length": [3, 8, 4, 5],
        "task_seed": [1_000_002, 1_000_000, 1_000_001, 1_000_000],
    }
    return sources, infos


def test_the_record_names_each_task_and_counts_the_missing_episodes():
    sources, infos = verl_lists()
    seeds, rest = take_task_seeds(infos)
    assert "task_seed" not in rest and "task_seed" in infos  # the caller's dict is left as it was
    record = outcomes_record(4, sources, seeds, rest, expected=6)
    seeds, acc = [1_000_002, 1_000_000, 1_000_001, 1_000_000], [1.0, 0.0, 1.0, 0.0]
    assert record == ValOutcomes(4, sources, seeds, acc, missing=2, episode_length=[3, 8, 4, 5])
    rows_of_other_sources = {**rest, "episode_length": [3, None, 4, 5]}  # e.g. a single-turn data source
    mixed = outcomes_record(4, sources, [1, None, 2, 3], rows_of_other_sources, expected=4)
    assert (mixed.task_seed, mixed.episode_length, mixed.missing) == ([1, 2, 3], [3, 4, 5], 0)


def test_success_per_task_in_the_order_asked_missing_tasks_failed_repeats_averaged():
    record = ValOutcomes(
        step=0,
        data_source=["frozenlake"] * 4 + ["sokoban"],
        task_seed=[7, 5, 7, 9, 5],
        acc=[1.0, 1.0, 0.0, 0.0, 0.0],
    )
    np.testing.assert_array_equal(record.success([5, 6, 7, 9], "frozenlake"), [1.0, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(record.success([5], "sokoban"), [0.0])
    np.testing.assert_array_equal(record.success([5]), [0.5])  # both environments' seed 5


def test_the_last_record_of_a_step_wins_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "cell" / "val_outcomes.jsonl"
    assert read_val_outcomes(path) == {}
    first = [ValOutcomes(s, ["frozenlake"], [1], [float(s == 4)]) for s in (0, 4, 8)]
    for record in first:
        append_outcomes(path, record)
    resumed = [ValOutcomes(4, ["frozenlake"], [1], [0.5]), ValOutcomes(8, ["frozenlake"], [1], [0.25])]
    for record in resumed:  # a second attempt resumed from the step-4 checkpoint: validates 4 again, then 8
        append_outcomes(path, record)
    with path.open("a") as out:
        out.write(json.dumps({"step": 12, "data_source": ["frozenlake"]})[:-7])  # killed mid-write
    records = read_val_outcomes(path)
    assert sorted(records) == [0, 4, 8]
    assert [records[s].acc for s in (0, 4, 8)] == [[0.0], [0.5], [0.25]]


def test_options():
    assert validation_options(None).outcomes_file is None
    assert validation_options({"validation": {"outcomes_file": "a.jsonl"}}).outcomes_file == "a.jsonl"
    with pytest.raises(ValueError, match="outcomes_file must be a path or null"):
        validation_options({"validation": {"outcomes_file": 3}})


@pytest.mark.parametrize("outcomes", [True, False])
def test_the_trainer_records_the_tasks_and_verls_means_do_not_change(tmp_path, outcomes):
    trainer = object.__new__(SampoTrainer)  # only the hook's own state
    trainer.global_steps, trainer.val_outcomes_file = 8, str(tmp_path / "o.jsonl") if outcomes else None
    sources, infos = verl_lists()
    uids = ["a", "b", "c", "d"]
    expected = {(s, u): 1 for s, u in zip(sources, uids, strict=True)}
    metrics = trainer._val_metrics_update(sources, uids, infos, [6, 16, 8, 10], expected_acc_counts=expected)
    assert metrics["val-core/frozenlake/acc/mean@1"] == pytest.approx(2 / 3)
    assert metrics["val-core/sokoban/acc/mean@1"] == 0.0
    assert not any("task_seed" in key for key in metrics)
    records = read_val_outcomes(tmp_path / "o.jsonl")
    if not outcomes:
        assert records == {}
        return
    np.testing.assert_array_equal(records[8].success([1_000_000, 1_000_001, 1_000_002], "frozenlake"), [0, 1, 1])
    assert records[8].missing == 0
