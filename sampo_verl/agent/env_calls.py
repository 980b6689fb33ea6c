"""Environment calls as the agent loop makes them: on a thread of their own, bounded in time, checked.

Every episode's environment lives on its own daemon thread (:class:`EnvThread`): construction,
``reset``, ``step`` and ``close`` run there one after another, never on the event loop's default
executor that verl's tokenizer calls share. A call that exceeds its timeout abandons the thread
(Python cannot kill a thread; it finishes the hung call on its own, or never) and costs that one
episode: nothing else waits on it, and a daemon thread does not hold up the interpreter's exit.
Environments that must not share a process (:mod:`sampo_verl.agent.env_workers`) are reached from
that thread too; their worker process enforces the timeout and is killed when a call overruns.

The results are checked against the protocol of :mod:`sampo_verl.envs.base`
(:func:`checked_reset`, :func:`checked_step`). Whatever goes wrong is an :class:`EnvFault` with a
reason from :data:`REASONS`, which the agent loop records on the episode and the trainer counts
(``sampo/env_errors/<reason>``).
"""

from __future__ import annotations

import asyncio
import math
import numbers
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sampo_verl.agent.env_workers import EnvCallTimeout
from sampo_verl.envs.base import INVALID_ACTION

TIMEOUT = "timeout"
RAISED = "raised"
BAD_OUTPUT = "bad_output"
NON_FINITE_REWARD = "non_finite_reward"
NO_ANCHOR = "no_anchor"
BAD_ADMISSIBLE = "bad_admissible"
REASONS = (TIMEOUT, RAISED, BAD_OUTPUT, NON_FINITE_REWARD, NO_ANCHOR, BAD_ADMISSIBLE)

_hung = 0  # abandoned threads of this process still inside an environment call
_hung_lock = threading.Lock()


class EnvFault(RuntimeError):
    """An environment call raised, overran its timeout or broke the protocol; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def hung_threads() -> int:
    """Environment threads of this process abandoned inside a call that has not returned."""
    return _hung


class EnvThread:
    """One environment on a daemon thread of its own; calls are awaited one at a time."""

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._abandoned = False
        threading.Thread(target=self._serve, name=f"env-{name}", daemon=True).start()

    def _serve(self) -> None:
        global _hung
        while (item := self._calls.get()) is not None:
            fn, args, loop, future = item
            try:
                result, error = fn(*args), None
            except BaseException as raised:  # noqa: BLE001  (handed to the awaiting episode)
                result, error = None, raised
            if self._abandoned:  # the episode gave up on this call and on the thread
                with _hung_lock:
                    _hung -= 1
                return
            loop.call_soon_threadsafe(_settle, future, result, error)

    async def call(self, fn: Callable, *args: Any, timeout: float | None) -> Any:
        """``fn(*args)`` on the thread; :class:`EnvFault` when it raises or takes over ``timeout`` seconds
        (None: no limit here, for a call that enforces its own, e.g. in a worker process)."""
        global _hung
        if self._abandoned:
            raise EnvFault(TIMEOUT, "the environment's thread was abandoned after an earlier timeout")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((fn, args, loop, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self._abandoned = True
            with _hung_lock:
                _hung += 1
            raise EnvFault(TIMEOUT, f"{_name(fn)} took over {timeout:g} s") from None
        except EnvFault:
            raise
        except EnvCallTimeout as error:  # a worker process overran (sampo_verl.agent.env_workers)
            raise EnvFault(TIMEOUT, str(error)) from error
        except Exception as error:  # any environment bug ends the episode, not the training run
            raise EnvFault(RAISED, f"{_name(fn)} raised {type(error).__name__}: {error}") from error

    def stop(self) -> None:
        """Let the thread end once it is idle (at once when it is; an abandoned one ends after its call)."""
        if not self._abandoned:
            self._calls.put(None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _name(fn: Callable) -> str:
    fn = getattr(fn, "func", fn)  # a functools.partial: the function it calls
    return getattr(fn, "__qualname__", repr(fn))


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


def _checked_info(info: Any, call: str) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise EnvFault(BAD_OUTPUT, f"{call}: info is {_describe(info)}, expected a dict")
    if "anchor" not in info:
        raise EnvFault(NO_ANCHOR, f"{call}: info has no 'anchor' (keys: {sorted(map(str, info))})")
    admissible = info.get("admissible_actions")
    if admissible is not None and (
        not isinstance(admissible, (list, tuple)) or not all(isinstance(a, str) for a in admissible)
    ):
        raise EnvFault(BAD_ADMISSIBLE, f"{call}: admissible_actions is {_describe(admissible)}, expected strings")
    refused = info.get(INVALID_ACTION)
    if refused is not None and not isinstance(refused, str):
        raise EnvFault(BAD_OUTPUT, f"{call}: {INVALID_ACTION} is {_describe(refused)}, expected a reason string")
    return info


def checked_reset(result: Any) -> tuple[str, dict[str, Any]]:
    """``reset``'s ``(observation, info)``, or :class:`EnvFault` naming what broke the protocol."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise EnvFault(BAD_OUTPUT, f"reset returned {_describe(result)}, expected (observation, info)")
    observation, info = result
    if not isinstance(observation, str):
        raise EnvFault(BAD_OUTPUT, f"reset: observation is {_describe(observation)}, expected str")
    return observation, _checked_info(info, "reset")


def checked_step(result: Any) -> tuple[str, float, bool, dict[str, Any]]:
    """``step``'s ``(observation, reward, done, info)`` with a finite float reward, or :class:`EnvFault`."""
    if not isinstance(result, tuple) or len(result) != 4:
        raise EnvFault(BAD_OUTPUT, f"step returned {_describe(result)}, expected (observation, reward, done, info)")
    observation, reward, done, info = result
    if not isinstance(observation, str):
        raise EnvFault(BAD_OUTPUT, f"step: observation is {_describe(observation)}, expected str")
    if not isinstance(reward, numbers.Real):
        raise EnvFault(BAD_OUTPUT, f"step: reward is {_describe(reward)}, expected a number")
    if not math.isfinite(reward):
        raise EnvFault(NON_FINITE_REWARD, f"step: reward is {reward}")
    if not (isinstance(done, (bool, np.bool_)) or (isinstance(done, numbers.Integral) and done in (0, 1))):
        raise EnvFault(BAD_OUTPUT, f"step: done is {_describe(done)}, expected a bool")
    return observation, float(reward), bool(done), _checked_info(info, "step")
