"""FrozenLake: random seeded lakes that are guaranteed solvable, text grid, shortest-path expert.

The player starts top-left and must reach the goal bottom-right without falling into a hole.
Each non-corner cell is a hole with probability ``hole_prob``; maps without a safe path are
redrawn from the same generator. Non-slippery by default; with ``is_slippery`` the intended
move happens with probability 1/3 and each perpendicular move with 1/3 (the rule of gymnasium's
FrozenLake), drawn from the episode's own generator.

Text symbols: ``P`` player, ``_`` frozen, ``H`` hole, ``G`` goal. Reward 1 on reaching the goal,
0 otherwise; the episode ends in the goal (won) or in a hole (lost).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sampo_verl.envs.base import TextEnv, register_env

ACTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
PERPENDICULAR = {"up": ("left", "right"), "down": ("left", "right"), "left": ("up", "down"), "right": ("up", "down")}
MAX_GENERATION_ATTEMPTS = 1000


def shortest_path(holes: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[str] | None:
    """Shortest safe action sequence from ``start`` to ``goal`` (BFS, actions tried in fixed order)."""
    size = holes.shape
    parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            plan = []
            while parents[cell] is not None:
                cell, action = parents[cell]
                plan.append(action)
            return plan[::-1]
        for action, (dr, dc) in ACTIONS.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if 0 <= nxt[0] < size[0] and 0 <= nxt[1] < size[1] and not holes[nxt] and nxt not in parents:
                parents[nxt] = (cell, action)
                queue.append(nxt)
    return None


def generate_lake(rng: np.random.Generator, size: int, hole_prob: float) -> np.ndarray:
    """Boolean hole map [size, size] with free corners and a safe path between them."""
    for _ in range(MAX_GENERATION_ATTEMPTS):
        holes = rng.random((size, size)) < hole_prob
        holes[0, 0] = holes[-1, -1] = False
        if shortest_path(holes, (0, 0), (size - 1, size - 1)) is not None:
            return holes
    raise RuntimeError(f"frozenlake: no solvable map in {MAX_GENERATION_ATTEMPTS} draws (hole_prob={hole_prob})")


@register_env("frozenlake")
class FrozenLakeEnv(TextEnv):
    """Walk from the top-left corner to the goal G without stepping into a hole H.

    Args:
        size: side of the square lake.
        hole_prob: probability that a cell is a hole.
        is_slippery: gymnasium's slippery dynamics (1/3 intended, 1/3 each perpendicular).
        describe_neighbors: add a line naming what each move leads into (``up: wall, down: hole,
            left: wall, right: ice``), so a small model need not locate ``P`` in the grid itself.
    """

    prompt_intro = (
        "You are walking on a frozen lake. Reach the goal G without stepping into a hole H. "
        "Symbols: P you, _ frozen ice, H hole, G goal. Row 1 is the top row. "
        "Actions: up, down, left, right."
    )
    default_max_turns = 15  # 2.5x the 6-move shortest path of a 4x4 lake

    def __init__(
        self, size: int = 4, hole_prob: float = 0.2, is_slippery: bool = False, describe_neighbors: bool = False
    ):
        if size < 2:
            raise ValueError(f"frozenlake: size must be >= 2, got {size}")
        if not 0.0 <= hole_prob < 1.0:
            raise ValueError(f"frozenlake: hole_prob must be in [0, 1), got {hole_prob}")
        self.size, self.hole_prob, self.is_slippery = int(size), float(hole_prob), bool(is_slippery)
        self.describe_neighbors = bool(describe_neighbors)

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.rng = np.random.default_rng(seed)
        self.holes = generate_lake(self.rng, self.size, self.hole_prob)
        self.goal = (self.size - 1, self.size - 1)
        self.player = (0, 0)
        obs = self._render()
        return obs, self._info(obs)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if action not in ACTIONS:
            raise ValueError(f"frozenlake: unknown action {action!r}; expected one of {list(ACTIONS)}")
        if self.is_slippery:
            action = [action, *PERPENDICULAR[action]][self.rng.integers(3)]
        dr, dc = ACTIONS[action]
        r, c = self.player[0] + dr, self.player[1] + dc
        if 0 <= r < self.size and 0 <= c < self.size:
            self.player = (r, c)
        won = self.player == self.goal
        obs = self._render()
        return obs, float(won), won or bool(self.holes[self.player]), self._info(obs)

    def expert_action(self) -> str:
        return self.expert_plan()[0]

    def expert_plan(self) -> list[str]:
        """A shortest safe path from the player to the goal."""
        plan = shortest_path(self.holes, self.player, self.goal)
        if not plan:
            raise RuntimeError("frozenlake: the episode is over, no expert action")
        return plan

    def _render(self) -> str:
        grid = np.where(self.holes, "H", "_")
        grid[self.goal] = "G"
        grid[self.player] = "P"
        text = "\n".join("".join(row) for row in grid)
        if self.describe_neighbors:
            text += "\n" + ", ".join(f"{action}: {self._cell_name(action)}" for action in ACTIONS)
        return text

    def _cell_name(self, action: str) -> str:
        """What a move from the player's cell leads into: wall (off the map), hole, goal or ice."""
        r, c = self.player[0] + ACTIONS[action][0], self.player[1] + ACTIONS[action][1]
        if not (0 <= r < self.size and 0 <= c < self.size):
            return "wall"
        return "hole" if self.holes[r, c] else "goal" if (r, c) == self.goal else "ice"

    def _info(self, obs: str) -> dict[str, Any]:
        return {"anchor": obs, "admissible_actions": list(ACTIONS), "won": self.player == self.goal}
