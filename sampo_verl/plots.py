"""Metric curves from verl's file logger (:mod:`sampo_verl.metrics`), drawn as PNGs (used by the quickstart
and the arena report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sampo_verl.metrics import (
    TRAIN_SUCCESS,
    VAL_SUCCESS,
    History,
    has_metric,
    metric_series,
    seed_band,
    wilson_interval,
)

TITLES = {
    VAL_SUCCESS: "validation success rate",
    TRAIN_SUCCESS: "training success rate",
    "sampo/format_valid_rate": "valid-format rate",
    "sampo/action_valid_rate": "valid-action rate",
    "sampo/episode_length": "episode length (turns)",
    "actor/grad_norm": "gradient norm",
    "actor/entropy": "entropy",
    "actor/seq_mask_frac": "masked fraction (sequence masking)",
    "actor/seq_neg_adv_low_ratio_frac": "negative-advantage low-ratio fraction",
    "actor/seq_ratio_mean": "mean sequence IS ratio",
    "actor/seq_clipfrac": "sequence clip fraction",
    "actor/pg_clipfrac": "token clip fraction",
    "collapse/num_events": "collapse events (cumulative)",
}
MARKERS_UP_TO = 30  # curves with at most this many points also get a dot per point
PANEL_SIZE = (5.0, 3.2)  # inches per subplot
HEADER = 0.4  # inches above the panels (title) and below them (margins)
LEGEND_COLUMN, LEGEND_ROW = 1.7, 0.25  # inches per legend column and row below the panels
DPI = 100


def make_figure(
    runs: Mapping[str, Sequence[History]],
    metrics: Sequence[str],
    title: str = "",
    events: Mapping[str, Sequence[int]] | None = None,
    intervals: Mapping[str, int] | None = None,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> Figure:
    """Draw one subplot per metric that some run logged, one curve per run label.

    ``runs`` maps a label (a method, or the quickstart's one run) to its seeds' histories. A curve is
    the mean over seeds; with more than one seed a shaded band spans their minimum to maximum.
    ``events`` maps a label to steps marked with dotted vertical lines in the label's colour (e.g.
    collapse steps). ``intervals`` maps a success-rate metric to the number of tasks it is measured
    on: a one-seed curve of it gets its 95% Wilson interval as a band. ``references`` maps a metric to
    labelled levels drawn as dashed horizontal lines (e.g. the behaviour-cloned start). Curves have
    ``gid`` "curve", bands "band", intervals "interval", levels "reference" and event markers "event".
    """
    logged = {label: [m for m in metrics if any(has_metric(h, m) for h in seeds)] for label, seeds in runs.items()}
    present = [m for m in metrics if any(m in found for found in logged.values())]
    ncols = max(1, min(3, len(present)))
    nrows = max(1, math.ceil(len(present) / ncols))
    width = PANEL_SIZE[0] * ncols
    legend_cols = max(1, int(width // LEGEND_COLUMN))
    legend_rows = math.ceil(sum(bool(found) for found in logged.values()) / legend_cols)
    height = PANEL_SIZE[1] * nrows + HEADER + LEGEND_ROW * legend_rows
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = _colours(len(runs))
    for ax, metric in zip(axes, present):
        for colour, (label, seeds) in zip(colours, runs.items()):
            band = seed_band(seeds, metric)
            if band is None:
                continue
            steps, mean, low, high = band
            marker = "o" if steps.size <= MARKERS_UP_TO else None
            ax.plot(steps, mean, color=colour, label=label, marker=marker, markersize=3, gid="curve")
            if len(seeds) > 1:
                ax.fill_between(steps, low, high, color=colour, alpha=0.18, linewidth=0, gid="band")
            elif metric in (intervals or {}):
                low, high = wilson_interval(mean * intervals[metric], intervals[metric])
                ax.fill_between(steps, low, high, color=colour, alpha=0.18, linewidth=0, gid="interval")
        for value_label, value in (references or {}).get(metric, {}).items():
            ax.axhline(value, color="grey", linestyle="--", linewidth=1, label=value_label, gid="reference")
        for colour, label in zip(colours, runs):
            for step in sorted(set((events or {}).get(label, ()))):
                ax.axvline(step, color=colour, linestyle=":", alpha=0.7, gid="event")
        ax.set_title(TITLES.get(metric, metric), fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(present) :]:
        ax.set_axis_off()
    if not present:
        axes[0].text(0.5, 0.5, "no data logged for:\n" + "\n".join(metrics), ha="center", va="center")
    shown = ("curve", "reference")
    by_label = {line.get_label(): line for ax in axes for line in ax.get_lines() if line.get_gid() in shown}
    if by_label:
        fig.legend(by_label.values(), by_label.keys(), loc="outside lower center", ncols=legend_cols)
    if title:
        fig.suptitle(title)
    return fig


def plot_metrics(
    runs: Mapping[str, Sequence[History]],
    metrics: Sequence[str],
    out: str | Path,
    title: str = "",
    events: Mapping[str, Sequence[int]] | None = None,
    intervals: Mapping[str, int] | None = None,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Draw :func:`make_figure` into the PNG file ``out`` (parent folders created); return its path."""
    figure = make_figure(runs, metrics, title=title, events=events, intervals=intervals, references=references)
    return save_png(figure, out)


def save_png(figure: Figure, out: str | Path) -> Path:
    """Write ``figure`` to the PNG file ``out`` (parent folders created); return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


def make_method_panels(
    runs: Mapping[str, Sequence[History]],
    metric: str,
    title: str = "",
    events: Mapping[str, Sequence[int]] | None = None,
    order: Sequence[str] | None = None,
) -> Figure:
    """Small multiples of one metric: a panel per run label (e.g. method), in ``order`` (default:
    ``runs``' order). Colours follow ``runs``' order, as in :func:`make_figure`.

    Each panel draws the label's seeds as thin lines (``gid`` "seed"), their mean in the label's colour
    ("curve"), the other labels' means in light grey for reference ("others") and the label's own
    ``events`` as dotted lines ("event"). All panels share both axes, so heights compare across panels.
    """
    bands = {label: seed_band(runs[label], metric) for label in (runs if order is None else order)}
    labels = [label for label, band in bands.items() if band is not None]
    ncols = max(1, min(4, len(labels)))
    nrows = max(1, math.ceil(len(labels) / ncols))
    size = (PANEL_SIZE[0] * 0.7 * ncols, PANEL_SIZE[1] * 0.8 * nrows + HEADER)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    colours = dict(zip(runs, _colours(len(runs))))
    for ax, label in zip(axes, labels):
        for other in labels:
            if other != label:
                steps, mean = bands[other][:2]
                ax.plot(steps, mean, color="0.8", linewidth=0.8, gid="others")
        for seed in runs[label]:
            steps, values = metric_series(seed, metric)
            ax.plot(steps, values, color=colours[label], linewidth=0.8, alpha=0.5, gid="seed")
        steps, mean = bands[label][:2]
        ax.plot(steps, mean, color=colours[label], linewidth=2, marker="o", markersize=3, gid="curve")
        for step in sorted(set((events or {}).get(label, ()))):
            ax.axvline(step, color=colours[label], linestyle=":", alpha=0.7, gid="event")
        ax.set_title(f"{label} ({len(runs[label])} seed{'s' * (len(runs[label]) != 1)})", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(labels) :]:
        ax.set_axis_off()
    if not labels:
        axes[0].text(0.5, 0.5, f"no data logged for:\n{metric}", ha="center", va="center")
    fig.supxlabel("step", fontsize=10)
    fig.supylabel(TITLES.get(metric, metric), fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10 up to 10 labels, tab20 beyond (cycled past 20)."""
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
