"""Each verdict of each finding rule, on method summaries built by hand (per-seed values, or per-task outcomes)."""

import math

import numpy as np
import pytest

from sampo_verl.arena.findings import (
    COLLAPSED,
    DROP,
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    NOT_TESTED,
    PARTLY,
    STABLE,
    UNCLEAR,
    collapse_state,
    judge_findings,
    off_policy,
    seeds_needed,
)
from sampo_verl.arena.summary import (
    Estimate,
    MethodSummary,
    SeedStats,
    largest_fall,
    paired,
    pooled_paired,
    variance_parts,
)
from sampo_verl.stats import Interval

TASKS = 256


def seed(i, final, best, curve, collapses=0, format_min=0.9, **per_task):
    """One finished seed's numbers (wall time 1 s)."""
    return SeedStats(i, True, final, best, collapses, format_min, 1.0, curve=curve, **per_task)


def tasks(**values):
    """Per-task fields of a seed: ``final=array`` -> ``final_tasks=(...)``."""
    return {f"{name}_tasks": tuple(array.tolist()) for name, array in values.items()}


def method(name, finals, bests=None, format_min=0.9, collapses=0):
    """A summary whose seeds have these final (and best, default = final) successes, no per-task outcomes;
    each seed's largest fall is from its best to its final."""
    bests = bests or finals
    seeds = tuple(seed(i, f, b, (b, f), collapses, format_min) for i, (f, b) in enumerate(zip(finals, bests)))
    return MethodSummary(name, seeds)


def tasks_method(name, final_tasks, best_tasks=None, collapses=0):
    """A summary from per-task outcomes: ``final_tasks`` [seeds, tasks] (best default = final); each seed's
    largest fall is from its best validation to its final one."""
    final_tasks = np.asarray(final_tasks, dtype=float)
    best_tasks = final_tasks if best_tasks is None else np.asarray(best_tasks, dtype=float)
    seeds = tuple(
        seed(i, f.mean(), b.mean(), (b.mean(), f.mean()), collapses, **tasks(final=f, best=b, drop=b - f))
        for i, (f, b) in enumerate(zip(final_tasks, best_tasks))
    )
    return MethodSummary(name, seeds)


def outcomes(p, seeds=3, tasks=TASKS, seed=0, difficulty=None):
    """Bernoulli successes [seeds, tasks] at rate ``p`` (per task: ``p + difficulty``)."""
    rate = np.clip(p + (0 if difficulty is None else difficulty), 0, 1)
    return (np.random.default_rng(seed).random((seeds, tasks)) < rate).astype(float)


def verdicts(*summaries):
    return {f.key: f.verdict for f in judge_findings({s.method: s for s in summaries})}


def test_nothing_run_nothing_tested():
    assert set(verdicts(method("sampo", [0.9])).values()) == {NOT_TESTED}


def test_a_difference_inside_the_noise_is_inconclusive_a_large_consistent_one_held():
    # two methods at the same rate on 3 seeds x 256 tasks: the paired difference's interval contains 0
    same = verdicts(tasks_method("grpo", outcomes(0.5, seed=1)), tasks_method("grpo_seqmean", outcomes(0.5, seed=2)))
    assert same["1"] == INCONCLUSIVE
    # 0.7 vs 0.3: far outside the noise, either way round
    assert verdicts(tasks_method("grpo", outcomes(0.7)), tasks_method("grpo_seqmean", outcomes(0.3)))["1"] == HELD
    assert verdicts(tasks_method("grpo", outcomes(0.3)), tasks_method("grpo_seqmean", outcomes(0.7)))["1"] == NOT_HELD


def test_per_seed_values_alone_decide_by_the_seed_bootstrap():
    # diffs per seed +0.2 and 0.0: the seed bootstrap's interval is [0, 0.2], which touches 0
    assert verdicts(method("grpo", [0.6, 0.5]), method("grpo_seqmean", [0.4, 0.5]))["1"] == INCONCLUSIVE
    # +0.2 and +0.1: [0.1, 0.2], above 0
    assert verdicts(method("grpo", [0.6, 0.6]), method("grpo_seqmean", [0.4, 0.5]))["1"] == HELD
    # one seed without per-task outcomes: no interval, whatever the difference
    assert verdicts(method("grpo", [0.9]), method("grpo_seqmean", [0.1]))["1"] == INCONCLUSIVE


def test_comparison_evidence_names_the_interval_and_its_basis():
    (f1,) = [
        f
        for f in judge_findings(
            {"grpo": tasks_method("grpo", outcomes(0.7)), "grpo_seqmean": tasks_method("grpo_seqmean", outcomes(0.3))}
        )
        if f.key == "1"
    ]
    d = paired(tasks_method("grpo", outcomes(0.7)), tasks_method("grpo_seqmean", outcomes(0.3)), "final")
    assert f"grpo - grpo_seqmean = {d.interval.text(signed=True)} (paired over 3 seed(s) x 256 tasks)" in f1.evidence
    assert d.interval.low > 0.3 and d.interval.high < 0.5 and d.mean == pytest.approx(0.4, abs=0.05)


def test_paired_differences_use_only_the_common_seeds():
    a = method("grpo", [0.6, 0.7, 0.9])  # seeds 0, 1, 2
    b = MethodSummary("grpo_seqmean", method("x", [0.4, 0.5]).seeds)  # seeds 0, 1
    d = paired(a, b, "final")
    assert d.seeds == 2 and d.mean == pytest.approx(0.2)
    assert (d.interval.low, d.interval.high) == pytest.approx((0.2, 0.2))


def collapse_case(final_rate, best_rate, collapses=0):
    return tasks_method("m", outcomes(final_rate, seed=5), outcomes(best_rate, seed=6), collapses)


@pytest.mark.parametrize(
    "final_rate, best_rate, collapses, expected",
    [
        (0.2, 0.7, 0, COLLAPSED),  # drop ~0.5, interval far above 0.10
        (0.6, 0.6, 0, STABLE),  # drop ~0 (independent draws), interval below 0.10
        (0.6, 0.6, 2, COLLAPSED),  # no drop, but the detector fired in every seed
        (0.5, 0.6, 0, UNCLEAR),  # drop ~0.10: its interval straddles the threshold
    ],
)
def test_collapse_states(final_rate, best_rate, collapses, expected):
    state, evidence = collapse_state(collapse_case(final_rate, best_rate, collapses))
    assert state == expected and evidence.startswith(f"m {expected}: best ")


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.2, 0.6, 0.1, 0.5, 0.0, 0.3], (1, 4)),  # falls 0.6 -> 0.0, not best -> final (0.3)
        ([0.1, 0.2, 0.3], (0, 0)),  # never falls
        ([0.5, 0.1, 0.5, 0.1], (0, 1)),  # two equal falls: the earliest
    ],
)
def test_largest_fall(values, expected):
    assert largest_fall(np.asarray(values)) == expected


def test_a_fall_inside_the_run_is_a_collapse_even_when_the_run_recovers():
    """Each seed peaks at 0.6, falls to 0 and comes back to 0.55: best - final is 0.05, the drop 0.6."""
    seeds = tuple(seed(i, 0.55, 0.6, (0.3, 0.6, 0.0, 0.55 + 0.01 * i)) for i in range(3))
    summary = MethodSummary("sapo", seeds)
    assert [s.drop for s in seeds] == pytest.approx([0.6] * 3)
    assert collapse_state(summary)[0] == COLLAPSED


def test_clipping_verdicts():
    gspo = tasks_method("gspo", outcomes(0.6, seed=1))  # its best validation was its last: no drop
    sapo = tasks_method("sapo", outcomes(0.2, seed=3), outcomes(0.8, seed=4))
    cispo_drop = tasks_method("cispo", outcomes(0.3, seed=5), outcomes(0.6, seed=6))
    cispo_flat = tasks_method("cispo", outcomes(0.5, seed=7))
    cispo_unclear = tasks_method("cispo", outcomes(0.5, seed=9), outcomes(0.6, seed=10))
    gspo_drop = tasks_method("gspo", outcomes(0.3, seed=11), outcomes(0.6, seed=12))
    assert verdicts(gspo, sapo, cispo_drop)["2"] == HELD
    assert verdicts(gspo, sapo, cispo_flat)["2"] == PARTLY
    assert verdicts(gspo, sapo, cispo_unclear)["2"] == INCONCLUSIVE
    assert verdicts(gspo, cispo_flat)["2"] == NOT_HELD
    assert verdicts(gspo_drop, sapo)["2"] == NOT_HELD  # gspo collapsed itself
    assert verdicts(sapo, cispo_drop)["2"] == NOT_TESTED


def test_masking_verdicts():
    sapo_drop = tasks_method("sapo", outcomes(0.2, seed=1), outcomes(0.8, seed=2))
    sapo_flat = tasks_method("sapo", outcomes(0.7, seed=3))
    masked_flat = tasks_method("sapo_seqmask", outcomes(0.6, seed=5), outcomes(0.62, seed=6))
    masked_drop = tasks_method("sapo_seqmask", outcomes(0.3, seed=7), outcomes(0.6, seed=8))
    assert verdicts(sapo_drop, masked_flat)["mask"] == HELD
    assert verdicts(sapo_drop, masked_drop)["mask"] == NOT_HELD
    assert verdicts(sapo_flat, masked_drop)["mask"] == NOT_HELD
    assert verdicts(sapo_flat, masked_flat)["mask"] == INCONCLUSIVE
    assert verdicts(masked_flat)["mask"] == NOT_TESTED


def test_filtering_and_advantage_verdicts():
    found = verdicts(
        method("gigpo", [0.5, 0.6]),
        method("gigpo_filter", [0.4, 0.45]),  # -0.1, -0.15: filtering did not help gigpo
        method("grpo", [0.7, 0.7], format_min=0.8),
        method("grpo_filter", [0.3, 0.3], format_min=0.8),  # format 0.8 - 0.8 = 0 in both seeds
        method("empg", [0.52, 0.5]),  # gigpo - best rival grpo: -0.2, -0.1
    )
    assert (found["3a"], found["3b"], found["4"]) == (NOT_HELD, INCONCLUSIVE, NOT_HELD)
    # finding 4 with only empg as a rival: -0.02 and +0.1 straddle 0
    assert verdicts(method("gigpo", [0.5, 0.6]), method("empg", [0.52, 0.5]))["4"] == INCONCLUSIVE


def test_missing_format_metric_is_not_tested():
    findings = judge_findings(
        {"grpo": method("grpo", [0.5], format_min=math.nan), "grpo_filter": method("grpo_filter", [0.5])}
    )
    (f3b,) = [f for f in findings if f.key == "3b"]
    assert f3b.verdict == NOT_TESTED and "no lowest valid-format rate logged for grpo" in f3b.evidence


def test_sampo_verdicts_against_grpo_and_the_best_paper_method():
    found = verdicts(
        method("sampo", [0.7, 0.8]),
        method("grpo", [0.5, 0.55]),  # +0.2, +0.25: sampo beats grpo
        method("empg", [0.72, 0.75]),  # the best rival: -0.02, +0.05 straddle 0
        method("sampo_plus", [0.95, 0.95]),  # ours, not the paper's: never the rival
    )
    assert (found["5a"], found["5b"]) == (HELD, INCONCLUSIVE)
    (f5b,) = [
        f
        for f in judge_findings({"sampo": method("sampo", [0.7, 0.8]), "empg": method("empg", [0.9, 0.9])})
        if f.key == "5b"
    ]
    assert f5b.verdict == NOT_HELD and "sampo - empg" in f5b.evidence
    assert verdicts(method("grpo", [0.5]))["5a"] == NOT_TESTED


def finding(key, *summaries):
    (found,) = [f for f in judge_findings({s.method: s for s in summaries}) if f.key == key]
    return found


def test_seeds_needed_projects_the_per_seed_spread_onto_the_threshold():
    # per-seed differences 0.0, 0.1, 0.2: mean 0.1, spread 0.1 -> (1.96 x 0.1 / 0.1)^2 = 3.84 -> 4 seeds
    d = paired(method("grpo", [0.5, 0.6, 0.7]), method("grpo_seqmean", [0.5, 0.5, 0.5]), "final")
    assert d.seed_means == pytest.approx((0.0, 0.1, 0.2))
    assert seeds_needed(d) == "~4 seeds if the mean (+0.100) and the per-seed spread (0.100) hold"
    # +0.1 and +0.3: (1.96 x 0.1414 / 0.2)^2 = 1.92 -> 2, but never fewer than one more seed than measured
    two = paired(method("grpo", [0.6, 0.8]), method("grpo_seqmean", [0.5, 0.5]), "final")
    assert seeds_needed(two).startswith("~3 seeds")
    # against a threshold: drops 0.02 and 0.12 around DROP = 0.1: gap 0.03, spread 0.0707 -> 21.3 -> 22
    drops = method("sapo", [0.5, 0.5], bests=[0.52, 0.62]).estimate("drop")
    assert seeds_needed(drops, DROP).startswith("~22 seeds")
    centred = method("sapo", [0.5, 0.5], bests=[0.55, 0.65]).estimate("drop")  # mean drop exactly DROP
    assert seeds_needed(centred, DROP).startswith("no realistic")
    assert seeds_needed(method("sapo", [0.5]).estimate("final")).startswith("a second seed")


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[1, 0, 0], [1, 0, 0]], (0.0, 1 / 9)),  # the same task wins in every seed: var of task means 1/3, / 3 tasks
        ([[1, 0, 1], [1, 1, 0]], (1 / 6, 0.0)),  # equal seed means, but all noise: residual 0.5, / 3 tasks a seed
        ([[0.1], [0.3]], (0.02, 0.0)),  # no tasks: the seed values' sample variance
    ],
)
def test_variance_parts(values, expected):
    assert variance_parts(np.asarray(values, dtype=float)) == pytest.approx(expected)
    one_seed = variance_parts(np.asarray(values[:1], dtype=float))
    assert math.isnan(one_seed[0]) and one_seed[1] == 0.0


def test_seeds_needed_leaves_the_task_variance_in_place():
    """Seed means 0.15 and 0.25 (m 0.2, s^2 0.005) over 256 tasks. Task variance 0.00898: room
    (0.2 / 1.96)^2 - 0.00898 = 0.00143, n = 0.005 / 0.00143 = 3.49 -> 4 (over seeds alone it would be 3).
    Task variance 0.01377 exceeds (0.2 / 1.96)^2 = 0.01041: no number of seeds."""

    def on_tasks(tasks_var):
        return Estimate(0.2, Interval(0.2, 0.0, 0.4), 2, 256, (0.15, 0.25), 0.005, tasks_var)

    assert seeds_needed(on_tasks(0.00898)).startswith("~4 seeds")
    assert seeds_needed(on_tasks(0.01377)) == (
        "no number of seeds: the spread over the 256 tasks alone keeps the interval around 0 (more held-out tasks "
        "would)"
    )
    assert seeds_needed(on_tasks(0.0)).startswith("~3 seeds")


def test_only_inconclusive_findings_say_what_would_decide_them():
    inconclusive = finding("1", method("grpo", [0.5, 0.6, 0.7]), method("grpo_seqmean", [0.5, 0.5, 0.5]))
    assert inconclusive.verdict == INCONCLUSIVE and inconclusive.needs == "grpo - grpo_seqmean: ~4 seeds if the " \
        "mean (+0.100) and the per-seed spread (0.100) hold"  # fmt: skip
    held = finding("1", method("grpo", [0.6, 0.6]), method("grpo_seqmean", [0.4, 0.5]))
    assert held.verdict == HELD and held.needs == ""
    # finding 2: the unclear method's drop decides it (cispo: drops 0.02 and 0.12)
    gspo = method("gspo", [0.6, 0.6])
    cispo = method("cispo", [0.5, 0.5], bests=[0.52, 0.62])
    sapo = method("sapo", [0.1, 0.1], bests=[0.6, 0.7])
    clipping = finding("2", gspo, sapo, cispo)
    assert clipping.verdict == INCONCLUSIVE and clipping.needs.startswith("cispo's drop: ~22 seeds")
    # masking: sapo never collapsed, so no number of seeds of this run can show masking prevent it
    masked = method("sapo_seqmask", [0.6, 0.6])
    assert finding("mask", method("sapo", [0.7, 0.7]), masked).needs.startswith("a run in which sapo collapses")
    assert finding("mask", sapo, masked).needs == ""  # held


def test_off_policy_findings_ask_whether_the_drop_grows_with_the_mini_batches_and_under_async():
    # per-task drops of 3 seeds: no fall at 1 mini-batch, 0.3 of the lakes lost at 4; 2 sits between (0.1)
    rng = np.random.default_rng(0)
    lost = lambda p: (rng.random((3, TASKS)) < p).astype(float)  # noqa: E731
    best = np.ones((3, TASKS))
    ladder = [tasks_method("sapo@mb1", best - lost(0.0), best), tasks_method("sapo@mb2", best - lost(0.1), best),
              tasks_method("sapo@mb4", best - lost(0.3), best)]  # fmt: skip
    same = [tasks_method("gspo@mb1", best - lost(0.05), best), tasks_method("gspo@mb4", best - lost(0.05), best)]
    found = {f.key: f for f in off_policy({s.method: s for s in [*ladder, *same]})}
    assert set(found) == {"sapo@mb", "gspo@mb", "pooled@mb1-4"}
    sapo = found["sapo@mb"]
    assert sapo.verdict == HELD and "at 4 mini-batches than at 1" in sapo.claim
    assert [part.split(" ")[0] for part in sapo.evidence.split("; ")[:3]] == ["sapo@mb1", "sapo@mb2", "sapo@mb4"]
    assert "drop sapo@mb4 - sapo@mb1 = +0.3" in sapo.evidence and "final success -0.3" in sapo.evidence
    assert "lowest success after the start -0.3" in sapo.evidence
    assert found["gspo@mb"].verdict == INCONCLUSIVE and found["gspo@mb"].needs.startswith("gspo@mb4 - gspo@mb1: ")
    # fewer falls at more mini-batches: did not hold; an async cell is judged against its sync twin
    shrinks = [tasks_method("grpo@mb1", best - lost(0.4), best), tasks_method("grpo@mb4", best - lost(0.0), best),
               tasks_method("grpo@mb4+async", best - lost(0.4), best)]  # fmt: skip
    found = {f.key: f for f in off_policy({s.method: s for s in shrinks})}
    assert "pooled@mb1-4" not in found and "pooled@mb4+async" not in found  # one preset: nothing to pool
    assert found["grpo@mb"].verdict == NOT_HELD
    assert found["grpo@mb4+async"].verdict == HELD and "asynchronous" in found["grpo@mb4+async"].claim
    # a preset at one mini-batch count, or plain presets: nothing to ask
    assert off_policy({s.method: s for s in [ladder[0], method("sapo", [0.5])]}) == []
    assert "sapo@mb" in {f.key for f in judge_findings({s.method: s for s in ladder})}  # after the paper's


def test_pooled_off_policy_findings_average_every_presets_seeds():
    # drops (best - final) at 1 mini-batch: none; at 4: sapo 0.3 and 0.4, grpo 0.2 and 0.3 -> pooled mean 0.3
    cells = [method("sapo@mb1", [0.5, 0.5]), method("sapo@mb4", [0.2, 0.1], [0.5, 0.5]),
             method("grpo@mb1", [0.6, 0.6]), method("grpo@mb4", [0.4, 0.3], [0.6, 0.6]),
             method("sapo@mb1+async", [0.6, 0.5]), method("grpo@mb1+async", [0.6, 0.6], [0.7, 0.8])]  # fmt: skip
    found = {f.key: f for f in off_policy({s.method: s for s in cells})}
    pooled = found["pooled@mb1-4"]
    assert pooled.verdict == HELD and "at 4 mini-batches than at 1" in pooled.claim
    assert "grpo@mb4 +0.250, sapo@mb4 +0.350; pooled +0.300 [" in pooled.evidence
    assert "lowest success after the start -0.300 [" in pooled.evidence  # lowest = final: 0.2, 0.1 / 0.4, 0.3
    assert "over 2 presets, 4 seed(s)" in pooled.evidence
    # asynchronous twins: sapo's drop unchanged (0), grpo's grows by 0.1 and 0.2 -> pooled +0.075
    twins = found["pooled@mb1+async"]
    assert "grpo@mb1+async +0.150, sapo@mb1+async +0.000; pooled +0.075" in twins.evidence
    assert twins.verdict == INCONCLUSIVE and "a seed being one preset's (divide by 2)" in twins.needs
    # the other way round: did not hold
    shrinks = [method("sapo@mb1", [0.2, 0.1], [0.5, 0.5]), method("sapo@mb4", [0.5, 0.5]),
               method("grpo@mb1", [0.4, 0.3], [0.6, 0.6]), method("grpo@mb4", [0.6, 0.6])]  # fmt: skip
    assert {f.key: f for f in off_policy({s.method: s for s in shrinks})}["pooled@mb1-4"].verdict == NOT_HELD


def test_pooled_pairs_fall_back_to_seed_means_when_a_pair_lacks_per_task_outcomes():
    best = np.ones((2, 4))
    per_task = (tasks_method("a@mb4", best - np.eye(2, 4), best), tasks_method("a@mb1", best, best))
    plain = (method("b@mb4", [0.5, 0.7], [1.0, 1.0]), method("b@mb1", [1.0, 1.0]))
    alone = pooled_paired([per_task], "drop")
    assert alone.tasks == 4 and alone.mean == pytest.approx(0.25)  # one lost task of 4 in each seed
    mixed = pooled_paired([per_task, plain], "drop")
    assert mixed.tasks == 0 and mixed.seeds == 4
    assert mixed.mean == pytest.approx((0.25 + 0.25 + 0.5 + 0.3) / 4)
