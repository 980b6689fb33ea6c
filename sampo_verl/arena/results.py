"""One environment's share of an arena report: its numbers (:mod:`.summary`), verdicts (:mod:`.findings`),
per-seed curves and figures, computed once and written out by both report pages (HTML and Markdown)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sampo_verl.arena import findings as findings_mod
from sampo_verl.arena.layout import Cell
from sampo_verl.arena.summary import MethodSummary, SeedStats, success_metric, summarise_methods
from sampo_verl.arena.variants import VARIANT_SEP, parse_variant
from sampo_verl.metrics import VAL_SUCCESS, History, collapse_steps
from sampo_verl.plots import TITLES, make_method_panels, plot_metrics, save_png
from sampo_verl.stats import BOOTSTRAP_SAMPLES

STABILITY = (
    "actor/grad_norm",
    "actor/entropy",
    "actor/seq_mask_frac",
    "actor/seq_neg_adv_low_ratio_frac",
    "sampo/format_valid_rate",
)


@dataclass(frozen=True)
class EnvResults:
    """Everything the report shows for one environment."""

    env: str
    metric: str  # the success metric (:func:`~sampo_verl.arena.summary.success_metric`)
    summaries: tuple[MethodSummary, ...]  # in ranking order
    findings: tuple[findings_mod.Finding, ...]
    figures: tuple[tuple[Path, str], ...]  # the PNGs with their descriptions
    served: tuple[dict, ...] = ()  # served models' summaries (reference rows)

    def intro(self) -> str:
        """What the section's numbers are (Markdown: only `code` spans)."""
        source = (
            "validation success (`val-core/<env>/acc/mean@n`)"
            if self.metric == VAL_SUCCESS
            else "training success (`sampo/success_rate`; not every cell logged validation after step 0)"
        )
        seeds = ", ".join(str(n) for n in sorted({len(s.seeds) for s in self.summaries}))
        tasks = max(s.tasks for s in self.summaries)
        scale = f"{tasks} held-out tasks with per-task outcomes" if tasks else "no per-task outcomes recorded"
        return (
            f"Success metric: {source}. Seeds per method: {seeds}; {scale}. Dotted vertical lines in the figures: "
            "steps at which the collapse detector fired."
        )


def env_results(
    env: str, cells: Sequence[tuple[Cell, History]], out: Path, served: Sequence[dict], skipped: list[str]
) -> EnvResults:
    """Summarise one environment's cells and draw its figures into ``out``."""
    metric = success_metric(cells)
    runs: dict[str, list[History]] = {}
    events: dict[str, set[int]] = {}
    for cell, history in cells:
        runs.setdefault(cell.method, []).append(history)
        events.setdefault(cell.method, set()).update(collapse_steps(history))
    marks = {method: sorted(steps) for method, steps in events.items()}
    summaries = summarise_methods(cells, metric, skipped=skipped)
    ranking = [s.method for s in summaries]
    panels_title = f"{env}: {TITLES[metric]}, one panel per method (ranking order)"
    panels = make_method_panels(runs, metric, panels_title, marks, ranking)
    figures = (
        (
            plot_metrics(runs, [metric], out / f"{env}_success.png", f"{env}: success rate", marks),
            f"{env}: {TITLES[metric]} per method",
        ),
        (
            save_png(panels, out / f"{env}_success_by_method.png"),
            f"{env}: {TITLES[metric]}, one panel per method with every seed",
        ),
        (
            plot_metrics(runs, STABILITY, out / f"{env}_stability.png", f"{env}: stability", marks),
            f"{env}: stability panel per method",
        ),
    )
    return EnvResults(
        env,
        metric,
        tuple(summaries),
        tuple(findings_mod.judge_findings({s.method: s for s in summaries})),
        figures,
        tuple(served),
    )


def curve_text(seed: SeedStats) -> str:
    """A seed's success curve as '.328 .617 .723 .836' (the values at its logged steps)."""
    return " ".join(f"{v:.3f}".removeprefix("0") for v in seed.curve) or "–"


def cost_text(seeds: Sequence[SeedStats]) -> str:
    """Mean wall time of the finished seeds and its parts: 'all (training / validations / rest)' in seconds."""
    finished = [x for x in seeds if x.finished and math.isfinite(x.wall_time_s)]
    if not finished:
        return "–"
    wall, train, val = (np.mean([getattr(x, f) for x in finished]) for f in ("wall_time_s", "train_s", "validation_s"))
    if not (math.isfinite(train) and math.isfinite(val)):
        return f"{wall:.0f}"
    return f"{wall:.0f} ({train:.0f} / {val:.0f} / {wall - train - val:.0f})"


OffPolicyGrid = tuple[list[int | None], dict[str, dict[int | None, MethodSummary]]]


def off_policy_grid(summaries: Sequence[MethodSummary]) -> OffPolicyGrid:
    """The off-policy axis (:mod:`.variants`) as (columns, rows): a row per 'preset (trainer)', a column per
    mini-batch count (None, first: the preset's own); no columns when no method is a variant."""
    rows: dict[str, dict[int | None, MethodSummary]] = {}
    for summary in summaries:
        if VARIANT_SEP in summary.method:
            variant = parse_variant(summary.method)
            label = f"{variant.preset} ({'colocate_async' if variant.colocate_async else 'sync'})"
            rows.setdefault(label, {})[variant.mini_batches] = summary
    columns = sorted({k for row in rows.values() for k in row}, key=lambda k: (k is not None, k or 0))
    return columns, dict(sorted(rows.items()))


def off_policy_column(mini_batches: int | None) -> str:
    """The heading of an off-policy table's column."""
    return "the preset's own mini-batches" if mini_batches is None else f"{mini_batches} mini-batch(es)"


def off_policy_entry(summary: MethodSummary | None) -> str:
    """One cell of the off-policy table: final success / drop / mean collapse steps / mean optimiser steps a
    sampled batch (over the seeds that logged them)."""
    if summary is None:
        return "–"
    logged = [x.optimizer_steps for x in summary.seeds if math.isfinite(x.optimizer_steps)]
    steps = f"{np.mean(logged):.1f}" if logged else "–"
    final, drop = summary.estimate("final").text(), summary.estimate("drop").text()
    return f"{final} / {drop} / {summary.collapses.mean:g} / {steps}"


def definitions() -> list[str]:
    """How the report's numbers are computed, one item each (Markdown: only `code` spans)."""
    return [
        "Success metric per environment: validation success when every cell logged it after training started "
        "(a step > 0), else the training success rate `sampo/success_rate`.",
        "Curves: mean over seeds; the band spans the seeds' minimum to maximum. Per-seed curves in the tables: "
        "the success at each logged step, the first being the start's.",
        "Per seed: final success = last logged value; best success = largest logged value; collapse steps = steps "
        "at which the collapse detector fired (`collapse/any` > 0); lowest valid-format rate = minimum of "
        "`sampo/format_valid_rate`.",
        "Per task: each cell's per-task validation outcomes (`val_outcomes.jsonl`) on the environment's task "
        "list (every task a cell validated); final = the last validation, best = the seed's best one, drop = the "
        "difference between the two validations of the seed's largest fall.",
        f"Table values: mean [95% interval], a percentile bootstrap ({BOOTSTRAP_SAMPLES} resamples) over seeds "
        "and, when every seed recorded per-task outcomes, over tasks (the same task draw for every seed). One "
        "seed without per-task outcomes: the value alone. Drop = the largest fall of a seed's success from one "
        "validation to a later one (best − final when the run ends at its lowest point after the peak). Ranking: "
        "mean final success, then mean best success, then fewer collapse steps.",
        "Wall time per finished seed, in seconds: all (training steps, checkpoints included / validations / the "
        "rest: start-up and shutdown).",
        "Findings: comparisons (1, 3a, 3b, 4, 5a, 5b) take the paired difference favoured − rival over the common "
        "seeds (and tasks) and hold when its 95% interval lies above 0, fail when it lies below 0, and are "
        "inconclusive when it contains 0 (finding 4 compares gigpo with the rival of the higher mean among grpo "
        "and empg, 5b sampo with the rival of the highest mean among the paper's other methods). A method "
        f"collapsed when the interval of its drop lies at or above {findings_mod.DROP} or the collapse detector "
        f"fired in every seed, and was stable when the drop's interval lies below {findings_mod.DROP}. Finding 2 "
        "holds when gspo was stable and every tested tolerant method (sapo, cispo) collapsed (partly: some "
        "collapsed, the rest were stable), fails when gspo collapsed or every tolerant method was stable; "
        "sequence masking holds when sapo collapsed and sapo_seqmask was stable, fails when sapo_seqmask "
        "collapsed. Anything else is inconclusive; a finding whose methods are absent is not tested on this run. "
        "Off-policy (cells `<preset>@mb<K>[+async]`): a preset collapses more when the paired difference of its "
        "drops, most mini-batches − fewest on the sync trainer (or an asynchronous cell − its sync twin), has "
        "its interval above 0; it does not when the interval lies below 0. Beside it: the paired lowest success "
        "after the start (a fall before any rise shows there, not in the drop) and final success. Pooled: the "
        "same differences of every preset that ran the same pair of cells, each preset's seed one row of a single "
        "sample.",
        "What would decide an inconclusive finding: the number of seeds at which a normal 95% interval of the "
        "per-seed values (mean m, sample spread s) would leave the threshold t (0 for a comparison, "
        f"{findings_mod.DROP} for a drop), if m and s stayed as measured: n = ceil((1.96 s / |m − t|)²) over seeds "
        "alone; with per-task outcomes s is at least the seed-by-task noise over the number of tasks, and the "
        "tasks' own differences add a variance v that more seeds do not reduce (the between-task variance of a "
        "two-way random-effects model over seeds and tasks, divided by the number of tasks), "
        "n = ceil(s² / ((|m − t| / 1.96)² − v)), and no number of seeds will do when v alone reaches "
        "(|m − t| / 1.96)².",
    ]
