import json
import struct

import numpy as np
import pytest

from sampo_verl.plots import (
    VAL_SUCCESS,
    collapse_steps,
    make_figure,
    metric_series,
    plot_metrics,
    read_metrics,
    seed_band,
)


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def write_jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def gids(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


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


def test_figure_for_methods_and_seeds():
    def run(offset, n=4, extra=None):
        return {s: {"sampo/success_rate": offset + 0.1 * s, **(extra or {})} for s in range(1, n + 1)}

    runs = {
        "grpo": [run(0.0), run(0.1)],
        "sapo_seqmask": [run(0.2, extra={"actor/seq_mask_frac": 0.3})],
    }
    metrics = ["sampo/success_rate", "actor/seq_mask_frac", "actor/grad_norm"]  # grad_norm: nobody logged it
    fig = make_figure(runs, metrics, title="t", events={"grpo": [3, 3, 2], "unknown": [1]})
    axes = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in axes] == ["training success rate", "masked fraction (sequence masking)"]
    success, masked = axes
    assert [line.get_label() for line in gids(success, "curve")] == ["grpo", "sapo_seqmask"]
    np.testing.assert_allclose(gids(success, "curve")[0].get_ydata(), [0.15, 0.25, 0.35, 0.45])
    assert len([c for c in success.collections if c.get_gid() == "band"]) == 1  # only grpo has 2 seeds
    assert sorted(line.get_xdata()[0] for line in gids(success, "event")) == [2, 3]
    assert [line.get_label() for line in gids(masked, "curve")] == ["sapo_seqmask"]
    assert len(fig.legends) == 1 and fig.get_suptitle() == "t"


def test_plot_metrics_writes_png_of_expected_size(tmp_path):
    runs = {"sampo": [{1: {"actor/entropy": 2.0}, 2: {"actor/entropy": 1.5}}]}
    metrics = ["actor/entropy", "actor/grad_norm", "sampo/format_valid_rate", "actor/seq_clipfrac"]
    out = plot_metrics(runs, metrics, tmp_path / "sub" / "quickstart.png")
    assert out == tmp_path / "sub" / "quickstart.png"
    # only one metric present: one 5 x 3.2 in panel + 0.4 in header + one 0.25 in legend row, at 100 dpi
    assert png_size(out) == (500, 385)


def test_plot_without_any_data_still_draws(tmp_path):
    fig = make_figure({"grpo": [{}]}, ["actor/entropy"])
    assert "no data logged for" in fig.axes[0].texts[0].get_text()
    png_size(plot_metrics({"grpo": [{}]}, ["actor/entropy"], tmp_path / "empty.png"))
