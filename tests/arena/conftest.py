"""A small arena results folder with known numbers (hand-worked values in test_arena_report.py).

sokoban (training success only, steps 1..5), 2 seeds each:
  gspo          success [.2 .4 .5 .6 .6] / [.2 .3 .5 .5 .7]        format .9 everywhere
  sapo          success [.3 .7 .8 .4 .2] / [.3 .6 .9 .5 .3]        format min .3 / .5;
                collapse/any at steps 4, 5 (seed 0) and 4 (seed 1)
  sapo_seqmask  success [.3 .5 .6 .7 .7] / [.3 .5 .6 .6 .55]       format .95; seed 1 unfinished,
                its file ends in a truncated line
frozenlake (validation at steps 0, 2, 4; training success .9 everywhere, steps 1..4; 2 s a step, 4 s and 6 s
the timed validations; wall time 60 s + seed):
  grpo          val [.1 .3 .4] / [.1 .2 .3]     format [.9 .95 .9 .92] / [.9 .85 .9 .9]
  grpo_filter   val [.1 .4 .4] / [.1 .3 .4]     format [.9 .6 .7 .8] / [.9 .7 .8 .9]; collapse at 3 (seed 0)
  empg          val [.1 .2 .3] (one seed)       format .9
  gigpo         val [.1 .5 .6] / [.1 .4 .5]     format .9
  gigpo_filter  val [.1 .6 .7] / [.1 .5 .8]     format .9
  per-task outcomes (val_outcomes.jsonl) on 40 tasks: at success v, tasks 0 .. 40 v - 1 solved
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sampo_verl.arena.layout import cell_dir, mark_done
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, append_outcomes

VAL_KEY = "val-core/frozenlake/acc/mean@1"
TASKS = [1_000_000 + i for i in range(40)]


def write_cell(root: Path, env: str, method: str, seed: int, lines: list[dict], wall: float | None, tail: str = ""):
    """Write one cell's metrics.jsonl (one file-logger line per dict) and, if ``wall``, its done.json."""
    path = cell_dir(root, env, method, seed)
    path.mkdir(parents=True)
    text = "".join(json.dumps({"step": line["step"], "data": line["data"]}) + "\n" for line in lines)
    (path / "metrics.jsonl").write_text(text + tail)
    if wall is not None:
        mark_done(path, wall, max(line["step"] for line in lines))


def sokoban_lines(success, fmt, collapse_at=(), extra=None):
    lines = []
    for i, (s, f) in enumerate(zip(success, fmt)):
        step = i + 1
        data = {
            "sampo/success_rate": s,
            "sampo/format_valid_rate": f,
            "actor/grad_norm": 1.0 + 0.1 * i,
            "actor/entropy": 2.0 - 0.1 * i,
            "collapse/any": float(step in collapse_at),
            "timing_s/step": 3.0,
        }
        data.update(extra or {})
        lines.append({"step": step, "data": data})
    return lines


def frozenlake_lines(val, fmt, collapse_at=()):
    lines = [{"step": 0, "data": {VAL_KEY: val[0], "val-aux/frozenlake/reward/mean@1": 5.0}}]
    for i, f in enumerate(fmt):
        step = i + 1
        data = {
            "sampo/success_rate": 0.9,
            "sampo/format_valid_rate": f,
            "actor/grad_norm": 1.0,
            "actor/entropy": 1.5,
            "collapse/any": float(step in collapse_at),
            "timing_s/step": 2.0,
        }
        if step % 2 == 0:
            data[VAL_KEY] = val[step // 2]
            data["val-aux/num_turns/mean"] = 4.0
            data["timing_s/testing"] = 2.0 + step  # 4 s at step 2, 6 s at step 4 (verl does not time step 0's)
        lines.append({"step": step, "data": data})
    return lines


def write_outcomes(path: Path, env: str, val: list[float]) -> None:
    """Per-task outcomes at validation steps 0, 2, 4, ...: the first round(40 v) tasks solved."""
    for i, v in enumerate(val):
        solved = round(len(TASKS) * v)
        acc = [float(k < solved) for k in range(len(TASKS))]
        append_outcomes(path / OUTCOMES_FILE, ValOutcomes(2 * i, [env] * len(TASKS), TASKS, acc))


def build_arena(root: Path) -> Path:
    """Write the fixture's cells under ``root`` (see the module docstring)."""
    seqmask = {"actor/seq_mask_frac": 0.1, "actor/seq_neg_adv_low_ratio_frac": 0.2}
    write_cell(root, "sokoban", "gspo", 0, sokoban_lines([0.2, 0.4, 0.5, 0.6, 0.6], [0.9] * 5), 100.0)
    write_cell(root, "sokoban", "gspo", 1, sokoban_lines([0.2, 0.3, 0.5, 0.5, 0.7], [0.9] * 5), 120.0)
    sapo0 = sokoban_lines(
        [0.3, 0.7, 0.8, 0.4, 0.2], [0.9, 0.9, 0.9, 0.4, 0.3], (4, 5), {"actor/seq_neg_adv_low_ratio_frac": 0.5}
    )
    sapo1 = sokoban_lines(
        [0.3, 0.6, 0.9, 0.5, 0.3], [0.9, 0.9, 0.9, 0.5, 0.9], (4,), {"actor/seq_neg_adv_low_ratio_frac": 0.4}
    )
    write_cell(root, "sokoban", "sapo", 0, sapo0, 90.0)
    write_cell(root, "sokoban", "sapo", 1, sapo1, 110.0)
    write_cell(
        root, "sokoban", "sapo_seqmask", 0, sokoban_lines([0.3, 0.5, 0.6, 0.7, 0.7], [0.95] * 5, (), seqmask), 130.0
    )
    write_cell(
        root,
        "sokoban",
        "sapo_seqmask",
        1,
        sokoban_lines([0.3, 0.5, 0.6, 0.6, 0.55], [0.95] * 5, (), seqmask),
        None,
        '{"step": 6, "da',
    )
    fl = [
        ("grpo", 0, [0.1, 0.3, 0.4], [0.9, 0.95, 0.9, 0.92], ()),
        ("grpo", 1, [0.1, 0.2, 0.3], [0.9, 0.85, 0.9, 0.9], ()),
        ("grpo_filter", 0, [0.1, 0.4, 0.4], [0.9, 0.6, 0.7, 0.8], (3,)),
        ("grpo_filter", 1, [0.1, 0.3, 0.4], [0.9, 0.7, 0.8, 0.9], ()),
        ("empg", 0, [0.1, 0.2, 0.3], [0.9] * 4, ()),
        ("gigpo", 0, [0.1, 0.5, 0.6], [0.9] * 4, ()),
        ("gigpo", 1, [0.1, 0.4, 0.5], [0.9] * 4, ()),
        ("gigpo_filter", 0, [0.1, 0.6, 0.7], [0.9] * 4, ()),
        ("gigpo_filter", 1, [0.1, 0.5, 0.8], [0.9] * 4, ()),
    ]
    for method, seed, val, fmt, collapse_at in fl:
        write_cell(root, "frozenlake", method, seed, frozenlake_lines(val, fmt, collapse_at), 60.0 + seed)
        write_outcomes(cell_dir(root, "frozenlake", method, seed), "frozenlake", val)
    return root


@pytest.fixture(scope="session")
def arena_dir(tmp_path_factory) -> Path:
    return build_arena(tmp_path_factory.mktemp("arena"))
