"""Whether the ARLArena findings of SPEC.md held on an arena run, decided by explicit rules.

Every rule reads the per-method numbers of :mod:`sampo_verl.arena.summary` for one environment.
Two kinds of rule:

- *comparison* (findings 1, 3a, 3b, 4): ``d`` = a value of the method the finding favours minus the
  same value of its rival (the best of its rivals for finding 4). Held when ``d > TIE``, did not
  hold when ``d < -TIE``, inconclusive in between.
- *collapse* (finding 2, sequence masking): a method *peaked then dropped* when its drop (mean best
  minus mean final success) is at least ``DROP``.
  Finding 2 held when GSPO did not drop and every tested tolerant method (SAPO, CISPO) did; partly
  held when GSPO did not drop and only some of them did; did not hold otherwise.
  Sequence masking held when SAPO dropped and SAPO + masking did not; did not hold when SAPO + masking
  dropped; inconclusive when neither dropped (no collapse for masking to prevent).

A finding whose methods (or metric) are missing from the run is "not tested on this run".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sampo_verl.arena.summary import MethodSummary

TIE = 0.05  # differences of success or valid-format rate within +-TIE are a tie
DROP = 0.10  # mean best minus mean final success at or above this: the method peaked then dropped

HELD = "held"
PARTLY = "partly held"
NOT_HELD = "did not hold"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested on this run"


@dataclass(frozen=True)
class Finding:
    """One finding's verdict on one environment, with the numbers it was decided from."""

    key: str
    claim: str
    verdict: str
    evidence: str


def _final(summary: MethodSummary) -> float:
    return summary.final.mean


def _format_min(summary: MethodSummary) -> float:
    return summary.format_min.mean


def _compare(
    summaries: Mapping[str, MethodSummary],
    key: str,
    claim: str,
    favoured: str,
    rivals: Sequence[str],
    value: Callable[[MethodSummary], float],
    what: str,
) -> Finding:
    """Comparison rule: ``favoured`` beats the best tested rival on ``value`` by more than TIE."""
    tested = [r for r in rivals if r in summaries]
    missing = [m for m in (favoured, *rivals) if m not in summaries]
    if favoured not in summaries or not tested:
        return Finding(key, claim, NOT_TESTED, f"needs {', '.join(missing)}")
    values = {m: value(summaries[m]) for m in (favoured, *tested)}
    if not all(math.isfinite(v) for v in values.values()):
        return Finding(
            key,
            claim,
            NOT_TESTED,
            f"no {what} logged for {', '.join(m for m, v in values.items() if not math.isfinite(v))}",
        )
    rival = max(tested, key=values.__getitem__)
    d = values[favoured] - values[rival]
    verdict = HELD if d > TIE else NOT_HELD if d < -TIE else INCONCLUSIVE
    listed = ", ".join(f"{m} {v:.3f}" for m, v in values.items())
    untested = f"; not tested: {', '.join(missing)}" if missing else ""
    return Finding(
        key, claim, verdict, f"{what}: {listed}; {favoured} - {rival} = {d:+.3f} (tie within ±{TIE}){untested}"
    )


def _dropped(summary: MethodSummary) -> bool:
    return summary.drop >= DROP


def _drops(summaries: Mapping[str, MethodSummary], methods: Sequence[str]) -> str:
    return ", ".join(
        f"{m} best {summaries[m].best.mean:.3f} final {summaries[m].final.mean:.3f} drop {summaries[m].drop:.3f}"
        f" collapses {summaries[m].collapses.mean:g}"
        for m in methods
    )


def clipping(summaries: Mapping[str, MethodSummary]) -> Finding:
    """Finding 2: tolerant clipping (SAPO, CISPO) peaks then collapses; sequence-level GSPO is stable."""
    claim = "2. IS clipping: tolerant clipping (sapo, cispo) gains early then collapses; sequence-level gspo is stable"
    tolerant = [m for m in ("sapo", "cispo") if m in summaries]
    if "gspo" not in summaries or not tolerant:
        missing = [m for m in ("gspo", "sapo", "cispo") if m not in summaries]
        return Finding("2", claim, NOT_TESTED, f"needs gspo and sapo or cispo; missing {', '.join(missing)}")
    methods = ["gspo", *tolerant]
    if not all(math.isfinite(summaries[m].drop) for m in methods):
        return Finding("2", claim, NOT_TESTED, "no success logged for " + ", ".join(methods))
    dropped = [m for m in tolerant if _dropped(summaries[m])]
    if _dropped(summaries["gspo"]) or not dropped:
        verdict = NOT_HELD
    else:
        verdict = HELD if len(dropped) == len(tolerant) else PARTLY
    untested = ", ".join(m for m in ("sapo", "cispo") if m not in summaries)
    untested = f"; not tested: {untested}" if untested else ""
    return Finding("2", claim, verdict, f"{_drops(summaries, methods)} (dropped: drop >= {DROP}){untested}")


def masking(summaries: Mapping[str, MethodSummary]) -> Finding:
    """Diagnosis: masking negative-advantage low-ratio samples stops SAPO's collapse."""
    claim = "Collapse diagnosis: sequence masking stabilises sapo (sapo_seqmask avoids sapo's collapse)"
    methods = ["sapo", "sapo_seqmask"]
    missing = [m for m in methods if m not in summaries]
    if missing:
        return Finding("mask", claim, NOT_TESTED, f"needs {', '.join(missing)}")
    if not all(math.isfinite(summaries[m].drop) for m in methods):
        return Finding("mask", claim, NOT_TESTED, "no success logged for " + ", ".join(methods))
    base, masked = (_dropped(summaries[m]) for m in methods)
    if masked:
        verdict = NOT_HELD
    else:
        verdict = HELD if base else INCONCLUSIVE
    note = "" if base or masked else "; sapo did not collapse, so there was nothing for masking to prevent"
    return Finding("mask", claim, verdict, f"{_drops(summaries, methods)} (dropped: drop >= {DROP}){note}")


def judge_findings(summaries: Mapping[str, MethodSummary]) -> list[Finding]:
    """Every finding's verdict for one environment's methods (keyed by method name)."""
    return [
        _compare(
            summaries,
            "1",
            "1. Loss aggregation: sample-level weighting (grpo_seqmean) is worse than token-mean (grpo)",
            "grpo",
            ["grpo_seqmean"],
            _final,
            "mean final success",
        ),
        clipping(summaries),
        masking(summaries),
        _compare(
            summaries,
            "3a",
            "3a. Dynamic filtering helps GiGPO (gigpo_filter above gigpo)",
            "gigpo_filter",
            ["gigpo"],
            _final,
            "mean final success",
        ),
        _compare(
            summaries,
            "3b",
            "3b. Dynamic filtering hurts GRPO's format stability (grpo_filter's valid-format rate dips lower)",
            "grpo",
            ["grpo_filter"],
            _format_min,
            "mean lowest valid-format rate",
        ),
        _compare(
            summaries,
            "4",
            "4. Advantage design: gigpo gives the best success among gigpo, grpo and empg",
            "gigpo",
            ["grpo", "empg"],
            _final,
            "mean final success",
        ),
    ]
