"""The CPU quickstart: its summary numbers from a metric history worked out by hand, and a smoke run
with tiny settings (behaviour cloning + 2 RL steps through the real trainers) that writes the report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.metrics import TRAIN_SUCCESS, VAL_SUCCESS, metric_series, read_metrics
from sampo_verl.plots import make_figure
from sampo_verl.runs.evaluate import play_episodes
from sampo_verl.runs.testbed import cpu_testbed
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, read_val_outcomes
from sampo_verl.runs.quickstart import (
    STABILITY_METRICS,
    SUCCESS_METRICS,
    VERL_LOG,
    main,
    summarise_run,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def history_fixture() -> dict[int, dict[str, float]]:
    """Validation at steps 0, 2, 4 (0.25 -> 0.5 -> 0.375); a collapse warning at step 3."""
    val = "val-core/sokoban/acc/mean@1"
    return {
        0: {val: 0.25},
        1: {TRAIN_SUCCESS: 0.2, "collapse/any": 0.0},
        2: {TRAIN_SUCCESS: 0.3, val: 0.5, "collapse/any": 0.0},
        3: {TRAIN_SUCCESS: 0.4, "collapse/any": 1.0},
        4: {TRAIN_SUCCESS: 0.4, val: 0.375, "collapse/any": 0.0},
    }


def test_summary_by_hand():
    summary = summarise_run(history_fixture(), "sokoban", "sampo", 1, val_tasks=8, bc_s=30.0, rl_s=90.0)
    assert (summary.success_after_bc, summary.success_after_rl) == (0.25, 0.375)
    assert (summary.best_success, summary.best_step, summary.steps) == (0.5, 2, 4)
    assert summary.collapse_steps == [3]
    text = summary.text()
    assert "0.250 after behaviour cloning -> 0.375 after 4 RL steps (+0.125; best 0.500 at step 2)" in text
    assert "collapse warnings: 1 at steps [3]" in text and "RL 1m30s" in text


@pytest.mark.parametrize("testbed", ["sokoban", "sokoban_long"])  # a testbed named apart from its environment
def test_summary_with_per_task_outcomes_has_the_paired_interval(testbed):
    seeds = list(range(10, 18))
    outcomes = {  # the history's means: 2/8, 4/8, 3/8
        0: ValOutcomes(0, ["sokoban"] * 8, seeds[::-1], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]),
        2: ValOutcomes(2, ["sokoban"] * 8, seeds, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
        4: ValOutcomes(4, ["sokoban"] * 7, seeds[:7], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], missing=1),
    }
    summary = summarise_run(history_fixture(), testbed, "sampo", 1, 8, 30.0, 90.0, outcomes, seeds)
    assert summary.task_seeds == seeds
    assert summary.task_success[0] == [0, 1, 1, 0, 0, 0, 0, 0]  # in the order of the seeds
    assert summary.task_success[4] == [1, 1, 1, 0, 0, 0, 0, 0]  # seed 17 did not start: failed
    for step, success in summary.task_success.items():  # the same numbers as verl's means
        assert np.mean(success) == history_fixture()[step]["val-core/sokoban/acc/mean@1"]
    low, high = summary.change_ci95  # per task: +1 on seed 10, 0 elsewhere (mean +0.125)
    assert low == 0.0 and 0.125 < high <= 0.5
    assert "(+0.125, paired 95% interval [+0.000, " in summary.text()
    assert json.loads(json.dumps(dataclasses.asdict(summary)))["task_success"]["2"] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_summary_needs_validation_before_and_after():
    history = history_fixture()
    del history[0]
    with pytest.raises(RuntimeError, match="no validation before and after"):
        summarise_run(history, "sokoban", "sampo", 0, 8, 0.0, 0.0)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    argv = [
        "--out",
        str(out),
        "--steps",
        "2",
        "--test-freq",
        "2",
        "--bc-episodes",
        "40",
        "--bc-steps",
        "30",  # a model that solves some lakes and not others: per-task outcomes that can disagree
        "--val-tasks",
        "8",
    ]
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        summary = main(argv)
    return out, summary, console.getvalue()


def test_smoke_run_keeps_the_console_quiet_and_verls_output_in_the_log(smoke):
    out, summary, console = smoke
    lines = console.splitlines()
    assert len(lines) <= 30 and f"verl's output (warnings, configs, per-step lines): {out / VERL_LOG}" in lines
    assert "[1/3] behaviour cloning" in console and summary.text() in console
    log = (out / VERL_LOG).read_text()
    assert "behaviour cloning" not in log and "Final validation metrics" in log  # verl's SFT trainer
    assert "training/global_step" in log  # verl's PPO trainer's per-step console line
    assert "UserWarning" not in console and "training/global_step" not in console


def test_smoke_run_writes_the_report(smoke):
    out, summary, _ = smoke
    report = out / "report"
    assert json.loads((report / "summary.json").read_text())["steps"] == summary.steps == 2
    history = read_metrics(report / "metrics.jsonl")
    assert sorted(history) == [0, 1, 2]
    steps, values = metric_series(history, VAL_SUCCESS)
    assert steps.tolist() == [0, 2]  # before RL (behaviour cloning alone) and after it
    assert values.tolist() == [summary.success_after_bc, summary.success_after_rl]
    assert "train/loss" in read_metrics(report / "bc_metrics.jsonl")[1]
    assert (out / "bc" / "config.json").exists()  # the behaviour-cloned HF model RL started from


def test_smoke_run_spreads_verls_padding_rows_over_the_mini_batches(smoke):
    """Lakes end at different turns, so the turn rows are seldom a multiple of the mini-batch and verl pads
    them: no mini-batch is left with a remainder of real rows, whatever the padding. (Whether a step padded
    at all depends on the sampled episodes, which the HF engine's batching under load can change.)"""
    out, _, _ = smoke
    trained = [m for m in read_metrics(out / "report" / "metrics.jsonl").values() if "training/global_step" in m]
    low, high = (np.array([m[f"sampo/mini_batch_samples_{end}"] for m in trained]) for end in ("min", "max"))
    assert len(trained) == 2 and (high - low <= 1).all() and (low > 0).all()


def test_smoke_run_plots_are_pngs_with_the_expected_curves(smoke):
    out, summary, _ = smoke
    report = out / "report"
    for name in ("success.png", "stability.png"):
        assert (report / name).read_bytes()[:8] == PNG_SIGNATURE
    runs = {summary.method: [read_metrics(report / "metrics.jsonl")]}
    success = make_figure(runs, SUCCESS_METRICS)
    curves = [line for ax in success.axes for line in ax.get_lines() if line.get_gid() == "curve"]
    assert [c.get_xdata().tolist() for c in curves] == [[0, 2], [1, 2]]  # validation, training success
    np.testing.assert_allclose(curves[0].get_ydata(), [summary.success_after_bc, summary.success_after_rl])
    stability = make_figure(runs, STABILITY_METRICS)
    assert len([ax for ax in stability.axes if ax.get_lines()]) == len(STABILITY_METRICS)


def test_smoke_run_records_every_held_out_task_as_one_by_one_evaluation_plays_it(smoke):
    """verl's batched validation (256 episodes at once in the quickstart) against the same episodes
    played alone, greedy, by ``sampo-verl evaluate``'s local path: the same outcome for every task."""
    out, summary, _ = smoke
    assert summary.task_seeds == [VAL_SEED_OFFSET + i for i in range(8)]
    history = read_metrics(out / "report" / "metrics.jsonl")
    for step, success in summary.task_success.items():
        assert np.mean(success) == history[step][f"val-core/{summary.env}/acc/mean@1"]
    outcomes = read_val_outcomes(out / "rl" / OUTCOMES_FILE)
    assert sorted(outcomes) == [0, 2] and outcomes[0].missing == 0
    tb = cpu_testbed(summary.env)
    alone = asyncio.run(
        play_episodes(
            out / "bc",
            summary.env,
            summary.task_seeds,
            env_options=tb.env_options,
            max_turns=tb.max_turns,
            response_length=tb.max_response_length,
            concurrency=1,
        )
    )
    by_seed = dict(zip(outcomes[0].task_seed, zip(outcomes[0].acc, outcomes[0].episode_length)))
    assert [by_seed[r["seed"]] for r in alone] == [(r["success"], r["episode_length"]) for r in alone]
