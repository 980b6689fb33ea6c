"""Text-environment protocol and the registry that maps environment names to classes.

An environment is a deterministic text game:

- ``reset(seed, task) -> (observation, info)`` starts the episode fixed by ``seed`` (and the
  optional ``task`` dict of per-episode options, e.g. a task type);
- ``step(action) -> (observation, reward, done, info)`` applies one action string.

``info`` always carries ``anchor`` (a hashable key of the raw environment state, without history
or prompt template, used by GiGPO to group identical states), ``won`` (bool), and
``admissible_actions`` (list of strings) when the environment has a finite action list.
``expert_action()`` returns the expert's next action from the current state (behaviour cloning).

Construction options (room size, number of boxes, ...) are keyword arguments of the class; they
come from the dataset row's ``extra_info.env_options``. Register a new environment with::

    @register_env("my_env")
    class MyEnv(TextEnv): ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, TypeVar

ENV_REGISTRY: dict[str, type["TextEnv"]] = {}

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


def make_env(name: str, **options: Any) -> "TextEnv":
    """Build the registered environment ``name`` with construction ``options``."""
    if name not in ENV_REGISTRY:
        raise KeyError(f"unknown environment {name!r} (extra_info.env); registered: {sorted(ENV_REGISTRY)}")
    return ENV_REGISTRY[name](**options)


class TextEnv(ABC):
    """Base class of the text environments (see the module docstring for the protocol)."""

    name: str = "text_env"

    @abstractmethod
    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start the episode determined by ``seed`` and ``task``; return (observation, info)."""

    @abstractmethod
    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Apply ``action``; return (observation, reward, done, info)."""

    def expert_action(self) -> str:
        """The expert's next action from the current state."""
        raise NotImplementedError(f"{type(self).__name__} has no expert")

    def close(self) -> None:
        """Release external resources (engine processes, files)."""
