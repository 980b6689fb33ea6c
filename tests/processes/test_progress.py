"""The progress bars of the package's commands, on a metric history worked out by hand."""

from __future__ import annotations

import json
import time

from sampo_verl.metrics import TRAIN_SUCCESS
from sampo_verl.processes.progress import StepProgress, bc_progress, rl_progress


def history_fixture() -> dict[int, dict[str, float]]:
    """Validation at steps 0, 2, 4 (0.25 -> 0.5 -> 0.375)."""
    val = "val-core/sokoban/acc/mean@1"
    return {
        0: {val: 0.25},
        1: {TRAIN_SUCCESS: 0.2},
        2: {TRAIN_SUCCESS: 0.3, val: 0.5},
        3: {TRAIN_SUCCESS: 0.4},
        4: {TRAIN_SUCCESS: 0.4, val: 0.375},
    }


def test_progress_of_rl_steps_and_validations():
    describe = rl_progress(total=4)
    history = history_fixture()
    assert describe(0, history[0]) == (None, "  RL step 0/4: held-out success 0.250 (behaviour cloning)")
    assert describe(1, history[1]) == ("train success 0.200, valid format nan", None)
    assert describe(2, history[2]) == ("train success 0.300, valid format nan", "  RL step 2/4: held-out success 0.500")
    assert describe(0, {}) == (None, None)  # nothing to show yet


def test_step_progress_counts_each_logged_step_once(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in history_fixture().items()))
    with StepProgress(metrics, 4, "RL", rl_progress(4), every=0.01) as progress:
        time.sleep(0.05)
    assert progress.bar.n == 4 and progress._shown == {0, 1, 2, 3, 4}


def test_an_arena_cells_lines_name_the_cell_and_its_start():
    describe = rl_progress(total=4, prefix="  [arena] frozenlake/grpo/seed0", start="start model")
    line = "  [arena] frozenlake/grpo/seed0 step 0/4: held-out success 0.250 (start model)"
    assert describe(0, history_fixture()[0])[1] == line
    assert describe(4, history_fixture()[4])[1] == "  [arena] frozenlake/grpo/seed0 step 4/4: held-out success 0.375"


def test_behaviour_cloning_bar_shows_the_loss():
    assert bc_progress(3, {"train/loss": 0.25}) == ("loss 0.2500", None)
    assert bc_progress(3, {}) == (None, None)
