"""An environment that breaks on purpose: a real FrozenLake game with faults injected into its calls.

Registered as ``faulty``. Each fault is one way a user's environment can break the protocol of
:mod:`sampo_verl.envs.base` (or simply raise, or hang); :data:`EXPECTED_REASON` says which
:mod:`sampo_verl.agent.env_calls` reason the agent loop must report for it. Either one ``fault``
at call number ``fail_at`` of its kind (tests), or a random fault on each call with probability
``fault_rate`` (the soak benchmark, training runs), drawn from ``fault_seed`` and the episode's
seed (construction never fails at random: every episode of a dataset shares its options). A hang
waits on :data:`RELEASE` (a test sets it to let the abandoned threads finish); ``step_delay_s``
makes a healthy but slow engine.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from sampo_verl.agent import env_calls as reasons
from sampo_verl.envs import TextEnv, register_env
from sampo_verl.envs.frozenlake import FrozenLakeEnv

HANG_S = 3600.0
RELEASE = threading.Event()

STEP_FAULTS = (
    "raise",
    "hang",
    "nan",
    "inf",
    "reward_str",
    "info_none",
    "no_anchor",
    "admissible_ints",
    "three_tuple",
    "obs_none",
)
RESET_FAULTS = ("reset_raise", "reset_hang", "reset_info_none", "reset_no_anchor", "init_raise")  # init last
CLOSE_FAULTS = ("close_raise",)
EXPECTED_REASON = {
    "raise": reasons.RAISED,
    "hang": reasons.TIMEOUT,
    "nan": reasons.NON_FINITE_REWARD,
    "inf": reasons.NON_FINITE_REWARD,
    "reward_str": reasons.BAD_OUTPUT,
    "info_none": reasons.BAD_OUTPUT,
    "no_anchor": reasons.NO_ANCHOR,
    "admissible_ints": reasons.BAD_ADMISSIBLE,
    "three_tuple": reasons.BAD_OUTPUT,
    "obs_none": reasons.BAD_OUTPUT,
    "reset_raise": reasons.RAISED,
    "reset_hang": reasons.TIMEOUT,
    "reset_info_none": reasons.BAD_OUTPUT,
    "reset_no_anchor": reasons.NO_ANCHOR,
    "init_raise": reasons.RAISED,
}


def _hang() -> None:
    RELEASE.wait(HANG_S)


@register_env("faulty")
class FaultyEnv(TextEnv):
    """FrozenLake (4x4) whose calls fail as configured."""

    prompt_intro = FrozenLakeEnv.prompt_intro
    default_max_turns = 8

    def __init__(
        self,
        fault: str | None = None,
        fail_at: int = 1,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        step_delay_s: float = 0.0,
        **lake: Any,
    ):
        if fault is not None and fault not in (*STEP_FAULTS, *RESET_FAULTS, *CLOSE_FAULTS):
            raise ValueError(f"unknown fault {fault!r}; known: {[*STEP_FAULTS, *RESET_FAULTS, *CLOSE_FAULTS]}")
        self.fault, self.fail_at, self.fault_rate, self.fault_seed = fault, fail_at, fault_rate, fault_seed
        self.step_delay_s = step_delay_s  # a slow but healthy engine
        self.rng = random.Random(fault_seed)
        self.calls = {"step": 0, "reset": 0, "close": 0}
        self.drawn: dict[tuple[str, int], str | None] = {}
        if not fault_rate and self._fires("init_raise", "reset"):
            raise RuntimeError("injected: constructor failed")
        self.lake = FrozenLakeEnv(**{"size": 4, "hole_prob": 0.2, **lake})

    def _fires(self, fault: str, kind: str) -> bool:
        """Whether ``fault`` happens on this call of ``kind`` (calls are counted once per call by the caller)."""
        if self.fault_rate:
            return self._random_fault(kind) == fault
        return self.fault == fault and self.calls[kind] + 1 == self.fail_at

    def _random_fault(self, kind: str) -> str | None:
        key = (kind, self.calls[kind])
        if key not in self.drawn:  # one draw per call, however many faults are asked about
            faults = {"step": STEP_FAULTS, "reset": RESET_FAULTS[:-1], "close": CLOSE_FAULTS}[kind]
            self.drawn[key] = self.rng.choice(faults) if self.rng.random() < self.fault_rate else None
        return self.drawn[key]

    def _fault_of(self, kind: str, faults: tuple[str, ...]) -> str | None:
        fault = next((f for f in faults if self._fires(f, kind)), None)
        self.calls[kind] += 1
        return fault

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> Any:
        self.rng = random.Random(f"{self.fault_seed}/{seed}/{self.calls['reset']}")
        fault = self._fault_of("reset", RESET_FAULTS)
        if fault == "reset_raise":
            raise RuntimeError("injected: reset failed")
        if fault == "reset_hang":
            _hang()
        observation, info = self.lake.reset(seed, task)
        if fault == "reset_info_none":
            return observation, None
        if fault == "reset_no_anchor":
            return observation, {k: v for k, v in info.items() if k != "anchor"}
        return observation, info

    def step(self, action: str) -> Any:
        fault = self._fault_of("step", STEP_FAULTS)
        if fault == "raise":
            raise RuntimeError("injected: step failed")
        if fault == "hang":
            _hang()
        time.sleep(self.step_delay_s)
        observation, reward, done, info = self.lake.step(action)
        broken = {
            "nan": (observation, float("nan"), done, info),
            "inf": (observation, float("-inf"), done, info),
            "reward_str": (observation, "1.0", done, info),
            "info_none": (observation, reward, done, None),
            "no_anchor": (observation, reward, done, {k: v for k, v in info.items() if k != "anchor"}),
            "admissible_ints": (observation, reward, done, {**info, "admissible_actions": [1, 2]}),
            "three_tuple": (observation, reward, done),
            "obs_none": (None, reward, done, info),
        }
        return broken.get(fault, (observation, reward, done, info))

    def expert_action(self) -> str:
        return self.lake.expert_action()

    def close(self) -> None:
        if self._fault_of("close", CLOSE_FAULTS) == "close_raise":
            raise RuntimeError("injected: close failed")
