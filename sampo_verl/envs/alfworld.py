"""ALFWorld on the real engine: the ``alfworld`` package's TextWorld PDDL backend.

Optional dependency: ``pip install alfworld==0.4.2`` (or ``pip install sampo-verl[alfworld]``);
it is imported on the first ``reset``, so the other environments work without it.

Two sources of games:

- official ALFWorld games: ``game_files=<dir>`` (e.g. ``$ALFWORLD_DATA/json_2.1.1/train``, from
  ``alfworld-download``); every solvable ``game.tw-pddl`` under it whose task type is selected is
  used, sorted by path, and ``reset(seed)`` plays game ``seed % number_of_games``;
- offline games (default): ``reset(seed)`` generates the game of that seed with
  :mod:`sampo_verl.envs.alfworld_gen` into ``cache_dir`` (task type ``task["task_type"]`` or the
  selected ``task_types`` cycled by seed; size ``num_receptacles`` / ``num_objects``).

The engine gives the observations, admissible commands (``help`` removed), ``won`` and the
hand-coded expert's next command. Reward: ``success_reward`` (10, as in the reference recipe) on
the winning step, 0 otherwise. ``anchor`` is a digest of the engine's full state (its sorted
facts) with ``anchor="state"``, or the observation text with ``anchor="observation"`` (use the
latter with GiGPO's similarity grouping).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
from typing import Any

from sampo_verl.envs.base import TextEnv, register_env

TASK_TYPE_ALIASES = {
    "pick_and_place": "pick_and_place_simple",
    "look_at_obj_in_light": "look_at_obj_in_light",
    "pick_clean_then_place": "pick_clean_then_place_in_recep",
    "pick_heat_then_place": "pick_heat_then_place_in_recep",
    "pick_cool_then_place": "pick_cool_then_place_in_recep",
    "pick_two_obj": "pick_two_obj_and_place",
}
ALL_TASK_TYPES = tuple(TASK_TYPE_ALIASES.values())
BANNER = "-= Welcome to TextWorld, ALFRED! =-"
TASK_PREFIX = "Your task is to: "


def task_type_name(name: str) -> str:
    """Full ALFWorld task-type name from a full or short name (``pick_two_obj``)."""
    full = TASK_TYPE_ALIASES.get(name, name)
    if full not in ALL_TASK_TYPES:
        raise ValueError(f"alfworld: unknown task type {name!r}; expected one of {sorted(TASK_TYPE_ALIASES)}")
    return full


def default_cache_dir() -> str:
    fallback = os.path.join(os.path.expanduser("~"), ".cache", "sampo_verl", "alfworld")
    return os.environ.get("SAMPO_ALFWORLD_CACHE", fallback)


def official_games(root: str, task_types: tuple[str, ...]) -> list[str]:
    """Solvable official games under ``root`` of the selected task types, sorted by path."""
    games = []
    for game_file in sorted(glob.glob(os.path.join(root, "**", "game.tw-pddl"), recursive=True)):
        game_dir = os.path.dirname(game_file)
        if "movable" in game_dir or "Sliced" in game_dir:  # as alfworld: these are not supported
            continue
        with open(os.path.join(game_dir, "traj_data.json")) as f:
            if json.load(f)["task_type"] not in task_types:
                continue
        with open(game_file) as f:
            if json.load(f).get("solvable", False):
                games.append(game_file)
    if not games:
        raise FileNotFoundError(f"alfworld: no solvable games of task types {task_types} under game_files={root!r}")
    return games


@functools.cache
def _engine():
    """Import the engine lazily; the expert wrapper fixes one inventory-tracking slip of alfworld 0.4.2."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredExpert, AlfredInfos

    class MoveAwareAlfredExpert(AlfredExpert):
        """alfworld's hand-coded expert updates its inventory on commands containing "put", but the
        grammar's put command reads "move X to Y": without this, after putting the first object of
        ``pick_two_obj_and_place`` the expert keeps offering to put that object again."""

        def step(self, command):
            self.state, reward, done = textworld.core.Wrapper.step(self, command)
            self.prev_command = "put" + command[len("move") :] if command.startswith("move ") else str(command)
            self._gather_infos()
            return self.state, reward, done

    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True, extras=["gamefile", "expert_plan"])
    wrappers = [
        functools.partial(AlfredDemangler, shuffle=False),
        AlfredInfos,
        functools.partial(MoveAwareAlfredExpert, expert_type="handcoded"),
    ]
    return lambda game_file: textworld.start(game_file, infos, wrappers=wrappers)


@register_env("alfworld")
class ALFWorldEnv(TextEnv):
    """Household tasks in ALFWorld's text engine (see the module docstring).

    Args:
        game_files: directory of official ALFWorld games; None uses generated offline games.
        task_types: task types to play (full or short names); default all six.
        num_receptacles, num_objects: size of generated games.
        cache_dir: where generated games are written (default ``$SAMPO_ALFWORLD_CACHE`` or
            ``~/.cache/sampo_verl/alfworld``).
        success_reward: reward of the winning step.
        anchor: ``"state"`` (digest of the engine's facts) or ``"observation"``.
    """

    prompt_intro = "You are an agent in a household. Use the text commands listed as admissible to complete the task."
    default_max_turns = 50  # the paper's testbed
    # TextWorld's PDDL parser and fast_downward's sys.argv/sys.stdout rewriting are process-global:
    # concurrent episodes in one process fail; one worker process per core runs them side by side
    worker_processes = 32

    def __init__(
        self,
        game_files: str | None = None,
        task_types: list[str] | None = None,
        num_receptacles: int = 8,
        num_objects: int = 10,
        cache_dir: str | None = None,
        success_reward: float = 10.0,
        anchor: str = "state",
    ):
        if anchor not in ("state", "observation"):
            raise ValueError(f"alfworld: anchor must be 'state' or 'observation', got {anchor!r}")
        self.task_types = tuple(task_type_name(t) for t in (task_types or ALL_TASK_TYPES))
        self.game_files = game_files
        self.num_receptacles, self.num_objects = int(num_receptacles), int(num_objects)
        self.cache_dir = cache_dir or default_cache_dir()
        self.success_reward, self.anchor = float(success_reward), anchor
        self._games = official_games(game_files, self.task_types) if game_files else None
        self._env = None

    def game_file(self, seed: int, task: dict[str, Any] | None = None) -> str:
        """The game file that ``reset(seed, task)`` plays (generated on first use)."""
        task = task or {}
        if "game_file" in task:
            return task["game_file"]
        if self._games is not None:
            return self._games[seed % len(self._games)]
        from sampo_verl.envs.alfworld_gen import generate_game

        if "task_type" in task:
            task_type = task_type_name(task["task_type"])
        else:
            task_type = self.task_types[seed % len(self.task_types)]
        return generate_game(self.cache_dir, seed, task_type, self.num_receptacles, self.num_objects)

    def reset(self, seed: int, task: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self.close()
        self._env = _engine()(self.game_file(seed, task))
        self._state = self._env.reset()
        intro = self._state["feedback"].replace(BANNER, "").strip()
        observation, _, goal = intro.partition(TASK_PREFIX)
        self.task = goal.strip().rstrip(".")
        observation = observation.strip()
        return observation, {**self._info(observation), "task": self.task}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self._env is None:
            raise RuntimeError("alfworld: step() before reset()")
        self._state, _, done = self._env.step(action)
        observation = self._state["feedback"].strip()
        info = self._info(observation)
        return observation, self.success_reward * info["won"], bool(done or info["won"]), info

    def expert_action(self) -> str:
        return self._state["extra.expert_plan"][0]

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def _info(self, observation: str) -> dict[str, Any]:
        if self.anchor == "state":
            facts = "\n".join(sorted(str(f) for f in self._state["facts"]))
            anchor = hashlib.blake2b(facts.encode(), digest_size=16).hexdigest()
        else:
            anchor = observation
        admissible = [c for c in self._state["admissible_commands"] if c != "help"]
        return {"anchor": anchor, "admissible_actions": admissible, "won": bool(self._state["won"])}
