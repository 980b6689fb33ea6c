"""CPU rollout engines: generated tokens/s of the ``hf`` and ``vllm`` engines at concurrency 1 and 32.

    python benchmarks/bench_cpu_rollout.py [--engines hf,vllm] [--requests 32] [--concurrency 1,32]
                                           [--max-tokens 32] [--hidden 128] [--layers 4] [--threads 1]

Both engines serve the same random tiny Qwen2 (head size 32, the smallest vLLM's CPU attention serves)
the same requests: ``--requests`` prompts of 8-32 random tokens, each sampled at temperature 1.0 with
log-probs for exactly ``--max-tokens`` tokens (``ignore_eos``). At concurrency ``c`` at most ``c`` requests
are in flight: 1 sends them one after another, 32 (with 32 requests) all together.

- ``hf``: :class:`~sampo_verl.cpu.hf_server.HFServer` in this process, as the ``cpu`` preset's rollout
  (a batch starts once no request came for 20 ms, ``HFServer.GATHER_IDLE_S``: each sequential request
  waits that long).
- ``vllm``: vLLM's ``AsyncLLM`` (the engine verl's vLLM server drives) as the ``cpu_vllm`` preset sets it
  up (float32, eager, 64 sequences a batch, its environment variables), log-probs requested as verl does
  (``logprobs=0``, ``processed_logprobs``); its engine core and worker run in their own processes. Prefix
  caching is off: the requests repeat from warm-up to measurement, and the HF server has no cache.

Each engine is warmed up first (every concurrency, 4 tokens a request); its start-up time (model
loading, for vLLM also the engine core's processes and KV cache) is printed apart. Torch runs with
``--threads`` in both (default 1, what Ray gives the server actor, which reserves no CPU; vLLM's worker
reads it as ``OMP_NUM_THREADS``): with as many OpenMP threads as cores, any other load on the machine slows
it down many times. Timings on a shared machine are noisy: run it alone, and compare only numbers from one
run. The training step with each engine: ``benchmarks/bench_cpu_step.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

# what the cpu_vllm preset (sampo_verl/conf/preset/cpu_vllm.yaml) gives verl's vLLM server; set before
# importing sampo_verl, which imports vLLM: vLLM picks its platform when first imported
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_TARGET_DEVICE": "cpu"}
for _name, _value in VLLM_ENV.items():
    os.environ.setdefault(_name, _value)

from sampo_verl.cpu.hf_server import HFServer  # noqa: E402
from sampo_verl.runs.agent_run import engine_list  # noqa: E402
from sampo_verl.runs.assets import ModelSize, build_assets  # noqa: E402

HEAD_SIZE = 32
MAX_PROMPT = 64  # prompt tokens the engines make room for (the prompts have 8-32)
WARM_UP_TOKENS = 4

# (prompt token ids, max tokens, request id) -> number of generated tokens
Generate = Callable[[list[int], int, str], Awaitable[int]]


@asynccontextmanager
async def hf_engine(model_dir: Path, args: argparse.Namespace) -> AsyncIterator[Generate]:
    config = SimpleNamespace(
        prompt_length=MAX_PROMPT,
        response_length=args.max_tokens,
        max_model_len=None,
        dtype="float32",
        seed=0,
        max_num_seqs=1024,
    )
    server = HFServer(config, SimpleNamespace(path=str(model_dir)), replica_rank=0)

    async def generate(prompt: list[int], max_tokens: int, request_id: str) -> int:
        params = {"temperature": 1.0, "max_tokens": max_tokens, "ignore_eos": True, "logprobs": True}
        return len((await server.generate(prompt, params, request_id=request_id)).token_ids)

    yield generate


@asynccontextmanager
async def vllm_engine(model_dir: Path, args: argparse.Namespace) -> AsyncIterator[Generate]:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by vLLM's worker process
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.async_llm import AsyncLLM

    engine_args = AsyncEngineArgs(
        model=str(model_dir),
        dtype="float32",
        enforce_eager=True,
        max_model_len=MAX_PROMPT + args.max_tokens,
        max_num_seqs=64,
        enable_prefix_caching=False,
        logprobs_mode="processed_logprobs",
        seed=0,
        disable_log_stats=True,
    )
    engine = AsyncLLM.from_engine_args(engine_args)

    async def generate(prompt: list[int], max_tokens: int, request_id: str) -> int:
        params = SamplingParams(temperature=1.0, max_tokens=max_tokens, ignore_eos=True, logprobs=0)
        final = None
        async for final in engine.generate(TokensPrompt(prompt_token_ids=prompt), params, request_id=request_id):
            pass
        return len(final.outputs[0].token_ids)

    try:
        yield generate
    finally:
        engine.shutdown()


ENGINES = {"hf": hf_engine, "vllm": vllm_engine}


async def tokens_per_second(generate: Generate, prompts: list[list[int]], max_tokens: int, concurrency: int) -> float:
    """Generated tokens/s over all ``prompts`` with at most ``concurrency`` requests in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, prompt: list[int]) -> int:
        async with gate:
            return await generate(prompt, max_tokens, f"c{concurrency}-{max_tokens}-{index}")

    start = time.perf_counter()
    generated = await asyncio.gather(*(one(index, prompt) for index, prompt in enumerate(prompts)))
    return sum(generated) / (time.perf_counter() - start)


@dataclass
class EngineResult:
    start_up_s: float
    tokens_per_s: dict[int, float]  # concurrency -> generated tokens/s


async def bench_engine(name: str, model_dir: Path, prompts: list[list[int]], args: argparse.Namespace) -> EngineResult:
    start = time.perf_counter()
    async with ENGINES[name](model_dir, args) as generate:
        start_up = time.perf_counter() - start
        for concurrency in args.concurrency:
            await tokens_per_second(generate, prompts, WARM_UP_TOKENS, concurrency)
        rates = {c: await tokens_per_second(generate, prompts, args.max_tokens, c) for c in args.concurrency}
    return EngineResult(start_up, rates)


def int_list(text: str) -> list[int]:
    return [int(item) for item in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=engine_list, default=list(ENGINES), help="e.g. hf,vllm or vllm")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int_list, default=[1, 32], help="e.g. 1,32")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128, help=f"a multiple of the head size {HEAD_SIZE}")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch (OpenMP) threads of each engine")
    args = parser.parse_args()
    if args.hidden % HEAD_SIZE:
        parser.error(f"--hidden {args.hidden} is not a multiple of the head size {HEAD_SIZE}")
    torch.set_num_threads(args.threads)
    heads = args.hidden // HEAD_SIZE
    size = ModelSize(hidden=args.hidden, layers=args.layers, heads=heads, kv_heads=max(1, heads // 2))
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 33, (args.requests,), generator=generator)
    prompts = [torch.randint(3, 500, (int(n),), generator=generator).tolist() for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_assets(Path(tmp) / "model", size=size)
        results = {name: asyncio.run(bench_engine(name, model_dir, prompts, args)) for name in args.engines}

    ratio = set(ENGINES) <= set(results)
    print(
        f"\nCPU rollout: Qwen2 hidden {args.hidden} x {args.layers} layers ({heads} heads), {args.requests} requests"
        f" of 8-32 prompt tokens x {args.max_tokens} generated, temperature 1.0, torch threads {args.threads}"
    )
    print(f"  {'tokens/s':<16}" + "".join(f"{name:>10}" for name in results) + ("   vllm/hf" if ratio else ""))
    for c in args.concurrency:
        cells = "".join(f"{result.tokens_per_s[c]:>10.1f}" for result in results.values())
        vllm_per_hf = results["vllm"].tokens_per_s[c] / results["hf"].tokens_per_s[c] if ratio else None
        print(f"  {f'concurrency {c}':<16}{cells}" + (f"{vllm_per_hf:>9.2f}x" if ratio else ""))
    print(f"  {'start-up':<16}" + "".join(f"{result.start_up_s:>9.1f}s" for result in results.values()))


if __name__ == "__main__":
    main()
