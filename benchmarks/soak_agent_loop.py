"""Soak the environment agent loop: thousands of episodes against an environment that fails in every way.

The environment is :mod:`sampo_verl.testing.faulty_env` (a real FrozenLake) with a fault drawn on
each call with probability ``--fault-rate`` (every step, reset and close fault it knows: raises,
hangs, NaN/inf rewards, broken tuples and info dicts); the "model" is adversarial: a seeded mix of
good answers, malformed tags, inadmissible and empty actions, control characters, unicode and
long junk. Prints episodes finished and dropped, env errors by reason, crashes (exceptions out of
``run``), hung episodes (no result within the deadline) and the threads and child processes left
behind after the abandoned environment threads are released; exits 1 unless the last three are 0::

    python benchmarks/soak_agent_loop.py [--episodes 2000] [--fault-rate 0.1] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sampo_verl.agent import env_calls, turns
from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.agent.prompts import format_response
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing import faulty_env
from sampo_verl.testing.scripted_server import ScriptedServer

MOVES = ("up", "down", "left", "right")
JUNK = ("", "<think>", "</action><action>", "\x00\x1b[31m", "é漢字🙂", "<action>up</action><think>x</think>")


def adversarial_policy(seed: int):
    """A model that answers well half of the time and breaks the format in every other way."""
    rng = random.Random(seed)

    def policy(prompt: str, index: int) -> str:
        kind = rng.random()
        move = rng.choice(MOVES)
        if kind < 0.5:
            return format_response("plan", move)
        if kind < 0.6:
            return format_response("x", "fly away")  # inadmissible
        if kind < 0.7:
            return format_response("x", "")  # empty action
        if kind < 0.8:
            return rng.choice(JUNK) + move + rng.choice(JUNK)
        if kind < 0.9:
            return "<think>" + "a" * rng.randint(100, 400) + "</think><action>" + move  # cut-off
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 60)))

    return policy


@dataclass
class SoakResult:
    episodes: int
    finished: int = 0
    dropped: int = 0  # could not start (construction or reset faulted)
    crashes: int = 0
    hung: int = 0
    turns: int = 0
    env_errors: Counter = field(default_factory=Counter)
    close_failures: int = 0
    reset_failures_reported: int = 0
    leaked_threads: int = 0
    leaked_processes: int = 0
    wall_s: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.crashes == self.hung == self.leaked_threads == self.leaked_processes == 0


def _children() -> set[int]:
    me = str(os.getpid())
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                pids.add(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return pids


async def _play(
    episodes: int, fault_rate: float, concurrency: int, env_timeout_s: float, seed: int, result: SoakResult
) -> None:
    tokenizer = build_tokenizer(default_corpus())
    server = ScriptedServer(tokenizer, adversarial_policy(seed))
    loop = EnvAgentLoop.standalone(
        server, tokenizer, {"prompt_length": 4096, "response_length": 96}, env_timeout_s=env_timeout_s
    )
    limit = asyncio.Semaphore(concurrency)
    deadline_s = env_timeout_s * (faulty_env.FaultyEnv.default_max_turns + 3) + 30

    async def episode(i: int) -> None:
        options = {"fault_rate": fault_rate, "fault_seed": seed * 100_003 + i}
        extra_info = {"env": "faulty", "seed": i, "env_options": options}
        async with limit:
            try:
                outputs = await asyncio.wait_for(
                    loop.run({}, raw_prompt=[], extra_info=extra_info, uid=str(i)), deadline_s
                )
            except asyncio.TimeoutError:
                result.hung += 1
                return
            except Exception as error:  # noqa: BLE001  (counted: the soak must see none)
                result.crashes += 1
                print(f"crash in episode {i}: {type(error).__name__}: {error}", file=sys.stderr)
                return
        if not outputs:
            result.dropped += 1
            return
        result.finished += 1
        result.turns += len(outputs)
        last = outputs[-1].extra_fields
        if last[turns.ENV_ERROR_REASON]:
            result.env_errors[last[turns.ENV_ERROR_REASON]] += 1
        result.close_failures += bool(last[turns.ENV_CLOSE_FAILED])
        result.reset_failures_reported += last[turns.ENV_RESET_FAILURES]

    await asyncio.gather(*(episode(i) for i in range(episodes)))


def soak(
    episodes: int = 2000, fault_rate: float = 0.1, concurrency: int = 64, env_timeout_s: float = 0.2, seed: int = 0
) -> SoakResult:
    """Play ``episodes`` faulty episodes; count outcomes and what is left behind once hangs are released."""
    threads, children = threading.active_count(), _children()
    result = SoakResult(episodes)
    began = time.monotonic()
    asyncio.run(_play(episodes, fault_rate, concurrency, env_timeout_s, seed, result))
    result.wall_s = time.monotonic() - began
    faulty_env.RELEASE.set()  # abandoned threads finish their hang and end
    deadline = time.monotonic() + 10
    while (threading.active_count() > threads or env_calls.hung_threads()) and time.monotonic() < deadline:
        time.sleep(0.05)
    faulty_env.RELEASE.clear()
    result.leaked_threads = max(0, threading.active_count() - threads)
    result.leaked_processes = len(_children() - children)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="probability of a fault per environment call")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--env-timeout", type=float, default=0.2, help="env_timeout_s of the loop (hangs cost this)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = soak(args.episodes, args.fault_rate, args.concurrency, args.env_timeout, args.seed)
    print(f"episodes {r.episodes}: finished {r.finished}, dropped at start {r.dropped}, turns {r.turns}")
    print(f"  env errors by reason: {dict(sorted(r.env_errors.items())) or 'none'}")
    print(f"  close failures {r.close_failures}, start failures reported by later episodes {r.reset_failures_reported}")
    print(f"  crashes {r.crashes}, hung episodes {r.hung}")
    print(f"  leaked threads {r.leaked_threads}, leaked processes {r.leaked_processes}")
    print(f"  wall {r.wall_s:.1f} s ({r.episodes / r.wall_s:.0f} episodes/s)")
    print("OK" if r.healthy else "FAILED: crashes, hangs or leaks")
    return 0 if r.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
