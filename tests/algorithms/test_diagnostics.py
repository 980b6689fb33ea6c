import json
import math
from pathlib import Path

import pytest

from sampo_verl.algorithms.diagnostics import CollapseConfig, CollapseDetector, collapse_options


def _run(history, **cfg):
    det = CollapseDetector(CollapseConfig(**cfg))
    return det, [det.update(step, m) for step, m in enumerate(history, start=1)]


def healthy_history(n=30):
    return [
        {
            "sampo/format_valid_rate": min(1.0, 0.5 + 0.02 * i),
            "actor/grad_norm": 1.0 + 0.1 * (i % 3),
            "actor/entropy": 2.0 - 0.01 * i,
        }
        for i in range(n)
    ]


def test_healthy_run_never_fires():
    det, fired = _run(healthy_history())
    assert all(f == [] for f in fired)
    assert det.events == []


def test_format_collapse_fires_at_the_right_step():
    hist = healthy_history(10)
    hist[7]["sampo/format_valid_rate"] = 0.2  # best so far is 0.5 + 0.02*6 = 0.62; 0.2 < 0.31
    det, fired = _run(hist)
    assert fired[7] == ["format_drop"]
    assert det.events == [(8, "format_drop")]
    assert det.step_metrics(fired[7])["collapse/format_drop"] == 1.0


def test_grad_spike_uses_median_of_window():
    hist = [{"actor/grad_norm": g} for g in [1.0, 1.0, 1.0, 1.0, 9.0, 11.0]]
    _, fired = _run(hist, grad_spike=10.0)
    assert fired[4] == []  # 9 < 10 * median(1)
    assert fired[5] == ["grad_spike"]  # 11 > 10 * median([1,1,1,1,9]) = 10


def test_entropy_collapse_and_warmup():
    hist = [{"actor/entropy": e} for e in [2.0, 0.1, 2.0, 2.0, 0.15]]
    _, fired = _run(hist, warmup_steps=3, entropy_floor=None)
    assert fired[1] == []  # in warm-up
    assert fired[4] == ["entropy_collapse"]  # 0.15 < 0.1 * best (2.0)


def test_entropy_collapse_threshold_is_strict():
    _, fired = _run([{"actor/entropy": 2.0}, {"actor/entropy": 0.2}], warmup_steps=0, entropy_floor=None)
    assert fired[1] == []  # exactly 0.1 * best is not a collapse
    _, fired = _run([{"actor/entropy": 2.0}, {"actor/entropy": 0.19}], warmup_steps=0, entropy_floor=None)
    assert fired[1] == ["entropy_collapse"]


@pytest.mark.parametrize(
    "metric, values, floors, rule",
    [
        ("actor/entropy", [0.30, 0.015], {"entropy_floor": 0.01}, "entropy_collapse"),  # 0.015 < 0.1 x 0.30
        ("sampo/format_valid_rate", [0.98, 0.45], {"format_floor": 0.3}, "format_drop"),  # 0.45 < 0.5 x 0.98
        ("actor/grad_norm", [0.01, 0.01, 0.5], {"grad_norm_floor": 1.0}, "grad_spike"),  # 0.5 > 10 x 0.01
    ],
)
def test_each_rule_also_needs_its_absolute_condition(metric, values, floors, rule):
    history = [{metric: v} for v in values]
    _, fired = _run(history, warmup_steps=0, **floors)
    assert fired[-1] == []  # the relative condition alone holds
    name, low = next(iter(floors)), values[-1]
    _, fired = _run(history, warmup_steps=0, **{name: low * 2 if rule != "grad_spike" else low / 2})
    assert fired[-1] == [rule]  # and both together fire
    _, fired = _run(history, warmup_steps=0, **{name: None})
    assert fired[-1] == [rule]  # null: the relative rule alone


def test_missing_and_nan_metrics_are_ignored():
    _, fired = _run([{"actor/entropy": 1.0}, {"actor/entropy": math.nan}, {}], warmup_steps=0)
    assert fired == [[], [], []]


@pytest.mark.parametrize(
    "opts,flag",
    [
        ({"format_drop": 1.5}, "format_drop"),
        ({"grad_spike": 0.5}, "grad_spike"),
        ({"bogus": 1}, "bogus"),
        ({"entropy_floor": 0.0}, "entropy_floor"),
        ({"format_floor": -1}, "format_floor"),
    ],
)
def test_bad_config_names_the_flag(opts, flag):
    with pytest.raises(ValueError, match=flag):
        collapse_options({"collapse": opts})


RECORDED = json.loads((Path(__file__).parent / "collapse_histories.json").read_text())


def replay(history, **cfg) -> list[tuple[int, str]]:
    det = CollapseDetector(CollapseConfig(**cfg))
    for row in history:
        det.update(row["step"], row)
    return det.events


def test_recorded_runs_the_defaults_tell_apart():
    """A real CISPO collapse (valid format 0.95 -> 0.32) fires; a healthy SAMPO run does not, though its
    entropy dipped to 0.014 after 0.152, which the relative rule alone took for a collapse."""
    assert replay(RECORDED["healthy_sampo"]) == []
    assert replay(RECORDED["collapsed_cispo"]) == [(8, "format_drop"), (10, "format_drop")]
    relative_only = {"format_floor": None, "grad_norm_floor": None, "entropy_floor": None}
    assert replay(RECORDED["healthy_sampo"], **relative_only) == [(7, "entropy_collapse")]
