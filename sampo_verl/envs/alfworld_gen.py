"""Offline ALFWorld games: a seeded generator of ALFRED-format PDDL problems for the six task types.

ALFWorld's text engine (TextWorld's PDDL backend, ``pip install alfworld==0.4.2``) plays any
problem written in ALFRED's naming: objects ``<Type>_bar_<coords>``, locations ``loc_bar_<n>``,
the ALFRED domain and grammar shipped in the ``alfworld`` package, and a ``traj_data.json`` whose
``task_type`` and ``pddl_params`` drive the hand-coded expert. This module writes such games, so
ALFWorld runs without the official game files (which need a download).

A game for (seed, task type, size) is built as follows, all draws from one
``np.random.Generator``:

1. the target object type is drawn among the types that allow the task (heatable for
   ``pick_heat_then_place_in_recep``, ...; ALFRED's ``VAL_ACTION_OBJECTS``), then the parent
   receptacle type among those that can hold it (ALFRED's ``VAL_RECEPTACLE_OBJECTS``), never the
   task's tool (microwave / fridge / sink basin); ``look_at_obj_in_light`` uses a desk lamp
   standing on a side table, desk or dresser instead of a parent;
2. the room gets the parent, the tool, a receptacle that can hold the target, then random
   receptacles up to ``num_receptacles``, each at its own location;
3. the target (two for ``pick_two_obj_and_place``) goes into a receptacle that is not of the
   parent type, and distractor objects of other types fill up to ``num_objects``;
4. the goal is ALFRED's goal formula of the task type; the task text is one of ALFRED's templates.

Every game is solvable by construction (the tests check that the engine's expert wins them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from alfworld.agents.utils.misc import add_task_to_grammar
from alfworld.gen import constants
from alfworld.gen.goal_library import gdict
from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
TOOLS = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
RECEPTACLES = (
    "Cabinet", "CounterTop", "Drawer", "Shelf", "DiningTable", "SideTable", "Desk", "Dresser", "Fridge",
    "Microwave", "SinkBasin", "GarbageCan", "StoveBurner", "CoffeeMachine", "Safe", "Sofa", "ArmChair", "Bed",
    "CoffeeTable", "TVStand",
)  # fmt: skip
LAMP, LAMP_HOLDERS = "DeskLamp", ("SideTable", "Desk", "Dresser")
CAN_HOLD = {r: frozenset(constants.VAL_RECEPTACLE_OBJECTS[r]) for r in RECEPTACLES}
OBJECTS = tuple(
    sorted(o for o in set().union(*CAN_HOLD.values()) if o in constants.OBJECTS and not o.endswith("Sliced"))
)
TASK_OBJECTS = {
    "pick_and_place_simple": OBJECTS,
    "look_at_obj_in_light": tuple(o for o in OBJECTS if o in CAN_HOLD["Desk"]),
    "pick_clean_then_place_in_recep": tuple(o for o in OBJECTS if o in constants.VAL_ACTION_OBJECTS["Cleanable"]),
    "pick_heat_then_place_in_recep": tuple(o for o in OBJECTS if o in constants.VAL_ACTION_OBJECTS["Heatable"]),
    "pick_cool_then_place_in_recep": tuple(o for o in OBJECTS if o in constants.VAL_ACTION_OBJECTS["Coolable"]),
    "pick_two_obj_and_place": OBJECTS,
}
STATE_GOALS = {  # extra goal facts on ?o of the state-change tasks
    "pick_clean_then_place_in_recep": "(cleanable ?o) (isClean ?o)",
    "pick_heat_then_place_in_recep": "(heatable ?o) (isHot ?o)",
    "pick_cool_then_place_in_recep": "(coolable ?o) (isCool ?o)",
}
GAME_VERSION = 1  # bump when the generator's output changes, so cached games are rebuilt


@dataclass(frozen=True)
class GameSpec:
    """The drawn content of a game, before it is written as PDDL."""

    task_type: str
    object_target: str
    parent_target: str  # "" for look_at_obj_in_light
    toggle_target: str  # "" unless look_at_obj_in_light
    receptacles: tuple[str, ...]  # receptacle type per instance
    objects: tuple[tuple[str, int], ...]  # (object type, index of its receptacle)
    task_desc: str


def _pick(rng: np.random.Generator, options) -> str:
    options = sorted(options)
    return options[int(rng.integers(len(options)))]


def draw_game(rng: np.random.Generator, task_type: str, num_receptacles: int, num_objects: int) -> GameSpec:
    """Draw a solvable game of ``task_type`` (see the module docstring for the procedure)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"alfworld: unknown task_type {task_type!r}; expected one of {TASK_TYPES}")
    num_targets = 2 if task_type == "pick_two_obj_and_place" else 1
    if num_receptacles < 4 or num_objects < num_targets + 1:
        raise ValueError(
            f"alfworld: num_receptacles must be >= 4 and num_objects >= {num_targets + 1}, "
            f"got {num_receptacles}, {num_objects}"
        )
    tool = TOOLS.get(task_type)
    target = _pick(rng, TASK_OBJECTS[task_type])
    if task_type == "look_at_obj_in_light":
        parent, toggle = "", LAMP
        anchor_type = _pick(rng, LAMP_HOLDERS)
    else:
        parent, toggle = _pick(rng, [r for r in RECEPTACLES if target in CAN_HOLD[r] and r != tool]), ""
        anchor_type = parent
    sources = [r for r in RECEPTACLES if target in CAN_HOLD[r] and r != parent]
    receptacles = [anchor_type] + ([tool] if tool else []) + [_pick(rng, sources)]
    receptacles += [_pick(rng, RECEPTACLES) for _ in range(num_receptacles - len(receptacles))]
    order = rng.permutation(len(receptacles))
    receptacles = [receptacles[i] for i in order]

    def place(obj_type: str) -> int:
        slots = [i for i, r in enumerate(receptacles) if obj_type in CAN_HOLD[r] and r != parent]
        return slots[int(rng.integers(len(slots)))] if slots else -1

    objects = [(target, place(target)) for _ in range(num_targets)]
    if toggle:
        objects.append((LAMP, int(order.tolist().index(0))))  # the lamp stands on its holder
    while len(objects) < num_objects + (1 if toggle else 0):
        obj_type = _pick(rng, [o for o in OBJECTS if o != target])
        slot = place(obj_type)
        if slot >= 0:
            objects.append((obj_type, slot))
    template = gdict[task_type]["templates"][int(rng.integers(len(gdict[task_type]["templates"])))]
    task_desc = template.format(obj=target.lower(), recep=parent.lower(), toggle=toggle.lower(), mrecep="")
    return GameSpec(task_type, target, parent, toggle, tuple(receptacles), tuple(objects), task_desc)


def _entity_id(type_name: str, k: int) -> str:
    coords = f"_bar__plus_{k // 100:02d}_dot_{k % 100:02d}"
    if type_name.endswith("Basin"):  # ALFRED spells basins "Sink|...|SinkBasin"; the demangler adds "basin"
        return f"{type_name[: -len('Basin')]}{coords}_bar_{type_name}"
    return f"{type_name}{coords}"


def goal_pddl(spec: GameSpec) -> str:
    """ALFRED's goal formula of the task type, filled in for this game."""
    obj, recep = f"{spec.object_target}Type", f"{spec.parent_target}Type"
    if spec.task_type == "look_at_obj_in_light":
        return (
            "(:goal (and (exists (?ot - object ?r - receptacle ?a - agent ?l - location) "
            f"(and (objectType ?ot {spec.toggle_target}Type) (toggleable ?ot) (isToggled ?ot) "
            "(receptacleAtLocation ?r ?l) (atLocation ?a ?l) (inReceptacle ?ot ?r))) "
            f"(exists (?o - object ?a - agent) (and (objectType ?o {obj}) (holds ?a ?o)))))"
        )
    if spec.task_type == "pick_two_obj_and_place":
        return (
            f"(:goal (exists (?r - receptacle) (exists (?o1 - object) (and (objectType ?o1 {obj}) "
            f"(receptacleType ?r {recep}) (inReceptacle ?o1 ?r) (exists (?o2 - object) (and (not (= ?o1 ?o2)) "
            f"(objectType ?o2 {obj}) (inReceptacle ?o2 ?r)))))))"
        )
    state = STATE_GOALS.get(spec.task_type, "")
    return (
        f"(:goal (exists (?r - receptacle) (exists (?o - object) (and {state} (inReceptacle ?o ?r) "
        f"(objectType ?o {obj}) (receptacleType ?r {recep})))))"
    )


def problem_pddl(spec: GameSpec, name: str) -> str:
    """The PDDL problem of ``spec``: entities, initial facts and goal."""
    recep_ids = [_entity_id(r, 100 + i) for i, r in enumerate(spec.receptacles)]
    obj_ids = [_entity_id(o, 1 + i) for i, (o, _) in enumerate(spec.objects)]
    otypes = sorted({o for o, _ in spec.objects} | {spec.object_target})
    rtypes = sorted(set(spec.receptacles) | ({spec.parent_target} - {""}))
    decl = ["agent1 - agent"] + [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]
    decl += [f"{i} - object" for i in obj_ids] + [f"{i} - receptacle" for i in recep_ids]
    decl += [f"loc_bar_{n} - location" for n in range(len(recep_ids) + 1)]
    init = ["(atLocation agent1 loc_bar_0)"]
    for n, (rid, rtype) in enumerate(zip(recep_ids, spec.receptacles), start=1):
        init += [f"(receptacleType {rid} {rtype}Type)", f"(receptacleAtLocation {rid} loc_bar_{n})"]
        if rtype in constants.OPENABLE_CLASS_SET:
            init.append(f"(openable {rid})")
    for oid, (otype, slot) in zip(obj_ids, spec.objects):
        init += [f"(objectType {oid} {otype}Type)", f"(inReceptacle {oid} {recep_ids[slot]})"]
        init.append(f"(objectAtLocation {oid} loc_bar_{slot + 1})")
        if otype == LAMP:
            init.append(f"(toggleable {oid})")
            continue
        init.append(f"(pickupable {oid})")
        for prop, group in (("cleanable", "Cleanable"), ("heatable", "Heatable"), ("coolable", "Coolable")):
            if otype in constants.VAL_ACTION_OBJECTS[group]:
                init.append(f"({prop} {oid})")
    init += [f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes if o in CAN_HOLD[r]]
    return "\n".join(
        [f"(define (problem {name})", "(:domain alfred)", "(:objects", *decl, ")", "(:init", *init, ")",
         goal_pddl(spec), ")"]
    )  # fmt: skip


def write_game(spec: GameSpec, game_dir: str, seed: int) -> str:
    """Write ``traj_data.json`` and ``game.tw-pddl`` into ``game_dir``; return the game file path."""
    traj_data = {
        "task_type": spec.task_type,
        "pddl_params": {
            "object_target": spec.object_target,
            "parent_target": spec.parent_target,
            "toggle_target": spec.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": spec.task_desc}]},
    }
    with open(ALFRED_PDDL_PATH) as f:
        domain = f.read()
    with open(ALFRED_TWL2_PATH) as f:
        # probability 1 of the annotation: the task text is ours, no draw from the global RNG
        grammar = add_task_to_grammar(f.read(), traj_data, goal_desc_human_anns_prob=1.0)
    game = {
        "pddl_domain": domain,
        "grammar": grammar,
        "pddl_problem": problem_pddl(spec, f"sampo_{seed}"),
        "solvable": True,
        "walkthrough": None,
    }
    os.makedirs(game_dir, exist_ok=True)
    for filename, content in (("traj_data.json", traj_data), ("game.tw-pddl", game)):
        tmp = os.path.join(game_dir, f".{filename}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(content, f)
        os.replace(tmp, os.path.join(game_dir, filename))  # atomic: concurrent writers agree
    return os.path.join(game_dir, "game.tw-pddl")


def generate_game(cache_dir: str, seed: int, task_type: str, num_receptacles: int, num_objects: int) -> str:
    """Path of the game for these arguments, generated into ``cache_dir`` on first use."""
    game_dir = os.path.join(
        cache_dir, f"v{GAME_VERSION}", f"{task_type}-r{num_receptacles}-o{num_objects}", f"seed{seed}"
    )
    game_file = os.path.join(game_dir, "game.tw-pddl")
    if os.path.exists(game_file) and os.path.exists(os.path.join(game_dir, "traj_data.json")):
        return game_file
    spec = draw_game(np.random.default_rng(seed), task_type, num_receptacles, num_objects)
    return write_game(spec, game_dir, seed)
