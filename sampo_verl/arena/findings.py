"""Whether the findings of the ARLArena paper held on an arena run, decided by explicit rules on intervals.

Every rule reads the per-method numbers of :mod:`sampo_verl.arena.summary` for one environment, with
95% bootstrap intervals over seeds and, where the cells recorded them, held-out tasks. Two kinds of
rule:

- *comparison* (findings 1, 3a, 3b, 4, 5a, 5b): ``d`` = a value of the method the finding favours minus the
  same value of its rival (for findings 4 and 5b the rival with the highest mean), paired over their common
  seeds and tasks (:func:`~sampo_verl.arena.summary.paired`). Held when the interval of ``d`` lies
  above 0, did not hold when it lies below 0, inconclusive when it contains 0 (or there is no
  interval: one seed without per-task outcomes).
- *collapse* (finding 2, sequence masking): a method *collapsed* when the interval of its drop (the
  largest fall from a validation to a later one) lies at or above ``DROP``, or when the collapse detector
  fired in every seed (the interval of its collapse count lies above 0); it was *stable* when the drop's
  interval lies below ``DROP`` and it did not collapse; otherwise *unclear*.
  Finding 2 held when GSPO was stable and every tested tolerant method (SAPO, CISPO) collapsed;
  partly held when GSPO was stable, some collapsed and the rest were stable; did not hold when GSPO
  collapsed or every tolerant method was stable; inconclusive otherwise.
  Sequence masking held when SAPO collapsed and SAPO + masking was stable; did not hold when SAPO +
  masking collapsed; inconclusive otherwise (neither collapsed: nothing for masking to prevent).

- *off-policy* (cells of the arena's off-policy axis, ``<preset>@mb<K>[+async]``): per preset, the drop at
  the most mini-batches minus the drop at the fewest (sync trainer), and an asynchronous cell's minus its
  sync twin's, paired; "collapses more" held when the interval lies above 0, did not hold below 0. The
  evidence adds the paired lowest success after the start (a fall from the start before any rise shows
  there, not in the drop) and the final success. Pooled: the same differences of every preset that ran the
  same pair of cells as one sample, each preset's seed a row, so that the question "does collapse grow
  with staleness?" gets the seeds of all presets.

A finding whose methods (or metric) are missing from the run is "not tested on this run".

For an inconclusive finding, :func:`seeds_needed` projects what would decide it: the number of seeds n at
which a normal interval of the per-seed values (mean m, sample spread s) would leave the threshold t
(0 for a comparison, ``DROP`` for a collapse), if m and s stayed as measured. Over seeds alone,
n = ceil((1.96 s / |m - t|)^2). With per-task outcomes s is at least the noise of the tasks' outcomes, and
the interval also spans the tasks' own differences, a variance v that more seeds do not reduce
(:func:`~sampo_verl.arena.summary.variance_parts`):
n = ceil(s^2 / ((|m - t| / 1.96)^2 - v)), and when v alone reaches (|m - t| / 1.96)^2 no number of seeds
will do (more tasks would).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sampo_verl.arena.summary import Estimate, MethodSummary, paired, paired_rows, pooled_paired
from sampo_verl.arena.variants import VARIANT_SEP, Variant, parse_variant

# the methods of the paper's table besides SAMPO (sampo_plus is ours, not the paper's)
PAPER_RIVALS = (
    "grpo", "grpo_seqmean", "gspo", "sapo", "cispo", "sapo_seqmask", "cispo_seqmask",
    "grpo_filter", "gigpo", "gigpo_filter", "empg",
)  # fmt: skip

DROP = 0.10  # a drop (the largest fall of success) whose interval lies at or above this: the method collapsed
COLLAPSED, STABLE, UNCLEAR = "collapsed", "stable", "unclear"

HELD = "held"
PARTLY = "partly held"
NOT_HELD = "did not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested on this run"
Z95 = 1.96  # the normal quantile of a two-sided 95% interval
NEGLIGIBLE = 0.01  # a mean this close to its threshold: no number of seeds is a realistic answer


@dataclass(frozen=True)
class Finding:
    """One finding's verdict on one environment, with the numbers it was decided from."""

    key: str
    claim: str
    verdict: str
    evidence: str
    needs: str = ""  # for an inconclusive verdict: what would decide it (:func:`seeds_needed`)


def seeds_needed(estimate: Estimate, threshold: float = 0.0) -> str:
    """What would move ``estimate``'s interval off ``threshold``, projected from its per-seed values and,
    with per-task outcomes, the variance its task list adds (module docstring)."""
    values = np.asarray(estimate.seed_means, dtype=float)
    if values.size < 2:
        return "a second seed, to measure how much seeds differ"
    gap = abs(float(values.mean()) - threshold)
    spread = math.sqrt(estimate.seed_var)
    if gap < NEGLIGIBLE:
        return f"no realistic number of seeds: the mean is {values.mean():+.3f}, {gap:.3f} from {threshold:g}"
    room = (gap / Z95) ** 2 - estimate.tasks_var
    if room <= 0:
        return (
            f"no number of seeds: the spread over the {estimate.tasks} tasks alone keeps the interval around "
            f"{threshold:g} (more held-out tasks would)"
        )
    n = max(math.ceil(spread**2 / room), values.size + 1)
    return f"~{n} seeds if the mean ({values.mean():+.3f}) and the per-seed spread ({spread:.3f}) hold"


def _compare(
    summaries: Mapping[str, MethodSummary],
    key: str,
    claim: str,
    favoured: str,
    rivals: Sequence[str],
    value: str,
    what: str,
) -> Finding:
    """Comparison rule: ``favoured`` minus its best tested rival on ``value``, paired, interval above 0."""
    tested = [r for r in rivals if r in summaries]
    missing = [m for m in (favoured, *rivals) if m not in summaries]
    if favoured not in summaries or not tested:
        return Finding(key, claim, NOT_TESTED, f"needs {', '.join(missing)}")
    estimates = {m: summaries[m].estimate(value) for m in (favoured, *tested)}
    if any(e.seeds == 0 for e in estimates.values()):
        unlogged = ", ".join(m for m, e in estimates.items() if e.seeds == 0)
        return Finding(key, claim, NOT_TESTED, f"no {what} logged for {unlogged}")
    rival = max(tested, key=lambda m: estimates[m].mean)
    d = paired(summaries[favoured], summaries[rival], value)
    verdict = {1: HELD, -1: NOT_HELD, 0: INCONCLUSIVE}[d.side()]
    listed = ", ".join(f"{m} {e.text()}" for m, e in estimates.items())
    untested = f"; not tested: {', '.join(missing)}" if missing else ""
    return Finding(
        key,
        claim,
        verdict,
        f"{what}: {listed}; {favoured} - {rival} = {d.text(signed=True)} (paired over {d.basis()}){untested}",
        f"{favoured} - {rival}: {seeds_needed(d)}" if verdict == INCONCLUSIVE else "",
    )


def collapse_state(summary: MethodSummary) -> tuple[str, str]:
    """``(collapsed | stable | unclear, evidence)`` of one method (the rule: module docstring)."""
    drop, collapses = summary.estimate("drop"), summary.estimate("collapses")
    fired_everywhere = collapses.interval is not None and collapses.interval.low > 0
    if (drop.interval is not None and drop.interval.low >= DROP) or fired_everywhere:
        state = COLLAPSED
    elif drop.interval is not None and drop.interval.high < DROP:
        state = STABLE
    else:
        state = UNCLEAR
    best, final = summary.estimate("best"), summary.estimate("final")
    evidence = (
        f"{summary.method} {state}: best {best.text()} final {final.text()} drop {drop.text()}"
        f" collapse steps {collapses.text()} ({drop.basis()})"
    )
    return state, evidence


def _states(summaries: Mapping[str, MethodSummary], methods: Sequence[str]) -> tuple[dict[str, str], str]:
    pairs = {m: collapse_state(summaries[m]) for m in methods}
    return {m: state for m, (state, _) in pairs.items()}, "; ".join(text for _, text in pairs.values())


def _unclear_needs(summaries: Mapping[str, MethodSummary], states: Mapping[str, str]) -> str:
    """What would settle each unclear method's state: seeds for its drop's interval to leave ``DROP``."""
    unclear = [m for m, state in states.items() if state == UNCLEAR]
    return "; ".join(f"{m}'s drop: {seeds_needed(summaries[m].estimate('drop'), DROP)}" for m in unclear)


def _untested_success(summaries: Mapping[str, MethodSummary], methods: Sequence[str]) -> list[str]:
    return [m for m in methods if summaries[m].estimate("final").seeds == 0]


def clipping(summaries: Mapping[str, MethodSummary]) -> Finding:
    """Finding 2: tolerant clipping (SAPO, CISPO) peaks then collapses; sequence-level GSPO is stable."""
    claim = "2. IS clipping: tolerant clipping (sapo, cispo) gains early then collapses; sequence-level gspo is stable"
    tolerant = [m for m in ("sapo", "cispo") if m in summaries]
    if "gspo" not in summaries or not tolerant:
        missing = [m for m in ("gspo", "sapo", "cispo") if m not in summaries]
        return Finding("2", claim, NOT_TESTED, f"needs gspo and sapo or cispo; missing {', '.join(missing)}")
    methods = ["gspo", *tolerant]
    if _untested_success(summaries, methods):
        return Finding("2", claim, NOT_TESTED, "no success logged for " + ", ".join(methods))
    states, evidence = _states(summaries, methods)
    gspo, rest = states["gspo"], [states[m] for m in tolerant]
    if gspo == COLLAPSED or all(s == STABLE for s in rest):
        verdict = NOT_HELD
    elif gspo == STABLE and all(s == COLLAPSED for s in rest):
        verdict = HELD
    elif gspo == STABLE and COLLAPSED in rest and UNCLEAR not in rest:
        verdict = PARTLY
    else:
        verdict = INCONCLUSIVE
    untested = ", ".join(m for m in ("sapo", "cispo") if m not in summaries)
    untested = f"; not tested: {untested}" if untested else ""
    needs = _unclear_needs(summaries, states) if verdict == INCONCLUSIVE else ""
    return Finding("2", claim, verdict, f"{evidence}{untested}", needs)


def masking(summaries: Mapping[str, MethodSummary]) -> Finding:
    """Diagnosis: masking negative-advantage low-ratio samples stops SAPO's collapse."""
    claim = "Collapse diagnosis: sequence masking stabilises sapo (sapo_seqmask avoids sapo's collapse)"
    methods = ["sapo", "sapo_seqmask"]
    missing = [m for m in methods if m not in summaries]
    if missing:
        return Finding("mask", claim, NOT_TESTED, f"needs {', '.join(missing)}")
    if _untested_success(summaries, methods):
        return Finding("mask", claim, NOT_TESTED, "no success logged for " + ", ".join(methods))
    states, evidence = _states(summaries, methods)
    if states["sapo_seqmask"] == COLLAPSED:
        verdict = NOT_HELD
    else:
        verdict = HELD if states["sapo"] == COLLAPSED and states["sapo_seqmask"] == STABLE else INCONCLUSIVE
    note = "; sapo did not collapse, so there was nothing for masking to prevent" * (states["sapo"] == STABLE)
    needs = ""
    if verdict == INCONCLUSIVE:
        nothing_to_prevent = states["sapo"] == STABLE
        needs = "a run in which sapo collapses (longer, or a harder testbed)" if nothing_to_prevent else ""
        needs = needs or _unclear_needs(summaries, states)
    return Finding("mask", claim, verdict, f"{evidence}{note}", needs)


def _collapses_more(summaries: Mapping[str, MethodSummary], key: str, ladder: Sequence[str], what: str) -> Finding:
    """Off-policy rule on the cells ``ladder`` (least to most off-policy): the drop of the last minus that of
    the first, paired; held when its interval lies above 0."""
    base, most = ladder[0], ladder[-1]
    claim = f"Off-policy: {parse_variant(base).preset} collapses more {what} (its drop grows)"
    d, low, final = (paired(summaries[most], summaries[base], value) for value in ("drop", "low", "final"))
    verdict = {1: HELD, -1: NOT_HELD, 0: INCONCLUSIVE}[d.side()]
    states = "; ".join(collapse_state(summaries[m])[1] for m in ladder)
    evidence = (
        f"{states}; drop {most} - {base} = {d.text(signed=True)}, lowest success after the start "
        f"{low.text(signed=True)}, final success {final.text(signed=True)} (paired over {d.basis()})"
    )
    needs = f"{most} - {base}: {seeds_needed(d)}" if verdict == INCONCLUSIVE else ""
    return Finding(key, claim, verdict, evidence, needs)


def _collapses_more_pooled(
    summaries: Mapping[str, MethodSummary], key: str, pairs: Sequence[tuple[str, str]], what: str
) -> Finding:
    """Off-policy rule over presets: each ``(less, more)`` off-policy pair's drop difference, every preset's
    seeds pooled into one sample (:func:`~sampo_verl.arena.summary.pooled_paired`); held when its interval
    lies above 0."""
    claim = f"Off-policy, presets pooled: the presets collapse more {what} (their drops averaged)"
    duos = [(summaries[more], summaries[less]) for less, more in pairs]
    d, low, final = (pooled_paired(duos, value) for value in ("drop", "low", "final"))
    verdict = {1: HELD, -1: NOT_HELD, 0: INCONCLUSIVE}[d.side()]
    each = ", ".join(  # each preset's mean difference, without a bootstrap of its own
        f"{more} {np.mean(paired_rows(summaries[more], summaries[less], 'drop')):+.3f}" for less, more in pairs
    )
    evidence = (
        f"drop, more - less off-policy, per preset: {each}; pooled {d.text(signed=True)}, lowest success after "
        f"the start {low.text(signed=True)}, final success {final.text(signed=True)} (over {len(pairs)} presets, "
        f"{d.basis()})"
    )
    needs = f"{seeds_needed(d)}, a seed being one preset's (divide by {len(pairs)})" if verdict == INCONCLUSIVE else ""
    return Finding(key, claim, verdict, evidence, needs)


def off_policy(summaries: Mapping[str, MethodSummary]) -> list[Finding]:
    """The off-policy axis (:mod:`.variants`): per preset, does its drop grow from the fewest mini-batches
    run to the most (sync trainer), and from a sync cell to its asynchronous twin? Then the same two
    questions over every preset that has the same pair of cells, pooled."""
    variants = {name: parse_variant(name) for name in sorted(summaries) if VARIANT_SEP in name}
    findings = []
    ladders: dict[tuple[int, int], list[tuple[str, str]]] = {}  # (fewest, most) mini-batches -> (cell, cell)
    twins: dict[int | None, list[tuple[str, str]]] = {}  # mini-batches -> (sync cell, its asynchronous twin)
    for preset in sorted({v.preset for v in variants.values()}):
        sync = {v.mini_batches: name for name, v in variants.items() if v.preset == preset and not v.colocate_async}
        counts = sorted(sync)  # every sync variant names its mini-batches
        if len(counts) >= 2:
            what = f"at {counts[-1]} mini-batches than at {counts[0]}"
            findings.append(_collapses_more(summaries, f"{preset}@mb", [sync[k] for k in counts], what))
            ladders.setdefault((counts[0], counts[-1]), []).append((sync[counts[0]], sync[counts[-1]]))
        for name, v in variants.items():
            twin = Variant(v.preset, v.mini_batches).name
            if v.preset == preset and v.colocate_async and twin in summaries:
                what = "on the asynchronous trainer than on the sync one"
                findings.append(_collapses_more(summaries, name, [twin, name], what))
                twins.setdefault(v.mini_batches, []).append((twin, name))
    for (fewest, most), pairs in sorted(ladders.items()):
        if len(pairs) >= 2:
            what = f"at {most} mini-batches than at {fewest}"
            findings.append(_collapses_more_pooled(summaries, f"pooled@mb{fewest}-{most}", pairs, what))
    for mini_batches, pairs in sorted(twins.items(), key=lambda item: item[0] or 0):
        if len(pairs) >= 2:
            what = "on the asynchronous trainer than on the sync one"
            key = "pooled" + Variant("", mini_batches, colocate_async=True).name  # e.g. pooled@mb1+async
            findings.append(_collapses_more_pooled(summaries, key, pairs, what))
    return findings


def judge_findings(summaries: Mapping[str, MethodSummary]) -> list[Finding]:
    """Every finding's verdict for one environment's methods (keyed by method name): the paper's, then the
    off-policy axis's where the run has it."""
    return [
        _compare(
            summaries,
            "1",
            "1. Loss aggregation: sample-level weighting (grpo_seqmean) is worse than token-mean (grpo)",
            "grpo",
            ["grpo_seqmean"],
            "final",
            "final success",
        ),
        clipping(summaries),
        masking(summaries),
        _compare(
            summaries,
            "3a",
            "3a. Dynamic filtering helps GiGPO (gigpo_filter above gigpo)",
            "gigpo_filter",
            ["gigpo"],
            "final",
            "final success",
        ),
        _compare(
            summaries,
            "3b",
            "3b. Dynamic filtering hurts GRPO's format stability (grpo_filter's valid-format rate dips lower)",
            "grpo",
            ["grpo_filter"],
            "format_min",
            "lowest valid-format rate",
        ),
        _compare(
            summaries,
            "4",
            "4. Advantage design: gigpo gives the best success among gigpo, grpo and empg",
            "gigpo",
            ["grpo", "empg"],
            "final",
            "final success",
        ),
        _compare(
            summaries,
            "5a",
            "5a. SAMPO (sequence-level clipping + gigpo + filtering) beats grpo",
            "sampo",
            ["grpo"],
            "final",
            "final success",
        ),
        _compare(
            summaries,
            "5b",
            "5b. SAMPO gives the best success among the paper's methods",
            "sampo",
            PAPER_RIVALS,
            "final",
            "final success",
        ),
        *off_policy(summaries),
    ]
