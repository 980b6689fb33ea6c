"""What each off-policy guard costs on the CPU testbed: one RL run per guard, same model, tasks and steps.

    python benchmarks/bench_guards.py [--guards none,recompute,...] [--engine hf] [--env frozenlake]
                                      [--method sampo] [--steps 5] [hydra overrides for every run ...]

The guards (docs/async.md), each one run in this invocation, in the order given; the first is the baseline
every ratio is taken against (a run that fails is reported and left out):

- ``none``: the CPU preset as it is: the old policy is the rollout's (``sampo.old_log_prob.from_rollout``).
- ``recompute``: the old policy recomputed by the actor (one more forward pass), which rollout correction needs.
- ``rollout_is``: ``recompute`` + verl's token importance weights old / rollout (truncated at 2).
- ``rollout_rs``: ``recompute`` + verl's rejection of sequences whose mean k3 divergence exceeds 0.01.
- ``mask_rollout``: ``recompute`` + the loss ``gspo_seqmask`` with the masking measured against the rollout policy.
- ``async``: ``trainer.v1.trainer_mode=sampo_colocate_async``, no guard (the next batch generated during a step).
- ``async_drop``: ``async`` + verl's maximum staleness 1 with strategy drop.

Prints, per run, the mean over the steps after the first of verl's step time and the phases that change
(generation, old log-probs, update), the step time's ratio to the baseline's, and what the guard did
(importance-weight spread, rejected or masked fraction, turn staleness, dropped groups). Timings on a shared
machine are noisy: run it alone and compare numbers of one invocation only.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from bench_cpu_step import phase_means, servable_size

from sampo_verl.metrics import History
from sampo_verl.runs.agent_run import prepare_model, run_agent
from sampo_verl.runs.testbed import cpu_testbed, rl_config

RECOMPUTE = ("sampo.old_log_prob.from_rollout=false",)
ASYNC = ("trainer.v1.trainer_mode=sampo_colocate_async",)
GUARDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "recompute": RECOMPUTE,
    "rollout_is": (*RECOMPUTE, "algorithm.rollout_correction.rollout_is=token"),
    "rollout_rs": (
        *RECOMPUTE,
        "algorithm.rollout_correction.rollout_rs=seq_mean_k3",
        "algorithm.rollout_correction.rollout_rs_threshold=0.01",
    ),
    "mask_rollout": (
        *RECOMPUTE,
        "actor_rollout_ref.actor.policy_loss.loss_mode=gspo_seqmask",
        "actor_rollout_ref.actor.policy_loss.seq_mask.reference=rollout",
    ),
    "async": ASYNC,
    "async_drop": (
        *ASYNC,
        "trainer.v1.sampler.max_off_policy_threshold=1",
        "trainer.v1.sampler.max_off_policy_strategy=drop",
    ),
}
PHASES = ("step", "gen", "old_log_prob", "update_actor")
# what each guard did, as the runs log it: metric -> column title
EFFECTS = {
    "rollout_corr/rollout_is_max": "IS weight max",
    "rollout_corr/rollout_rs_seq_masked_fraction": "rejected sequences",
    "actor/seq_mask_frac": "masked",
    "actor/seq_rollout_gap_abs": "rollout gap",
    "sampo/staleness/turn_mean": "staleness",
    "sampo/staleness/dropped_group_frac": "dropped groups",
}


def guard_list(text: str) -> list[str]:
    guards = text.split(",")
    if unknown := [g for g in guards if g not in GUARDS]:
        raise argparse.ArgumentTypeError(f"unknown guards {unknown}; known: {list(GUARDS)}")
    return guards


def effect_means(history: History) -> dict[str, float]:
    """Mean of each effect metric over the steps after the first that log it."""
    later = [m for step, m in sorted(history.items()) if step > 1 and "training/global_step" in m]
    return {key: statistics.mean(m[key] for m in later if key in m) for key in EFFECTS if any(key in m for m in later)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guards", type=guard_list, default=list(GUARDS))
    parser.add_argument("--engine", default="hf", choices=("hf", "vllm"))
    parser.add_argument("--env", default="frozenlake")
    parser.add_argument("--method", default="sampo")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800)
    args, overrides = parser.parse_known_args()
    testbed = cpu_testbed(args.env)
    config = rl_config(testbed, args.method, seed=0, steps=args.steps, test_freq=-1, engine=args.engine)
    config = dataclasses.replace(config, val_before_train=False)
    histories: dict[str, History] = {}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        model = prepare_model(Path(tmp) / "model", servable_size(testbed.model))
        for guard in args.guards:
            workdir = Path(tmp) / guard
            try:
                histories[guard] = run_agent(
                    workdir, model, config, [*GUARDS[guard], *overrides], data_dir=Path(tmp) / "data",
                    timeout=args.timeout,
                )  # fmt: skip
            except RuntimeError as error:  # one guard's failure leaves the others' numbers
                print(f"[bench_guards] {guard} failed: {error}")
    phases = {guard: phase_means(history) for guard, history in histories.items()}
    effects = {guard: effect_means(history) for guard, history in histories.items()}
    base = phases[next(iter(phases))]["step"]
    print(f"\nGuards on the CPU testbed ({args.env}, {args.method}, {args.engine}; mean of steps 2-{args.steps})")
    print(f"  {'guard':<14}" + "".join(f"{p:>14}" for p in PHASES) + f"{'step ratio':>12}  what it did")
    for guard in phases:
        times = "".join(f"{phases[guard][p]:>13.2f}s" if p in phases[guard] else f"{'-':>14}" for p in PHASES)
        did = ", ".join(f"{EFFECTS[k]} {v:.3f}" for k, v in effects[guard].items())
        print(f"  {guard:<14}{times}{phases[guard]['step'] / base:>11.2f}x  {did}")


if __name__ == "__main__":
    main()
