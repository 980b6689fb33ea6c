"""Each verdict of each finding rule, on method summaries built by hand."""

import math

import pytest

from sampo_verl.arena.findings import HELD, INCONCLUSIVE, NOT_HELD, NOT_TESTED, PARTLY, judge_findings
from sampo_verl.arena.summary import MethodSummary, SeedStats


def method(name, finals, bests=None, format_min=0.9):
    """A summary whose seeds have these final (and best, default = final) successes."""
    bests = bests or finals
    seeds = tuple(
        SeedStats(seed=i, finished=True, final=f, best=b, collapses=0, format_min=format_min, wall_time_s=1.0)
        for i, (f, b) in enumerate(zip(finals, bests))
    )
    return MethodSummary(name, seeds)


def verdicts(*summaries):
    return {f.key: f.verdict for f in judge_findings({s.method: s for s in summaries})}


def test_nothing_run_nothing_tested():
    assert set(verdicts(method("sampo", [0.9])).values()) == {NOT_TESTED}


@pytest.mark.parametrize(
    "grpo, seqmean, expected",
    [([0.6, 0.5], [0.4, 0.5], HELD), ([0.5], [0.46], INCONCLUSIVE), ([0.3], [0.5], NOT_HELD)],
)
def test_aggregation(grpo, seqmean, expected):
    # d = mean final grpo - mean final grpo_seqmean: +0.1, +0.04, -0.2 against the tie band 0.05
    assert verdicts(method("grpo", grpo), method("grpo_seqmean", seqmean))["1"] == expected


def test_clipping_verdicts():
    gspo = method("gspo", [0.6], [0.62])  # drop 0.02
    sapo_drop = method("sapo", [0.2], [0.8])  # drop 0.6
    cispo_drop = method("cispo", [0.3, 0.5], [0.5, 0.6])  # best mean 0.55 - final mean 0.4 = 0.15
    cispo_flat = method("cispo", [0.5], [0.55])  # drop 0.05
    assert verdicts(gspo, sapo_drop, cispo_drop)["2"] == HELD
    assert verdicts(gspo, sapo_drop, cispo_flat)["2"] == PARTLY
    assert verdicts(gspo, cispo_flat)["2"] == NOT_HELD
    assert verdicts(method("gspo", [0.3], [0.5]), sapo_drop)["2"] == NOT_HELD  # gspo dropped 0.2 itself
    assert verdicts(sapo_drop, cispo_drop)["2"] == NOT_TESTED


def test_masking_verdicts():
    sapo_drop, sapo_flat = method("sapo", [0.2], [0.8]), method("sapo", [0.7], [0.7])
    masked_flat, masked_drop = method("sapo_seqmask", [0.6], [0.65]), method("sapo_seqmask", [0.3], [0.6])
    assert verdicts(sapo_drop, masked_flat)["mask"] == HELD
    assert verdicts(sapo_drop, masked_drop)["mask"] == NOT_HELD
    assert verdicts(sapo_flat, masked_drop)["mask"] == NOT_HELD
    assert verdicts(sapo_flat, masked_flat)["mask"] == INCONCLUSIVE
    assert verdicts(masked_flat)["mask"] == NOT_TESTED


def test_filtering_and_advantage_verdicts():
    found = verdicts(
        method("gigpo", [0.5]),
        method("gigpo_filter", [0.4]),  # 0.4 - 0.5 = -0.1: filtering did not help gigpo
        method("grpo", [0.6], format_min=0.8),
        method("grpo_filter", [0.3], format_min=0.78),  # format 0.8 - 0.78 = +0.02: a tie
        method("empg", [0.52]),  # gigpo 0.5 vs best rival grpo 0.6: -0.1
    )
    assert (found["3a"], found["3b"], found["4"]) == (NOT_HELD, INCONCLUSIVE, NOT_HELD)
    # finding 4 with only empg as a rival: 0.5 - 0.52 within the tie band
    assert verdicts(method("gigpo", [0.5]), method("empg", [0.52]))["4"] == INCONCLUSIVE


def test_missing_format_metric_is_not_tested():
    findings = judge_findings(
        {"grpo": method("grpo", [0.5], format_min=math.nan), "grpo_filter": method("grpo_filter", [0.5])}
    )
    (f3b,) = [f for f in findings if f.key == "3b"]
    assert f3b.verdict == NOT_TESTED and "no mean lowest valid-format rate logged for grpo" in f3b.evidence
