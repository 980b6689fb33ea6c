"""Sokoban: a seeded, depth-bounded room generator, text rendering and a BFS expert.

Rooms are built without global random state (``np.random.Generator`` seeded per episode):

1. carve a connected floor by a random walk inside the outer wall;
2. put every box on its target and the player on a free floor cell (a solved state);
3. play ``search_depth`` random *reverse* moves: the player steps back, and when a box sits on
   the far side of the player it may be pulled along. Every reverse move is the inverse of a legal
   forward move, so the room is solvable in at most ``search_depth`` moves by construction.

Rooms whose boxes all end on targets are rejected and carved again (bounded retries).

Text symbols: ``#`` wall, ``_`` floor, ``O`` target, ``X`` box, ``√`` box on target, ``P``
player, ``S`` player on target. Reward per step: ``-0.1``, ``+1`` for a box pushed onto a target,
``-1`` for a box pushed off one, ``+10`` when every box is on a target (episode ends, won).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sampo_verl.envs.base import TextEnv, register_env

ACTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
STEP_REWARD, BOX_ON_REWARD, BOX_OFF_REWARD, SOLVED_REWARD = -0.1, 1.0, -1.0, 10.0
MAX_GENERATION_ATTEMPTS = 1000
REVERSE_PLAYS = 4  # reverse plays tried per carved room; the one moving boxes furthest is kept

State = tuple[tuple[int, int], frozenset]  # (player, boxes)


def reverse_play(rng: np.random.Generator, walls: np.ndarray, solved: State, num_moves: int) -> State:
    """Random reverse moves from ``solved``: step back, pulling a box that sits in front."""
    player, boxes = solved
    boxes = set(boxes)
    moves = list(ACTIONS.values())
    for _ in range(num_moves):
        dr, dc = moves[rng.integers(4)]
        back = (player[0] + dr, player[1] + dc)
        if walls[back] or back in boxes:
            continue
        front = (player[0] - dr, player[1] - dc)
        if front in boxes:
            boxes.remove(front)
            boxes.add(player)
        player = back
    return player, frozenset(boxes)


def displacement(boxes: frozenset, targets: frozenset) -> int:
    """Sum over boxes of the Manhattan distance to the nearest target."""
    return sum(min(abs(b[0] - t[0]) + abs(b[1] - t[1]) for t in targets) for b in boxes)


def generate_room(
    rng: np.random.Generator, height: int, width: int, num_boxes: int, search_depth: int, floor_fraction: float
) -> tuple[np.ndarray, frozenset, State]:
    """Return (walls[h, w] bool, targets, start state) of a solvable room."""
    interior = (height - 2) * (width - 2)
    num_floor = max(num_boxes + 2, int(round(floor_fraction * interior)))
    for _ in range(MAX_GENERATION_ATTEMPTS):
        walls = np.ones((height, width), dtype=bool)
        pos = (int(rng.integers(1, height - 1)), int(rng.integers(1, width - 1)))
        walls[pos] = False
        moves = list(ACTIONS.values())
        while (~walls).sum() < num_floor:
            dr, dc = moves[rng.integers(4)]
            nxt = (pos[0] + dr, pos[1] + dc)
            if 1 <= nxt[0] < height - 1 and 1 <= nxt[1] < width - 1:
                pos = nxt
                walls[pos] = False
        floor = [tuple(map(int, rc)) for rc in np.argwhere(~walls)]
        picks = rng.choice(len(floor), size=num_boxes + 1, replace=False)
        targets = frozenset(floor[i] for i in picks[:-1])
        solved = (floor[picks[-1]], targets)
        plays = [reverse_play(rng, walls, solved, search_depth) for _ in range(REVERSE_PLAYS)]
        start = max(plays, key=lambda state: displacement(state[1], targets))
        if start[1] != targets:
            return walls, targets, start
    raise RuntimeError(
        f"sokoban: no unsolved room after {MAX_GENERATION_ATTEMPTS} attempts "
        f"(dim_room=({height}, {width}), num_boxes={num_boxes}, search_depth={search_depth})"
    )


def move(walls: np.ndarray, state: State, action: str) -> tuple[State, tuple | None]:
    """Forward move: return (next state, (box from, box to) if a box was pushed else None)."""
    (r, c), boxes = state
    dr, dc = ACTIONS[action]
    nxt = (r + dr, c + dc)
    if walls[nxt]:
        return state, None
    if nxt in boxes:
        beyond = (nxt[0] + dr, nxt[1] + dc)
        if walls[beyond] or beyond in boxes:
            return state, None
        return (nxt, (boxes - {nxt}) | {beyond}), (nxt, beyond)
    return (nxt, boxes), None


def solve(walls: np.ndarray, targets: frozenset, start: State, max_states: int = 200_000) -> list[str] | None:
    """Shortest action sequence solving the room (BFS over player+box states), None if none found."""
    parents: dict[State, tuple[State, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state[1] == targets:
            plan = []
            while parents[state] is not None:
                state, action = parents[state]
                plan.append(action)
            return plan[::-1]
        for action in ACTIONS:
            nxt, _ = move(walls, state, action)
            if nxt not in parents:
                parents[nxt] = (state, action)
                queue.append(nxt)
        if len(parents) > max_states:
            return None
    return None


def render(walls: np.ndarray, targets: frozenset, state: State) -> str:
    """Text grid of the room (symbols in the module docstring)."""
    player, boxes = state
    rows = []
    for r in range(walls.shape[0]):
        row = []
        for c in range(walls.shape[1]):
            cell, on_target = (r, c), (r, c) in targets
            if walls[cell]:
                row.append("#")
            elif cell in boxes:
                row.append("√" if on_target else "X")
            elif cell == player:
                row.append("S" if on_target else "P")
            else:
                row.append("O" if on_target else "_")
        rows.append("".join(row))
    return "\n".join(rows)


@register_env("sokoban")
class SokobanEnv(TextEnv):
    """Push every box (X) onto a target (O). Actions: up, down, left, right.

    Args:
        dim_room: (height, width) including the outer wall.
        num_boxes: boxes (= targets) per room.
        search_depth: reverse moves played from the solved state (bounds the solution length).
        floor_fraction: share of the interior carved into floor.
    """

    prompt_intro = (
        "You are solving a Sokoban puzzle. Push every box onto a target. Symbols: # wall, _ floor, "
        "O target, X box, √ box on target, P you, S you on a target. You can push a box one cell "
        "by walking into it if the cell behind it is free; you cannot pull boxes. "
        "Actions: up, down, left, right."
    )
    default_max_turns = 15  # the paper's testbed

    def __init__(
        self,
        dim_room: tuple[int, int] | list[int] = (6, 6),
        num_boxes: int = 1,
        search_depth: int = 30,
        floor_fraction: float = 0.6,
    ):
        height, width = (int(v) for v in dim_room)
        if height < 4 or width < 4:
            raise ValueError(f"sokoban: dim_room must be at least (4, 4), got {tuple(dim_room)}")
        if num_boxes < 1 or num_boxes + 1 > (height - 2) * (width - 2) * floor_fraction:
            raise ValueError(f"sokoban: num_boxes={num_boxes} does not fit dim_room={tuple(dim_room)}")
        if search_depth < 1:
            raise ValueError(f"sokoban: search_depth must be >= 1, got {search_depth}")
        self.dim_room, self.num_boxes = (height, width), num_boxes
        self.search_depth, self.floor_fraction = search_depth, floor_fraction
        self._expert_cache: dict[State, str] = {}

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        rng = np.random.default_rng(seed)
        self.walls, self.targets, self.state = generate_room(
            rng, *self.dim_room, self.num_boxes, self.search_depth, self.floor_fraction
        )
        self._expert_cache = {}
        obs = render(self.walls, self.targets, self.state)
        return obs, self._info(obs)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if action not in ACTIONS:
            raise ValueError(f"sokoban: unknown action {action!r}; expected one of {list(ACTIONS)}")
        self.state, pushed = move(self.walls, self.state, action)
        reward = STEP_REWARD
        if pushed is not None:
            reward += BOX_ON_REWARD * (pushed[1] in self.targets) + BOX_OFF_REWARD * (pushed[0] in self.targets)
        won = self.state[1] == self.targets
        reward += SOLVED_REWARD * won
        obs = render(self.walls, self.targets, self.state)
        return obs, reward, won, self._info(obs)

    def expert_action(self) -> str:
        if self.state not in self._expert_cache:
            plan = solve(self.walls, self.targets, self.state)
            if not plan:
                raise RuntimeError("sokoban: no solution from the current state (deadlock)")
            state = self.state
            for action in plan:
                self._expert_cache[state] = action
                state, _ = move(self.walls, state, action)
        return self._expert_cache[self.state]

    def _info(self, obs: str) -> dict[str, Any]:
        return {"anchor": obs, "admissible_actions": list(ACTIONS), "won": self.state[1] == self.targets}
