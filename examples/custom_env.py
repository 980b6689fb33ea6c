"""Add your own text environment to sampo_env_agent.

1. Subclass ``TextEnv`` and register it by name. ``reset(seed, task)`` and ``step(action)`` must be
   deterministic given the seed; ``info`` carries ``anchor`` (hashable raw state for GiGPO),
   ``won``, and ``admissible_actions`` if the action set is finite (the parser then rejects
   anything else as an invalid action). ``info["task"]`` from ``reset`` is shown as the task.
2. Put what the package needs to know about the game on the class: ``prompt_intro`` (the rules the
   policy sees) and ``default_max_turns``. How it is trained at scale (batch, turn budgets, the tasks'
   options) is optionally one file ``env/<name>.yaml`` in a config folder on Hydra's search path
   (docs/environments.md); without one the GPU recipes run it with ``env=base``.
3. Make the module importable in every Ray process: put it on ``PYTHONPATH`` (or in a package) and
   list it in ``VERL_USE_EXTERNAL_MODULES`` next to ``sampo_verl`` (comma separated), e.g.
   ``VERL_USE_EXTERNAL_MODULES=sampo_verl,custom_env``; the CPU runs of ``sampo_verl.runs`` keep it.
4. Write the dataset and train with ``data.train_files=DIR/train.parquet`` etc.

Run ``python examples/custom_env.py OUT_DIR`` to play one expert episode and write a dataset.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from sampo_verl.agent.dataset import write_splits
from sampo_verl.envs import TextEnv, make_env, register_env


@register_env("guess_number")
class GuessNumberEnv(TextEnv):
    """Find a secret number in [1, high]; each guess is answered with 'higher' or 'lower'."""

    prompt_intro = "You are guessing a secret number. Actions: 'guess N'."
    default_max_turns = 8

    def __init__(self, high: int = 20):
        if high < 2:
            raise ValueError(f"guess_number: high must be >= 2, got {high}")
        self.high = high

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.secret = int(np.random.default_rng(seed).integers(1, self.high + 1))
        self.low_bound, self.high_bound, self.won = 1, self.high, False
        obs = f"The number is between 1 and {self.high}."
        return obs, {**self._info(), "task": f"guess the secret number between 1 and {self.high}"}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        guess = int(action.split()[-1])
        if guess == self.secret:
            self.won = True
            return "Correct!", 1.0, True, self._info()
        if guess < self.secret:
            self.low_bound = max(self.low_bound, guess + 1)
            return f"{guess} is too low.", 0.0, False, self._info()
        self.high_bound = min(self.high_bound, guess - 1)
        return f"{guess} is too high.", 0.0, False, self._info()

    def expert_action(self) -> str:
        return f"guess {(self.low_bound + self.high_bound) // 2}"

    def _info(self) -> dict[str, Any]:
        return {
            "anchor": (self.low_bound, self.high_bound),  # what is known, not the history
            "admissible_actions": [f"guess {n}" for n in range(1, self.high + 1)],
            "won": self.won,
        }


def main(out_dir: str) -> None:
    env = make_env("guess_number", high=50)
    obs, info = env.reset(seed=7)
    done = False
    while not done:
        action = env.expert_action()
        obs, reward, done, info = env.step(action)
        print(f"{action!r} -> {obs}")
    train, val = write_splits(out_dir, "guess_number", 64, 16, env_options={"high": 50}, max_turns=8)
    print(f"wrote {train} and {val}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/guess_number")
