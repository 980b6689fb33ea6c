"""One RL step of the CPU testbed with each rollout engine (``hf``, ``vllm``), and the limit.

    python benchmarks/bench_cpu_step.py [--engines hf,vllm] [--env frozenlake] [--method sampo] [--steps 4]
                                        [hydra overrides for every run ...]

Runs the testbed's RL job (``sampo_verl.runs.testbed``: its model size, groups, group size, turns and
response length, from the random tiny model with heads of 32, which vLLM's CPU attention needs, no
validation) once per engine in this invocation, with
today's defaults: ``hf`` (``preset=cpu``, the HF rollout server) and ``vllm`` (``preset=cpu_vllm``, verl's
vLLM server on vLLM's CPU build). Both runs share the model and the task files.

It prints verl's ``timing_s/*`` per phase (mean over the steps after the first, which warms up) for each
engine and their ratio vllm/hf (below 1: vLLM is faster), then the limit for each run's tokens: the bare
model (no verl, no Ray) running the same number of sequences of the run's mean length as one forward for
generation's prefill, two forwards (old and reference log-probs) and one forward+backward (the update), in
micro-batches of 8 with the same threads as the trainer, with logits and log-probs at the last (mean
response length) positions only, as a loss reads them.

Trailing Hydra overrides go to every run; e.g. the ``hf`` step with the settings before the CPU speed work
(README, "CPU step speed"; the environment variable reaches the runs)::

    SAMPO_DISABLE_PATCHES=cpu_chunked_logprobs,cpu_response_logits,cpu_causal_right_padding \\
        python benchmarks/bench_cpu_step.py --engines hf sampo.sampler.poll_interval_s=2 \\
        sampo.old_log_prob.from_rollout=false

Timings on a shared machine are noisy: run it alone, and compare only numbers from one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sampo_verl.metrics import History
from sampo_verl.runs.agent_run import CPU_PRESETS, engine_list, prepare_model, run_agent
from sampo_verl.runs.assets import ModelSize
from sampo_verl.runs.testbed import cpu_testbed, rl_config

TRAINER_PHASES = ["old_log_prob", "ref", "update_actor"]
HEAD_SIZE = 32  # the smallest attention head vLLM's CPU backend serves


def run_steps(
    workdir: Path, model: Path, data: Path, engine: str, args: argparse.Namespace, overrides: list[str]
) -> History:
    config = rl_config(cpu_testbed(args.env), args.method, seed=0, steps=args.steps, test_freq=-1, engine=engine)
    config = dataclasses.replace(config, val_before_train=False, filter_cold_start_steps=args.steps)
    return run_agent(workdir, model, config, overrides, data_dir=data, timeout=args.timeout)


def phase_means(history: History) -> dict[str, float]:
    """Mean of each ``timing_s/<phase>`` over the steps after the first (that log it), phase -> seconds."""
    later = [metrics for step, metrics in sorted(history.items()) if step > 1] or list(history.values())
    keys = dict.fromkeys(key for metrics in later for key in metrics if key.startswith("timing_s/"))
    return {key.removeprefix("timing_s/"): statistics.mean(m[key] for m in later if key in m) for key in keys}


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


def servable_size(size: ModelSize) -> ModelSize:
    """The testbed's model with heads of 32 (as many as its width allows), which vLLM's CPU attention serves:
    both engines run the same model."""
    heads = max(size.hidden // HEAD_SIZE, 1)
    return dataclasses.replace(size, heads=heads, kv_heads=max(heads // 2, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=engine_list, default=list(CPU_PRESETS), help="e.g. hf,vllm or hf")
    parser.add_argument("--env", default="frozenlake")
    parser.add_argument("--method", default="sampo")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800)
    args, overrides = parser.parse_known_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        model = prepare_model(Path(tmp) / "model", servable_size(cpu_testbed(args.env).model))
        histories = {
            name: run_steps(Path(tmp) / name, model, Path(tmp) / "data", name, args, overrides) for name in args.engines
        }
        means = {name: phase_means(history) for name, history in histories.items()}
        shapes = {name: token_shape(history) for name, history in histories.items()}
        limits = {shape: bare_model_seconds(model, *shape) for shape in set(shapes.values())}

    phases = sorted(dict.fromkeys(phase for name in means for phase in means[name]), key=lambda p: p == "step")
    both = set(CPU_PRESETS) <= set(means)
    print(f"\nCPU testbed step ({args.env}, {args.method}, {args.steps} steps; mean of steps 2-{args.steps})")
    print(f"  {'timing_s/':<16}" + "".join(f"{name:>10}" for name in means) + ("   vllm/hf" if both else ""))
    for phase in phases:
        cells = "".join(f"{means[name][phase]:>9.2f}s" if phase in means[name] else f"{'-':>10}" for name in means)
        hf, vllm = (means[name].get(phase) if both else None for name in ("hf", "vllm"))
        print(f"  {phase:<16}{cells}" + (f"{vllm / hf:>9.2f}x" if hf and vllm is not None else ""))
    print(f"Bare model for each run's tokens (torch threads {torch.get_num_threads()}):")
    for name in means:
        sequences, length, response = shapes[name]
        forward, forward_backward = limits[shapes[name]]
        limit_trainer = 2 * forward + forward_backward
        trainer = sum(means[name][phase] for phase in TRAINER_PHASES)
        print(
            f"  {name}: {sequences} sequences x {length} tokens ({response} response) per step: forward"
            f" {forward:.2f}s, forward+backward {forward_backward:.2f}s\n"
            f"    trainer phases {trainer / limit_trainer:.1f}x its 2 forwards + 1 forward+backward"
            f" ({limit_trainer:.2f}s); whole step {means[name]['step'] / (limit_trainer + forward):.1f}x that plus"
            f" a prefill forward ({limit_trainer + forward:.2f}s)"
        )


if __name__ == "__main__":
    main()
