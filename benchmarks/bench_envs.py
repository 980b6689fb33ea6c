"""Environment and agent-loop throughput.

Prints, for each environment, resets/s and steps/s (random admissible actions, reset when an
episode ends; WebShop's search page: three words of the instruction), WebShop's search latency at 2k
and 10k products, then episodes/s of ``sampo_env_agent`` driven by a scripted server (random valid
moves, no model) at concurrency 1 and 32 in the same run, with and without a simulated server
latency, and their ratio; then ALFWorld episodes/s at concurrency 1, 32 and 128 in worker processes
(sampo_verl.agent.env_workers) against one in-process episode at a time, with the env errors; then
what an environment worker process costs to start (median seconds from launch to its first environment
built, peak RSS) against, in the same run, a process that imports the registrations and verl (what
every worker imported before the package stopped importing verl on import).

    python benchmarks/bench_envs.py [--quick] [--workers-only]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import math
import os
import subprocess
import sys
import time

import numpy as np
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.utils.dataset.rl_dataset import RLHFDataset

from sampo_verl.agent.env_workers import EnvWorkerPool, RemoteEnv, default_workers
from sampo_verl.agent.loop import EnvAgentLoop, EpisodeSpec
from sampo_verl.envs import make_env
from sampo_verl.envs.alfworld import ALFWorldEnv  # the engine is imported on its first reset only
from sampo_verl.agent.prompts import format_response
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing.scripted_server import ScriptedServer

ALFWORLD_CACHE = "/tmp/sampo_bench_alfworld"
ENVS = [
    ("sokoban", {}),
    ("sokoban", {"dim_room": (10, 10), "num_boxes": 3, "search_depth": 100}),
    ("frozenlake", {"size": 4}),
    ("frozenlake", {"size": 8, "hole_prob": 0.3}),
    ("webshop", {"num_products": 2000}),
    ("webshop", {"num_products": 10000}),
]
if importlib.util.find_spec("alfworld"):
    ENVS.append(("alfworld", {"cache_dir": ALFWORLD_CACHE}))


def env_rates(name: str, options: dict, num_resets: int, num_steps: int) -> tuple[float, float]:
    env, rng = make_env(name, **options), np.random.default_rng(0)
    start = time.perf_counter()
    for seed in range(num_resets):
        env.reset(seed)
    resets_per_s = num_resets / (time.perf_counter() - start)
    _, info = env.reset(0)
    seed, stepping, task = 0, 0.0, info.get("task", "")
    for _ in range(num_steps):
        actions = info.get("admissible_actions") or [search_action(task, rng)]
        start = time.perf_counter()
        _, _, done, info = env.step(actions[rng.integers(len(actions))])
        stepping += time.perf_counter() - start
        if done:
            seed += 1
            _, info = env.reset(seed)
            task = info.get("task", "")
    env.close()
    return resets_per_s, num_steps / stepping


def search_action(task: str, rng: np.random.Generator) -> str:
    """WebShop's search page lists no actions: a search for three words of the instruction."""
    return f"search[{' '.join(rng.choice(task.split(), size=3))}]"


def search_latency(num_products: int, num_queries: int) -> tuple[float, float]:
    """Median and 95th-percentile ms of one WebShop search (BM25, top 50) over ``num_products``."""
    from sampo_verl.envs.webshop_catalog import load_catalog

    catalog = load_catalog(num_products)
    queries = [catalog.goal(seed).instruction for seed in range(num_queries)]
    times = []
    for query in queries:
        start = time.perf_counter()
        catalog.search(query)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times)), float(np.percentile(times, 95))


def episodes_per_s(num_episodes: int, concurrency: int, latency_s: float, tokenizer) -> float:
    moves = ["up", "down", "left", "right"]
    server = ScriptedServer(tokenizer, lambda prompt, i: format_response("", moves[i % 4]), latency_s=latency_s)
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": {"prompt_length": 4096, "response_length": 64}},
            "trainer": {"use_v1": True},
            "data": {"apply_chat_template_kwargs": {}},
        }
    )

    async def main() -> float:
        gate = asyncio.Semaphore(concurrency)

        async def episode(seed: int) -> None:
            async with gate:
                loop = EnvAgentLoop(
                    trainer_config=DictConfigWrap(config),
                    server_manager=server,
                    tokenizer=tokenizer,
                    processor=None,
                    dataset_cls=RLHFDataset,
                    data_config=DictConfigWrap(config.data),
                    max_turns=15,
                )
                await loop.run({}, raw_prompt=[], extra_info={"env": "sokoban", "seed": seed})

        start = time.perf_counter()
        await asyncio.gather(*(episode(s) for s in range(num_episodes)))
        return num_episodes / (time.perf_counter() - start)

    return asyncio.run(main())


def first_admissible(prompt: str, index: int) -> str:
    """A scripted policy for environments that list their actions: the listed action after the call's index."""
    listed = prompt.rsplit("Admissible actions: ", 1)[-1].split("\n")[0].split(", ")
    return format_response("", listed[index % len(listed)])


def alfworld_episodes(
    num_episodes: int, concurrency: int, max_turns: int = 10, env_workers: int | None = None
) -> tuple[float, int]:
    """ALFWorld episodes/s through the agent loop's episode at ``concurrency``, and the env errors among them.

    ``env_workers``: None = the class's worker processes (one per core), 0 = in the loop's process.
    """
    tokenizer = build_tokenizer(default_corpus())
    server = ScriptedServer(tokenizer, first_admissible)
    options = {"cache_dir": ALFWORLD_CACHE}

    async def main() -> tuple[float, int]:
        rollout = {"prompt_length": 8192, "response_length": 64}
        loop = EnvAgentLoop.standalone(server, tokenizer, rollout, max_turns=max_turns, env_workers=env_workers)
        gate = asyncio.Semaphore(concurrency)

        async def episode(seed: int) -> bool:
            async with gate:
                played = await loop.play(EpisodeSpec("alfworld", seed, options, {}, None), str(seed), {})
            return played is None or played.fault is not None

        start = time.perf_counter()
        errors = await asyncio.gather(*(episode(s) for s in range(num_episodes)))
        return num_episodes / (time.perf_counter() - start), sum(errors)

    return asyncio.run(main())


def alfworld_concurrency(scale: float) -> None:
    """ALFWorld episodes/s at concurrency 1, 32 and 128 in worker processes, against in-process one at a time."""
    workers = default_workers(ALFWorldEnv.worker_processes)
    with contextlib.redirect_stdout(io.StringIO()):  # fast_downward prints its plans
        alfworld_episodes(2 * workers, workers)  # start the workers and their engines
        base, base_errors = alfworld_episodes(max(2, int(8 * scale)), 1, env_workers=0)
        rows = [(c, *alfworld_episodes(max(c, int(128 * scale)), c)) for c in (1, 32, 128)]
    print(f"alfworld, 10 turns, in-process, concurrency 1: {base:.2f} episodes/s ({base_errors} env errors)")
    for concurrency, rate, errors in rows:
        print(
            f"alfworld, 10 turns, {workers} worker processes ({os.cpu_count()} cores), concurrency {concurrency}: "
            f"{rate:.2f} episodes/s ({errors} env errors), {rate / base:.2f}x in-process"
        )


def peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def worker_start(name: str, options: dict, starts: int) -> tuple[float, float, float]:
    """Median seconds from launching a worker process to its first ``name`` environment built, its peak
    RSS then and after the environment's first reset (MB; ALFWorld loads its engine on the first reset)."""
    times, peaks, after_reset = [], [], []
    for _ in range(starts):
        pool = EnvWorkerPool(1)
        start = time.perf_counter()
        env = RemoteEnv(pool, name, options, None)
        times.append(time.perf_counter() - start)
        peaks.append(peak_rss_mb(env.worker.process.pid))
        env.reset(0)
        after_reset.append(peak_rss_mb(env.worker.process.pid))
        env.close()
        pool.stop()
    return float(np.median(times)), max(peaks), max(after_reset)


def import_cost(module: str, starts: int) -> tuple[float, float]:
    """Median seconds of ``python -c 'import module'`` and its peak RSS (MB): the baseline of worker_start."""
    code = f"import resource, {module}; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    times, peaks = [], []
    for _ in range(starts):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        peaks.append(float(done.stdout))
    return float(np.median(times)), max(peaks)


def worker_costs(scale: float) -> None:
    starts = max(3, int(10 * scale))
    base_s, base_mb = import_cost("sampo_verl.plugin", starts)
    print(f"baseline: a process importing sampo_verl.plugin (and verl): {base_s:.2f} s, {base_mb:.0f} MB peak")
    for name, options in [("frozenlake", {"size": 4}), ("webshop", {"num_products": 2000})] + (
        [("alfworld", {"cache_dir": ALFWORLD_CACHE})] if importlib.util.find_spec("alfworld") else []
    ):
        seconds, peak, after_reset = worker_start(name, options, starts)
        print(
            f"env worker start, {name}: {seconds:.2f} s to the first environment ({seconds / base_s:.2f}x baseline), "
            f"{peak:.0f} MB peak ({peak / base_mb:.2f}x); {after_reset:.0f} MB after its first reset"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--workers-only", action="store_true", help="only the worker processes' start costs")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    if args.workers_only:
        worker_costs(scale)
        return
    print(f"{'environment':<55} {'resets/s':>10} {'steps/s':>10}")
    for name, options in ENVS:
        heavy = name == "alfworld"
        num_resets, num_steps = int((20 if heavy else 500) * scale), int((200 if heavy else 20000) * scale)
        resets, steps = env_rates(name, options, num_resets, num_steps)
        label = name + (f" {options}" if options else "")
        print(f"{label:<55} {resets:>10.1f} {steps:>10.1f}")
    for num_products in (2000, 10000):
        median, p95 = search_latency(num_products, int(500 * scale))
        print(f"webshop search (BM25, top 50) over {num_products} products: {median:.2f} ms median, {p95:.2f} ms p95")
    tokenizer = build_tokenizer(default_corpus())
    episodes = int(64 * scale) or 8
    for latency in (0.0, 0.01):
        one = episodes_per_s(episodes, 1, latency, tokenizer)
        many = episodes_per_s(episodes, 32, latency, tokenizer)
        print(
            f"agent loop, sokoban, 15 turns, server latency {latency * 1000:.0f} ms: "
            f"{one:.2f} episodes/s at concurrency 1, {many:.2f} at 32, ratio {many / one:.1f}x"
        )
    if importlib.util.find_spec("alfworld"):
        alfworld_concurrency(scale)
    worker_costs(scale)


if __name__ == "__main__":
    main()
