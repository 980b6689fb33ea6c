"""One RL step of the CPU testbed: the settings before the speed work against today's, and the limit.

    python benchmarks/bench_cpu_step.py [--env frozenlake] [--method sampo] [--steps 4] [--only new]

Runs the testbed's RL job (``sampo_verl.runs.testbed``: its model size, groups, group size, turns and
response length, from the random tiny model, no validation) twice in this invocation:

- ``before``: verl's replay-buffer poll of 2 s (``sampo.sampler.poll_interval_s=2``), verl's
  old-log-prob forward (``sampo.old_log_prob.from_rollout=false``) and without the speed-only CPU
  patches (``SAMPO_DISABLE_PATCHES``: verl's per-row log-prob loop, logits at every position, the padding
  mask);
- ``new``: the defaults.

It prints verl's ``timing_s/*`` per phase (mean over the steps after the first, which warms up) for both
and their ratio, then the limit: the bare model (no verl, no Ray) running the same number of sequences of
the runs' mean length as one forward for generation's prefill, two forwards (old and reference log-probs)
and one forward+backward (the update), in micro-batches of 8 with the same threads as the trainer, with
logits and log-probs at the last (mean response length) positions only, as a loss reads them.
Timings on a shared machine are noisy: run it alone, and compare only numbers from one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sampo_verl.cpu import SPEED_PATCHES
from sampo_verl.metrics import History
from sampo_verl.patches import DISABLE_VAR
from sampo_verl.runs.agent_run import prepare_model, run_agent
from sampo_verl.runs.testbed import cpu_testbed, rl_config

PHASES = ["gen", "old_log_prob", "ref", "update_actor", "step"]
BEFORE_OVERRIDES = ["sampo.sampler.poll_interval_s=2.0", "sampo.old_log_prob.from_rollout=false"]


def run_steps(workdir: Path, model: Path, args: argparse.Namespace, overrides: list[str], env: dict) -> History:
    config = rl_config(cpu_testbed(args.env), args.method, seed=0, steps=args.steps, test_freq=-1)
    config = dataclasses.replace(config, val_before_train=False, filter_cold_start_steps=args.steps)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return run_agent(workdir, model, config, overrides, timeout=args.timeout)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def phase_means(history: History) -> dict[str, float]:
    later = [metrics for step, metrics in sorted(history.items()) if step > 1] or list(history.values())
    return {phase: statistics.mean(m[f"timing_s/{phase}"] for m in later) for phase in PHASES}


def token_shape(history: History) -> tuple[int, int, int]:
    """(sequences per step, mean tokens per sequence, mean response tokens) of the run."""
    last = history[max(history)]
    length = last["prompt_length/mean"] + last["response_length/mean"]
    return round(last["perf/total_num_tokens"] / length), round(length), round(last["response_length/mean"])


def bare_model_seconds(
    model_dir: Path, sequences: int, length: int, response: int, micro_batch: int = 8
) -> tuple[float, float]:
    """Seconds of one forward and of one forward+backward of the bare model over ``sequences`` x ``length``,
    with the log-probs of the last ``response`` positions."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def one_pass(backward: bool) -> float:
        start = time.perf_counter()
        for first in range(0, sequences, micro_batch):
            ids = torch.randint(0, vocab, (min(micro_batch, sequences - first), length), generator=generator)
            with torch.set_grad_enabled(backward):
                logits = model(input_ids=ids, logits_to_keep=response + 1).logits[:, :-1]
                log_probs = torch.log_softmax(logits, -1).gather(-1, ids[:, -response:, None])
                if backward:
                    log_probs.mean().backward()
        return time.perf_counter() - start

    one_pass(backward=True)  # warm-up
    return one_pass(backward=False), one_pass(backward=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="frozenlake")
    parser.add_argument("--method", default="sampo")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--only", choices=["before", "new"], default=None, help="run one setting only")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    settings = {
        "before": (BEFORE_OVERRIDES, {DISABLE_VAR: ",".join(sorted(SPEED_PATCHES))}),
        "new": ([], {}),
    }
    if args.only:
        settings = {args.only: settings[args.only]}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        model = prepare_model(Path(tmp) / "model", cpu_testbed(args.env).model)
        means, shape = {}, None
        for name, (overrides, env) in settings.items():
            history = run_steps(Path(tmp) / name, model, args, overrides, env)
            means[name], shape = phase_means(history), token_shape(history)
        forward, forward_backward = bare_model_seconds(model, *shape)

    print(f"\nCPU testbed step ({args.env}, {args.method}, {args.steps} steps; mean of steps 2-{args.steps})")
    print(
        f"  {shape[0]} sequences x {shape[1]} tokens ({shape[2]} response) per step,"
        f" torch threads {torch.get_num_threads()}"
    )
    print(f"  {'phase':<14}" + "".join(f"{name:>10}" for name in means) + ("     ratio" if len(means) == 2 else ""))
    for phase in PHASES:
        row = [means[name][phase] for name in means]
        ratio = f"{row[0] / row[1]:>9.2f}x" if len(row) == 2 else ""
        print(f"  {phase:<14}" + "".join(f"{value:>9.2f}s" for value in row) + ratio)
    limit_trainer = 2 * forward + forward_backward
    trainer = {name: sum(means[name][p] for p in ("old_log_prob", "ref", "update_actor")) for name in means}
    limit_step = limit_trainer + forward
    print(f"  bare model: forward {forward:.2f}s, forward+backward {forward_backward:.2f}s")
    for name in means:
        print(
            f"  {name}: trainer phases {trainer[name] / limit_trainer:.1f}x the bare model's 2 forwards + 1 "
            f"forward+backward ({limit_trainer:.2f}s); whole step {means[name]['step'] / limit_step:.1f}x"
            f" that plus a prefill forward ({limit_step:.2f}s)"
        )


if __name__ == "__main__":
    main()
