"""One greedy validation of a behaviour-cloned start with each rollout engine (``hf``, ``vllm``).

    python benchmarks/bench_validation.py --start studies/frozenlake_long_big/frozenlake_long_big/_start \\
        --env frozenlake_long_big [--engines hf,vllm] [hydra overrides for every run ...]

A validation is the part of an arena cell that is not training (three a cell on the CPU testbeds). The HF
engine generates each batch of concurrent requests as one static batch: every row waits for the longest,
and a request that arrives meanwhile waits for the next batch. vLLM schedules token by token (continuous
batching), so where turn lengths vary (the long testbed's plans: 25-91 tokens) it may validate faster.

Each engine runs the start's testbed job for one step at learning rate 0 (the weights do not move) and
validates after it on the start's held-out tasks (``rl_data/``), from the start's model (``bc/``), in one
invocation. Printed per engine: verl's ``timing_s/testing``, the greedy success, the mean turns an
episode, and how many tasks both engines solved alike (greedy decoding on two engines agrees up to ties
and rounding).

Timings on a shared machine are noisy: run it alone, and compare only numbers from one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from sampo_verl.runs.agent_run import CPU_PRESETS, engine_list, run_agent
from sampo_verl.runs.testbed import cpu_testbed, rl_config
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, read_val_outcomes

STEP = 1  # the validation after the one step (at step 0 verl logs no timing)


def validate(workdir: Path, start: Path, engine: str, args: argparse.Namespace, overrides: list[str]):
    """``(timing_s/testing, the step's validation outcomes)`` of one engine's run."""
    config = rl_config(cpu_testbed(args.env), args.method, seed=0, steps=STEP, test_freq=STEP, engine=engine)
    config = dataclasses.replace(config, val_before_train=False)
    frozen = ["actor_rollout_ref.actor.optim.lr=0.0", *overrides]
    history = run_agent(workdir, start / "bc", config, frozen, data_dir=start / "rl_data", timeout=args.timeout)
    return history[STEP]["timing_s/testing"], read_val_outcomes(workdir / OUTCOMES_FILE)[STEP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=Path, required=True, help="an arena start folder: <out>/<env>/_start")
    parser.add_argument("--env", required=True, help="its testbed, e.g. frozenlake_long_big")
    parser.add_argument("--engines", type=engine_list, default=list(CPU_PRESETS), help="e.g. hf,vllm or hf")
    parser.add_argument("--method", default="sampo")
    parser.add_argument("--timeout", type=float, default=1800)
    args, overrides = parser.parse_known_args()
    if not (args.start / "bc" / "config.json").exists():
        parser.error(f"--start {args.start}: no cloned model in {args.start / 'bc'}")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        runs = {name: validate(Path(tmp) / name, args.start.resolve(), name, args, overrides) for name in args.engines}

    seeds = sorted(next(iter(runs.values()))[1].task_seed)
    solved: dict[str, np.ndarray] = {name: outcomes.success(seeds) for name, (_, outcomes) in runs.items()}
    print(f"\nGreedy validation of {args.start} ({args.env}, {len(seeds)} tasks), one per engine")
    print(f"  {'engine':<8}{'testing':>10}{'success':>10}{'turns':>8}")
    for name, (seconds, outcomes) in runs.items():
        print(f"  {name:<8}{seconds:>9.1f}s{solved[name].mean():>10.3f}{mean_turns(outcomes):>8.2f}")
    if {"hf", "vllm"} <= set(runs):
        print(f"  vllm/hf testing time {runs['vllm'][0] / runs['hf'][0]:.2f}x")
        print(f"  tasks with the same outcome on both: {(solved['hf'] == solved['vllm']).mean():.3f}")


def mean_turns(outcomes: ValOutcomes) -> float:
    return float(np.mean(outcomes.episode_length)) if outcomes.episode_length else float("nan")


if __name__ == "__main__":
    main()
