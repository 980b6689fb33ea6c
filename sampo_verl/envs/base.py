"""Text-environment protocol and the registry that maps environment names to classes.

An environment is a deterministic text game:

- ``reset(seed, task) -> (observation, info)`` starts the episode fixed by ``seed`` (and the
  optional ``task`` dict of per-episode options, e.g. a task type);
- ``step(action) -> (observation, reward, done, info)`` applies one action string.

``info`` always carries ``anchor`` (a hashable key of the raw environment state, without history
or prompt template, used by GiGPO to group identical states), ``won`` (bool), and
``admissible_actions`` (list of strings) when the environment has a finite action list, and
``invalid_action`` (a short reason) after a ``step`` whose action the environment refuses (its own
grammar, e.g. ``search[...]`` without a search box): the state stays, the reward is 0 and the agent
loop counts the turn as an invalid action.
``expert_action()`` returns the expert's next action from the current state (behaviour cloning), and
``expert_plan()`` the actions it plans from there (the next one, unless the environment plans further).

Construction options (room size, number of boxes, ...) are keyword arguments of the class; they
come from the dataset row's ``extra_info.env_options``.

Everything else the package needs to know about the game is on its class, so a new environment
is one class: ``prompt_intro`` (the rules shown to the policy at every turn) and ``default_max_turns``
(the agent loop's turn limit when neither the dataset row nor the loop's config sets one). How it is
trained (batch, turn budgets, the tasks' options) is a config group, optionally one file
``sampo_verl/conf/env/<name>.yaml`` (:mod:`sampo_verl.envs.settings`). Register it with::

    @register_env("my_env")
    class MyEnv(TextEnv):
        prompt_intro = "You are ... Actions: ..."
        default_max_turns = 10
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from typing import Any, Callable, TypeVar

ENV_REGISTRY: dict[str, type["TextEnv"]] = {}
INVALID_ACTION = "invalid_action"  # info key of a refused action (see the module docstring)

E = TypeVar("E", bound=type["TextEnv"])


def register_env(name: str) -> Callable[[E], E]:
    """Class decorator: make ``name`` resolvable by :func:`make_env`."""

    def decorator(cls: E) -> E:
        if name in ENV_REGISTRY and ENV_REGISTRY[name] is not cls:
            raise ValueError(f"environment {name!r} is already registered to {ENV_REGISTRY[name].__qualname__}")
        ENV_REGISTRY[name] = cls
        cls.name = name
        return cls

    return decorator


def env_class(name: str) -> type["TextEnv"]:
    """The class registered as ``name``."""
    if name not in ENV_REGISTRY:
        raise KeyError(f"unknown environment {name!r} (extra_info.env); registered: {sorted(ENV_REGISTRY)}")
    return ENV_REGISTRY[name]


EXTERNAL_MODULES_ENV = "VERL_USE_EXTERNAL_MODULES"


def external_modules(value: str | None = None) -> list[str]:
    """The modules a ``VERL_USE_EXTERNAL_MODULES`` value lists (None: this process's), in order,
    without empty entries or repeats."""
    value = os.environ.get(EXTERNAL_MODULES_ENV, "") if value is None else value
    return list(dict.fromkeys(filter(None, (module.strip() for module in value.split(",")))))


def import_external_modules() -> None:
    """Import the modules listed in ``VERL_USE_EXTERNAL_MODULES`` (comma-separated), where users register
    their own environments; verl does the same in every process that imports it."""
    for module in external_modules():
        importlib.import_module(module)


def make_env(name: str, **options: Any) -> "TextEnv":
    """Build the registered environment ``name`` with construction ``options``."""
    return env_class(name)(**options)


GENERIC_INTRO = "You are an agent interacting with a text environment. Complete the task."


class TextEnv(ABC):
    """Base class of the text environments (see the module docstring for the protocol)."""

    name: str = "text_env"
    prompt_intro: str = GENERIC_INTRO
    default_max_turns: int = 15
    # > 0: episodes reach the environment in that many worker processes (at most the machine's cores),
    # for engines that are not thread-safe or hold the GIL (sampo_verl.agent.env_workers)
    worker_processes: int = 0

    @abstractmethod
    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start the episode determined by ``seed`` and ``task``; return (observation, info)."""

    @abstractmethod
    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Apply ``action``; return (observation, reward, done, info)."""

    def expert_action(self) -> str:
        """The expert's next action from the current state."""
        raise NotImplementedError(f"{type(self).__name__} has no expert")

    def expert_plan(self) -> list[str]:
        """The expert's actions from the current state on, as far as it plans ahead (by default the next one)."""
        return [self.expert_action()]

    def close(self) -> None:
        """Release external resources (engine processes, files)."""
