"""Reading verl's file-logger metrics: merged steps, series by key or pattern, seed bands, collapses."""

import json
import subprocess
import sys

import pytest

from sampo_verl.metrics import VAL_SUCCESS, collapse_steps, metric_series, read_metrics, seed_band, wilson_interval


def write_jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_read_metrics_merges_steps_and_skips_junk(tmp_path):
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"step": 2, "data": {"a": 1.0, "b": None, "c": "text", "d": True}},
            {"step": 0, "data": {"val": 0.5}},
            {"step": 2, "data": {"a": 3.0, "e": 4}},  # a resumed run logs step 2 again: later line wins
            {"step": "x", "data": {"a": 9.0}},
            {"step": 3, "data": {"nan": float("nan"), "a": 7.0}},
            [1, 2],
        ],
        tail='\n{"step": 4, "data": {"a": 1',  # truncated last line of a killed run
    )
    assert read_metrics(path) == {0: {"val": 0.5}, 2: {"a": 3.0, "e": 4.0}, 3: {"a": 7.0}}
    assert list(read_metrics(path)) == [0, 2, 3]


def test_metric_series_key_and_pattern():
    history = {
        0: {"val-core/a/acc/mean@4": 0.2, "val-core/b/acc/mean@4": 0.4, "val-core/a/acc/best@4/mean": 0.9},
        1: {"x": 1.0},
        2: {"x": 2.0, "val-core/a/acc/mean@4": 0.6},
    }
    steps, values = metric_series(history, "x")
    assert steps.tolist() == [1, 2] and values.tolist() == [1.0, 2.0]
    steps, values = metric_series(history, VAL_SUCCESS)
    # step 0: mean of the two data sources (0.2 + 0.4) / 2; best@ is not mean@
    assert steps.tolist() == [0, 2] and values == pytest.approx([0.3, 0.6])
    assert metric_series(history, "missing")[0].size == 0


def test_seed_band_over_unequal_steps():
    seeds = [{1: {"m": 1.0}, 2: {"m": 3.0}}, {2: {"m": 5.0}, 3: {"m": 6.0}}, {1: {"other": 0.0}}]
    steps, mean, low, high = seed_band(seeds, "m")
    assert steps.tolist() == [1, 2, 3]
    assert mean.tolist() == [1.0, 4.0, 6.0]
    assert low.tolist() == [1.0, 3.0, 6.0] and high.tolist() == [1.0, 5.0, 6.0]
    assert seed_band(seeds, "absent") is None


def test_collapse_steps():
    history = {1: {"collapse/any": 0.0}, 2: {"collapse/any": 1.0}, 3: {}, 4: {"collapse/any": 1.0}}
    assert collapse_steps(history) == [2, 4]


def test_the_reader_and_its_users_do_not_load_matplotlib():
    code = "import sys, sampo_verl.bc.train, sampo_verl.main_ppo; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_wilson_interval_by_hand():
    # p = 0.5, n = 64: (0.5 + 0.030013 -/+ 1.96 sqrt(0.25/64 + 3.8416/16384)) / 1.060025
    low, high = wilson_interval([32, 0, 64], 64)
    assert low[0] == pytest.approx(0.38102, abs=1e-5) and high[0] == pytest.approx(0.61898, abs=1e-5)
    # p = 0: the interval starts at 0 and reaches z^2/n / (1 + z^2/n) = 0.05663; p = 1 mirrors it
    assert low[1] == pytest.approx(0.0, abs=1e-12) and high[1] == pytest.approx(0.05663, abs=1e-5)
    assert (low[2], high[2]) == (pytest.approx(1 - 0.05663, abs=1e-5), pytest.approx(1.0))
    assert wilson_interval(3, 0) == (0.0, 1.0)  # nothing measured
