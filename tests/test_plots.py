"""Drawing metric histories: one panel per logged metric, one curve per run, PNG sizes."""

import struct

import numpy as np

from sampo_verl.plots import make_figure, make_method_panels, plot_metrics


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def gids(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


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


def test_one_seed_success_curve_gets_its_binomial_interval_and_the_start_level():
    history = {0: {"sampo/success_rate": 0.5}, 4: {"sampo/success_rate": 0.0}}
    fig = make_figure(
        {"sampo": [history]},
        ["sampo/success_rate"],
        intervals={"sampo/success_rate": 64},
        references={"sampo/success_rate": {"behaviour cloning": 0.5}},
    )
    (ax,) = [ax for ax in fig.axes if ax.axison]
    (band,) = [c for c in ax.collections if c.get_gid() == "interval"]
    vertices = band.get_paths()[0].vertices
    at_zero = vertices[np.isclose(vertices[:, 0], 0.0), 1]
    np.testing.assert_allclose([at_zero.min(), at_zero.max()], [0.38102, 0.61898], atol=1e-4)  # Wilson, n = 64
    (level,) = gids(ax, "reference")
    assert level.get_label() == "behaviour cloning" and list(level.get_ydata()) == [0.5, 0.5]
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["behaviour cloning", "sampo"]


def test_method_panels_one_per_method_in_the_given_order():
    runs = {
        "grpo": [{0: {"sampo/success_rate": 0.5}, 2: {"sampo/success_rate": 0.7}},
                 {0: {"sampo/success_rate": 0.5}, 2: {"sampo/success_rate": 0.3}}],
        "sapo": [{0: {"sampo/success_rate": 0.5}, 2: {"sampo/success_rate": 0.9}}],
        "empty": [{0: {"actor/entropy": 1.0}}],  # never logged the metric: no panel
    }
    fig = make_method_panels(runs, "sampo/success_rate", "t", events={"sapo": [1, 1]}, order=["sapo", "grpo", "empty"])
    axes = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in axes] == ["sapo (1 seed)", "grpo (2 seeds)"]
    sapo, grpo = axes
    np.testing.assert_allclose(gids(grpo, "curve")[0].get_ydata(), [0.5, 0.5])  # mean of 0.7 and 0.3
    assert sorted(tuple(line.get_ydata()) for line in gids(grpo, "seed")) == [(0.5, 0.3), (0.5, 0.7)]
    np.testing.assert_allclose(gids(grpo, "others")[0].get_ydata(), [0.5, 0.9])  # sapo's mean in grey
    assert [line.get_xdata()[0] for line in gids(sapo, "event")] == [1] and not gids(grpo, "event")
    # colours follow runs' order (as in make_figure), not the panel order
    overlaid = make_figure(runs, ["sampo/success_rate"]).axes[0]
    assert gids(grpo, "curve")[0].get_color() == overlaid.get_lines()[0].get_color()
