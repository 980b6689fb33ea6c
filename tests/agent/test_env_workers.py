"""Environments in worker processes: concurrent ALFWorld, faults, the timeout past queueing, orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from sampo_verl.agent import env_calls
from sampo_verl.agent.prompts import format_response
from sampo_verl.testing import faulty_env  # noqa: F401  (registers "faulty" here; workers import its module)
from sampo_verl.testing.scripted_server import ScriptedServer
from process_state import alive, wait_for
from test_loop import TOKENIZER, make_loop, scripted, trainer_config

RIGHT = scripted([format_response("", "right")])


def run_episodes(extra_infos: list[dict], policy=RIGHT, **loop_options) -> list:
    server = ScriptedServer(TOKENIZER, policy)

    async def main():
        loop = make_loop(server, **loop_options)
        runs = [
            loop.run({}, raw_prompt=[], extra_info=info, uid="w", session_id=i) for i, info in enumerate(extra_infos)
        ]
        return await asyncio.gather(*runs)

    return asyncio.run(main())


def faulty(fault=None, fail_at=1, seed=3, **options) -> dict:
    return {"env": "faulty", "seed": seed, "env_options": {"fault": fault, "fail_at": fail_at, **options}}


def first_admissible(prompt: str, index: int) -> str:
    listed = prompt.rsplit("Admissible actions: ", 1)[-1].split("\n")[0].split(", ")
    return format_response("", listed[index % len(listed)])


def test_32_concurrent_alfworld_episodes_without_an_env_error(tmp_path):
    pytest.importorskip("alfworld")
    infos = [{"env": "alfworld", "seed": s, "env_options": {"cache_dir": str(tmp_path)}} for s in range(32)]
    episodes = run_episodes(infos, policy=first_admissible, max_turns=4)
    assert all(len(e) >= 1 for e in episodes)
    assert all(
        e[-1].extra_fields["env_error"] == 0.0 and e[-1].extra_fields["env_reset_failures"] == 0 for e in episodes
    )
    assert all(t.extra_fields["action_valid"] for e in episodes for t in e)


def test_a_hung_call_kills_its_worker_and_the_next_episode_gets_a_new_one():
    hung, raised = run_episodes([faulty("hang", fail_at=2), faulty("raise", fail_at=2)], env_workers=1, env_timeout_s=1)
    assert hung[-1].extra_fields["env_error_reason"] == env_calls.TIMEOUT and len(hung) == 2
    # the other episode on that worker either raised first or lost its worker to the kill: it ends failed too
    assert raised[-1].extra_fields["env_error_reason"] == env_calls.RAISED
    (healthy,) = run_episodes([faulty(None)], env_workers=1, env_timeout_s=1, max_turns=3)
    assert healthy[-1].extra_fields["env_error"] == 0.0 and len(healthy) == 3


def test_the_timeout_counts_from_when_the_call_runs_not_from_when_it_queued():
    """One worker, four episodes of 0.3 s steps: the last in line waits ~1 s, its timeout is 0.5 s."""
    infos = [faulty(None, seed=3, step_delay_s=0.3) for _ in range(4)]
    episodes = run_episodes(infos, env_workers=1, env_timeout_s=0.5, max_turns=2)
    assert all(e[-1].extra_fields["env_error"] == 0.0 and len(e) == 2 for e in episodes)


ORPHAN = """
import os, sys, time
import sampo_verl.testing.faulty_env
from sampo_verl.agent.env_workers import RemoteEnv, worker_pool
env = RemoteEnv(worker_pool(1), "faulty", {"fault": "hang", "fail_at": 1}, None)
env.reset(3)
print(env.worker.process.pid, flush=True)
env.step("right")  # hangs in the worker
"""


def test_a_worker_leaves_when_the_agent_loop_process_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(0.5)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert wait_for(lambda: not alive(worker), 10), "the worker outlived the agent loop's process"


def test_the_pool_shares_the_cores_among_verls_agent_loop_workers(monkeypatch):
    from sampo_verl.agent import env_workers

    monkeypatch.setattr(env_workers.os, "cpu_count", lambda: 64)
    assert [env_workers.default_workers(32, sharing) for sharing in (1, 8, 100)] == [32, 8, 1]
    config = trainer_config()
    config.actor_rollout_ref.rollout.agent = {"num_workers": 8}
    loop = asyncio.run(_build(config))
    assert loop.loop_workers == 8


async def _build(config):
    return make_loop(ScriptedServer(TOKENIZER, RIGHT), config)


def test_a_worker_imports_only_the_environments_module_not_torch_verl_or_ray():
    """What a fresh worker process loads to host an environment: its module, nothing heavy."""
    code = (
        "import sys\n"
        "import sampo_verl.testing.faulty_env\n"
        "from sampo_verl.agent.env_workers import RemoteEnv, worker_pool\n"
        "env = RemoteEnv(worker_pool(1), 'faulty', {}, 30)\n"
        "env.reset(3)\n"
        "print(env.worker.process.pid, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        maps = open(f"/proc/{worker}/maps").read()
        assert "torch" not in maps and "/ray/" not in maps and "_raylet" not in maps
    finally:
        parent.communicate("\n", timeout=30)


def test_importing_the_environments_loads_neither_torch_verl_nor_ray():
    code = "import sys, sampo_verl.envs; print(sorted({'torch', 'verl', 'ray'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
