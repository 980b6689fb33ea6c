"""Behaviour-cloning cost and held-out success: expert data, verl SFT run, greedy evaluation.

Builds a tiny model (:mod:`sampo_verl.runs.assets`), writes expert data (:mod:`sampo_verl.bc.sft_data`),
runs :mod:`sampo_verl.bc.train` and evaluates the initial and the cloned model on held-out seeds
(:mod:`sampo_verl.runs.evaluate`). Prints one JSON line: wall and CPU seconds of each phase, the SFT
loss curve ends and both success rates.

    python benchmarks/bench_bc.py WORKDIR [--env frozenlake] [--env-options '{"size": 3}'] [--max-turns 6]
        (environment defaults: the CPU testbed's, sampo_verl.runs.testbed)
        [--episodes 150] [--epochs 3 | --steps N] [--batch-size 16] [--eval-episodes 100] [--hidden 64] [--layers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.bc.train import SFT_METRICS_FILE, run_bc
from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.runs.evaluate import evaluate
from sampo_verl.bc.sft_data import write_sft_splits
from sampo_verl.runs.testbed import TESTBEDS


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process and its finished children)."""

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    wall, cpu_start = time.perf_counter(), cpu()
    result = fn()
    return result, round(time.perf_counter() - wall, 1), round(cpu() - cpu_start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--env", default="frozenlake")
    parser.add_argument("--env-options", default=None, help="JSON dict (default: the env's CPU testbed's)")
    parser.add_argument("--max-turns", type=int, default=None, help="(default: the env's CPU testbed's)")
    parser.add_argument("--episodes", type=int, default=150, help="expert training episodes")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (overrides --epochs)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--init-std", type=float, default=0.3)
    args = parser.parse_args()
    testbed = TESTBEDS.get(args.env)
    options = json.loads(args.env_options) if args.env_options else dict(testbed.env_options if testbed else {})
    max_turns = args.max_turns or (testbed.max_turns if testbed else None)
    episode = {"env_options": options, "max_turns": max_turns}
    model = build_assets(args.workdir / "model", size=ModelSize(args.hidden, args.layers, init_std=args.init_std))

    written, data_wall, data_cpu = timed(
        lambda: write_sft_splits(str(args.workdir / "data"), args.env, args.episodes, 20, **episode)
    )
    out, bc_wall, bc_cpu = timed(
        lambda: run_bc(
            model,
            args.workdir / "data",
            args.workdir / "bc",
            epochs=args.epochs,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
        )
    )
    records = [json.loads(line) for line in (out / SFT_METRICS_FILE).read_text().splitlines()]
    losses = [r["data"]["train/loss"] for r in records if "train/loss" in r["data"]]
    seeds = list(range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + args.eval_episodes))
    initial, _, _ = timed(lambda: evaluate(model, args.env, seeds, **episode))
    cloned, eval_wall, eval_cpu = timed(lambda: evaluate(out, args.env, seeds, **episode))
    report = {
        "env": args.env,
        "env_options": options,
        "max_turns": max_turns,
        "expert_turns": written["train"][1],
        "steps": len(losses),
        "batch_size": args.batch_size,
        "model": {"hidden": args.hidden, "layers": args.layers, "init_std": args.init_std},
        "data_s": {"wall": data_wall, "cpu": data_cpu},
        "bc_s": {"wall": bc_wall, "cpu": bc_cpu},
        "eval_s": {"wall": eval_wall, "cpu": eval_cpu, "episodes": args.eval_episodes},
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
        "success_initial": initial.success_rate,
        "success_bc": cloned.success_rate,
        "invalid_action_rate_bc": cloned.invalid_action_rate,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
