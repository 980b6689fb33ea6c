"""CPU backend speed: HF rollout server throughput (concurrent vs sequential) and one training step.

1. Generated tokens/s of :class:`~sampo_verl.cpu.hf_server.HFServer` for N concurrent requests
   (batched by the server) against the same N requests one after another; prints the ratio.
2. Wall time of one step of verl's trainer on the toy GRPO run (tiny model, cpu preset), from
   verl's ``timing_s/step`` metric, first step (warm-up) and the later ones separately.

    python benchmarks/bench_cpu_rollout.py [--requests 16] [--max-tokens 32] [--hidden 128] [--layers 4]

Timings on a shared machine are noisy: run it alone, and compare only numbers from one run.
Torch runs with ``--threads`` (default 1, what Ray gives the server actor, which reserves no CPU):
with as many OpenMP threads as cores, any other load on the machine slows it down many times.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.cpu.hf_server import HFServer
from sampo_verl.runs.launch import run_main_ppo
from sampo_verl.runs.toy_run import prepare, toy_grpo_overrides


def make_server(model_dir: Path, max_tokens: int) -> HFServer:
    config = SimpleNamespace(
        prompt_length=64, response_length=max_tokens, max_model_len=None, dtype="float32", seed=0, max_num_seqs=1024
    )
    return HFServer(config, SimpleNamespace(path=str(model_dir)), replica_rank=0)


async def generated_tokens_per_second(server: HFServer, prompts: list[list[int]], max_tokens: int, concurrent: bool):
    params = {"temperature": 1.0, "max_tokens": max_tokens, "ignore_eos": True, "logprobs": True}
    start = time.perf_counter()
    if concurrent:
        outputs = await asyncio.gather(
            *[server.generate(p, dict(params), request_id=str(i)) for i, p in enumerate(prompts)]
        )
    else:
        outputs = [await server.generate(p, dict(params), request_id=str(i)) for i, p in enumerate(prompts)]
    elapsed = time.perf_counter() - start
    return sum(len(o.token_ids) for o in outputs) / elapsed


def bench_rollout(args: argparse.Namespace, tmp: Path) -> None:
    size = ModelSize(hidden=args.hidden, layers=args.layers, heads=4, kv_heads=2)
    model_dir = build_assets(tmp / "bench_model", size=size)
    server = make_server(model_dir, args.max_tokens)
    rng = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(3, 500, (int(n),), generator=rng).tolist()
        for n in torch.randint(8, 33, (args.requests,), generator=rng)
    ]
    for concurrent in (False, True):  # warm-up of both paths
        asyncio.run(generated_tokens_per_second(server, prompts[:4], 4, concurrent=concurrent))
    sequential = asyncio.run(generated_tokens_per_second(server, prompts, args.max_tokens, concurrent=False))
    concurrent = asyncio.run(generated_tokens_per_second(server, prompts, args.max_tokens, concurrent=True))
    params = sum(p.numel() for p in server.engine.model.parameters())
    print(
        f"HF rollout, {params / 1e6:.2f}M-param Qwen2, {args.requests} requests x {args.max_tokens} tokens, "
        f"torch threads={torch.get_num_threads()}"
    )
    print(f"  sequential : {sequential:9.1f} tokens/s")
    print(f"  concurrent : {concurrent:9.1f} tokens/s")
    print(f"  ratio concurrent/sequential: {concurrent / sequential:.2f}x")


def bench_train_step(args: argparse.Namespace, tmp: Path) -> None:
    workdir = tmp / "toy_run"
    model_dir = prepare(workdir)
    start = time.perf_counter()
    overrides = toy_grpo_overrides(workdir, model_dir, total_steps=args.train_steps, save_freq=-1)
    history = run_main_ppo(workdir, overrides, workdir / "metrics.jsonl")
    wall = time.perf_counter() - start
    steps = [metrics["timing_s/step"] for metrics in history.values() if "timing_s/step" in metrics]
    later = steps[1:] or steps
    print(f"verl trainer, toy GRPO on CPU (tiny Qwen2, batch 4 x n=4, ref + KL), {len(steps)} steps:")
    print(f"  first step     : {steps[0]:.2f} s")
    print(f"  later steps    : {sum(later) / len(later):.2f} s mean")
    print(f"  whole command  : {wall:.1f} s (Ray start-up and model loading included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the rollout benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bench_rollout(args, Path(tmp))
        if not args.skip_train:
            bench_train_step(args, Path(tmp))


if __name__ == "__main__":
    main()
