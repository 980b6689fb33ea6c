"""``arena compare``: the paired difference of two results folders (fixture of conftest.py)."""

import shutil

import pytest

from sampo_verl.arena.__main__ import main
from sampo_verl.arena.compare import HIGHER, SAME, compare_runs
from sampo_verl.arena.layout import cell_dir
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, append_outcomes

TASKS = [1_000_000 + i for i in range(40)]


def solved(k):
    return [float(i < k) for i in range(len(TASKS))]


def copy_with_gigpo_solving(arena_dir, root, counts):
    """A copy of the fixture in which both seeds of gigpo on frozenlake solve ``counts`` of the 40 tasks
    at steps 0, 2 and 4."""
    shutil.copytree(arena_dir, root)
    for seed in (0, 1):
        path = cell_dir(root, "frozenlake", "gigpo", seed) / OUTCOMES_FILE
        path.unlink()
        for step, k in zip((0, 2, 4), counts, strict=True):
            append_outcomes(path, ValOutcomes(step, ["frozenlake"] * len(TASKS), TASKS, solved(k)))
    return root


@pytest.fixture
def changed(arena_dir, tmp_path):
    """gigpo on frozenlake ends at 36 of 40 tasks (was 24 and 20); sokoban only in A: not compared."""
    root = copy_with_gigpo_solving(arena_dir, tmp_path / "b", (4, 20, 36))
    shutil.rmtree(root / "sokoban")
    return root


def test_a_folder_against_itself_shows_no_change(arena_dir):
    comparisons = compare_runs(arena_dir, arena_dir)
    assert len(comparisons) == 5 + 3
    assert {c.verdict for c in comparisons} == {SAME}
    assert all(c.change.mean == 0 for c in comparisons)


def test_a_changed_method_is_detected_and_the_rest_are_not(arena_dir, changed):
    comparisons = {(c.env, c.method): c for c in compare_runs(arena_dir, changed)}
    assert sorted(env for env, _ in comparisons) == ["frozenlake"] * 5
    gigpo = comparisons["frozenlake", "gigpo"]
    # paired per task: seed 0 gains tasks 24..35 (12), seed 1 tasks 20..35 (16): (12 + 16) / 80 = +0.35
    assert gigpo.verdict == HIGHER and gigpo.change.mean == pytest.approx(0.35)
    assert gigpo.change.seeds == 2 and gigpo.change.tasks == 40 and gigpo.change.interval.low > 0.1
    assert gigpo.a.mean == pytest.approx(0.55) and gigpo.b.mean == pytest.approx(0.9)
    assert gigpo.b_drop.mean == 0.0  # 4, 20, 36 of 40: never falls
    assert gigpo.drop_change.mean == pytest.approx(-gigpo.a_drop.mean)
    assert {c.verdict for key, c in comparisons.items() if key != ("frozenlake", "gigpo")} == {SAME}


@pytest.fixture
def fallen(arena_dir, tmp_path):
    """gigpo on frozenlake solves 30 of 40 tasks at step 2, then 10."""
    return copy_with_gigpo_solving(arena_dir, tmp_path / "fallen", (4, 30, 10))


def test_the_largest_fall_is_paired_too(changed, fallen):
    """A guard's question: B (never falls) against A (falls 30 -> 10 of 40 in both seeds): B - A = -0.5."""
    (gigpo,) = [c for c in compare_runs(fallen, changed) if c.method == "gigpo"]
    assert gigpo.a_drop.mean == pytest.approx(0.5) and gigpo.b_drop.mean == 0.0
    assert gigpo.drop_change.mean == pytest.approx(-0.5) and gigpo.drop_change.interval.high < 0
    # lowest after the start: A 10 of 40 (step 4), B 20 of 40 (step 2)
    assert gigpo.a_low.mean == pytest.approx(0.25) and gigpo.b_low.mean == pytest.approx(0.5)
    assert gigpo.low_change.mean == pytest.approx(0.25) and gigpo.low_change.interval.low > 0


def test_cli(arena_dir, changed, tmp_path, capsys):
    assert main(["compare", str(arena_dir), str(changed)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("frozenlake | gigpo |")]
    assert line.startswith("frozenlake | gigpo | 2 seed(s) x 40 tasks | 0.550 [") and f"| {HIGHER} |" in line
    columns = line.split(" | ")
    assert columns[8:10] == ["0.000 [0.000, 0.000]", "+0.000 [+0.000, +0.000]"]  # gigpo fell in neither
    assert len(columns) == 13 and columns[11].startswith("0.500 [")  # B's lowest after the start: 20 of 40
    with pytest.raises(SystemExit, match="no arena cells under"):
        main(["compare", str(arena_dir), str(tmp_path / "empty")])
