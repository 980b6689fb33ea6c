"""Environment faults through the agent loop: every way a user's environment breaks costs one episode.

The faulty environment (sampo_verl.testing.faulty_env) is a real FrozenLake with one fault injected
at a chosen call; the loop is built as verl builds it and driven by a scripted server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from sampo_verl.agent import env_calls, loop as loop_module, turns
from sampo_verl.agent.env_calls import EnvFault, checked_reset, checked_step
from sampo_verl.agent.prompts import format_response
from sampo_verl.testing import faulty_env
from sampo_verl.testing.faulty_env import EXPECTED_REASON, RESET_FAULTS, STEP_FAULTS
from sampo_verl.testing.scripted_server import ScriptedServer
from test_loop import TOKENIZER, make_loop, play, scripted

# seed 3: a lake where "right" is a safe first move, so the episode reaches the faulting turn
GOOD_INFO = {"anchor": "s", "won": False, "admissible_actions": ["up"]}
RIGHT = scripted([format_response("", "right")])


def faulty(fault: str | None, fail_at: int = 1, **options) -> dict:
    return {"env": "faulty", "seed": 3, "env_options": {"fault": fault, "fail_at": fail_at, **options}}


@pytest.fixture(autouse=True)
def release_hung_threads():
    yield
    faulty_env.RELEASE.set()  # let abandoned threads finish their hang
    time.sleep(0.05)
    faulty_env.RELEASE.clear()


@pytest.mark.parametrize("result", [("obs", GOOD_INFO), ("obs", 0.5, False, GOOD_INFO)])
def test_protocol_results_pass_the_checks(result):
    checked = checked_reset(result) if len(result) == 2 else checked_step(result)
    assert checked == result


@pytest.mark.parametrize(
    "result, reason, says",
    [
        (("obs", 0.0, False), env_calls.BAD_OUTPUT, "expected (observation, reward, done, info)"),
        (("obs", float("nan"), False, GOOD_INFO), env_calls.NON_FINITE_REWARD, "reward is nan"),
        (("obs", float("inf"), False, GOOD_INFO), env_calls.NON_FINITE_REWARD, "reward is inf"),
        (("obs", None, False, GOOD_INFO), env_calls.BAD_OUTPUT, "reward is NoneType None"),
        (("obs", 1.0, "yes", GOOD_INFO), env_calls.BAD_OUTPUT, "done is str"),
        (("obs", 1.0, False, None), env_calls.BAD_OUTPUT, "info is NoneType"),
        (("obs", 1.0, False, {"won": True}), env_calls.NO_ANCHOR, "no 'anchor' (keys: ['won'])"),
        (("obs", 1.0, False, {"anchor": 1, "admissible_actions": "up"}), env_calls.BAD_ADMISSIBLE, "str 'up'"),
        ((b"obs", 1.0, False, GOOD_INFO), env_calls.BAD_OUTPUT, "observation is bytes"),
        (("obs", 0.0, False, {"anchor": 1, "invalid_action": 3}), env_calls.BAD_OUTPUT, "invalid_action is int 3"),
    ],
)
def test_each_protocol_violation_of_step_is_named(result, reason, says):
    with pytest.raises(EnvFault) as fault:
        checked_step(result)
    assert fault.value.reason == reason and says in str(fault.value)


def test_numpy_rewards_and_flags_are_accepted():
    import numpy as np

    assert checked_step(("o", np.float32(0.5), np.bool_(True), GOOD_INFO))[1:3] == (0.5, True)
    with pytest.raises(EnvFault, match="non_finite_reward"):
        checked_step(("o", np.float64("nan"), False, GOOD_INFO))


@pytest.mark.parametrize("fault", STEP_FAULTS)
def test_a_faulting_step_ends_that_episode_as_env_error_with_its_reason(fault):
    outputs, _ = play(RIGHT, extra_info=faulty(fault, fail_at=2), env_timeout_s=0.3, max_turns=6)
    fields = [o.extra_fields for o in outputs]
    assert len(outputs) == 2  # the turn before the fault and the faulting turn
    assert all(f["env_error"] == 1.0 and f["env_error_reason"] == EXPECTED_REASON[fault] for f in fields)
    assert all(f["success"] == 0.0 and not f["won"] for f in fields)
    assert [f["step_reward"] for f in fields] == [0.0, 0.0]  # the broken reward is not used
    assert turns.env_fault_metrics([fields[-1]]) == {
        "sampo/env_error_rate": 1.0,
        f"sampo/env_errors/{EXPECTED_REASON[fault]}": 1.0,
        "sampo/env_close_failures": 0.0,
        "sampo/env_reset_failures": 0.0,
    }


@pytest.mark.parametrize("fault", RESET_FAULTS)
def test_an_episode_that_cannot_start_is_dropped_and_counted_by_the_next_one(fault, monkeypatch):
    monkeypatch.setattr(loop_module, "_RESET_FAILURES", loop_module.Counter())
    outputs, server = play(RIGHT, extra_info=faulty(fault), env_timeout_s=0.3)
    assert outputs == [] and server.calls == []
    outputs, _ = play(RIGHT, extra_info=faulty(None), max_turns=2)
    assert [o.extra_fields["env_reset_failures"] for o in outputs] == [1, 1]
    assert outputs[0].extra_fields["env_error"] == 0.0
    outputs, _ = play(RIGHT, extra_info=faulty(None), max_turns=1)
    assert outputs[0].extra_fields["env_reset_failures"] == 0  # counted once


def expert_responses(seed: int = 3) -> list[str]:
    env, plan, done = faulty_env.FaultyEnv(), [], False
    env.reset(seed)
    while not done:
        plan.append(env.expert_action())
        done = env.step(plan[-1])[2]
    return [format_response("", action) for action in plan]


def test_a_close_that_raises_keeps_the_finished_episode():
    plan = expert_responses()
    outputs, _ = play(scripted(plan), extra_info=faulty("close_raise"))
    assert len(outputs) == len(plan) and outputs[-1].extra_fields["success"] == 1.0
    assert all(o.extra_fields["env_close_failed"] and o.extra_fields["env_error"] == 0.0 for o in outputs)
    assert turns.env_fault_metrics([outputs[-1].extra_fields])["sampo/env_close_failures"] == 1.0


def test_hung_environments_do_not_starve_healthy_episodes_or_the_default_executor():
    """Twelve episodes hang in step (twice the default executor's size on 2 cores) while eight play."""
    server = ScriptedServer(TOKENIZER, RIGHT)
    before = env_calls.hung_threads()

    async def main():
        hung = [make_loop(server, env_timeout_s=0.5, max_turns=4) for _ in range(12)]
        healthy = [make_loop(server, env_timeout_s=5.0, max_turns=4) for _ in range(8)]
        runs = [
            one.run({}, raw_prompt=[], extra_info=faulty("hang"), uid="h", session_id=i) for i, one in enumerate(hung)
        ]
        runs += [
            one.run({}, raw_prompt=[], extra_info=faulty(None), uid="ok", session_id=i) for i, one in enumerate(healthy)
        ]
        episodes = await asyncio.wait_for(asyncio.gather(*runs), 30)
        executor_call = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, lambda: 42), 5)
        return episodes, executor_call

    episodes, executor_call = asyncio.run(main())
    assert executor_call == 42
    assert all(e[-1].extra_fields["env_error_reason"] == env_calls.TIMEOUT for e in episodes[:12])
    assert all(e[-1].extra_fields["env_error"] == 0.0 and len(e) >= 1 for e in episodes[12:])
    assert env_calls.hung_threads() - before == 12
    faulty_env.RELEASE.set()
    deadline = time.monotonic() + 5
    while env_calls.hung_threads() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env_calls.hung_threads() == before  # a released thread ends and is no longer counted


HUNG_EVALUATION = """
import asyncio, sys
from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.agent.prompts import format_response
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing import faulty_env
from sampo_verl.testing.scripted_server import ScriptedServer

tokenizer = build_tokenizer(default_corpus())
server = ScriptedServer(tokenizer, lambda prompt, i: format_response("", "right"))
info = {"env": "faulty", "seed": 3, "env_options": {"fault": "hang", "fail_at": 1}}


async def main():
    rollout = {"prompt_length": 4096, "response_length": 64}
    loop = EnvAgentLoop.standalone(server, tokenizer, rollout, env_timeout_s=0.5)
    return await loop.run({}, raw_prompt=[], extra_info=info, uid="e")


outputs = asyncio.run(main())
print("reason", outputs[-1].extra_fields["env_error_reason"], flush=True)
"""


def test_a_standalone_run_with_a_hung_environment_exits():
    """``asyncio.run`` (as ``sampo-verl evaluate`` uses it) returns and the interpreter exits."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HUNG_EVALUATION], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reason timeout" in done.stdout
    assert time.monotonic() - began < 60


def test_reduced_soak_no_crash_no_hang_no_leak():
    """benchmarks/soak_agent_loop.py at 300 episodes: a fault on 10% of calls, an adversarial model."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "soak_agent_loop.py"
    spec = importlib.util.spec_from_file_location("soak_agent_loop", path)
    soak_module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = soak_module  # its dataclasses look their module up there
    spec.loader.exec_module(soak_module)
    result = soak_module.soak(episodes=300, fault_rate=0.1, concurrency=64, env_timeout_s=0.2, seed=1)
    assert result.healthy, result
    assert result.finished + result.dropped == 300 and result.dropped > 0
    assert result.reset_failures_reported <= result.dropped  # counted by later episodes, never twice
    assert set(result.env_errors) >= {env_calls.TIMEOUT, env_calls.BAD_OUTPUT, env_calls.NON_FINITE_REWARD}
    assert result.close_failures > 0
