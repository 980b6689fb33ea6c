"""What one ``arena run`` is (:class:`ArenaSpec`): the matrix, the training budget and how a cell is
launched, checked when it is built (names, presets, testbeds, start models, the recipe), before
anything runs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sampo_verl.arena.layout import Cell, cell_dir
from sampo_verl.arena.variants import parse_variant
from sampo_verl.conf import CONFIG_DIR
from sampo_verl.processes.launch import VERL_LOG
from sampo_verl.runs.agent_run import AgentRunConfig
from sampo_verl.runs.testbed import cpu_testbed

RECIPE_LOGGER = "[console,file]"  # LOGGER of the recipe unless set; it must keep verl's file logger
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def known_methods() -> list[str]:
    """The method presets of ``sampo_verl/conf/method`` (``method=<name>``)."""
    return sorted(path.stem for path in (CONFIG_DIR / "method").glob("*.yaml"))


@dataclass(frozen=True)
class ArenaSpec:
    """One ``arena run``: the matrix, the training budget and how a cell is launched.

    ``test_freq``/``save_freq`` None: every 5 steps on CPU, the recipe's own with ``recipe``.
    ``starts`` maps an environment to the model its cells start from (on CPU a local HF folder);
    an environment without one starts from the CPU testbed's behaviour cloning. ``timeout`` is in
    seconds per training run and per behaviour cloning. ``overrides`` (hydra) go to every cell, last.
    """

    out: Path
    envs: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    test_freq: int | None = None
    save_freq: int | None = None
    starts: Mapping[str, str] = field(default_factory=dict)
    recipe: Path | None = None
    timeout: float | None = None
    overrides: tuple[str, ...] = ()
    engine: str = AgentRunConfig.engine  # the CPU cells' rollout engine (hf | vllm); recipes choose their own
    verbose: bool = False  # verl's output live on the console instead of each folder's verl.log

    def log_file(self, folder: Path) -> Path | None:
        """Where the trainers run for ``folder`` write their console output (None: the console)."""
        return None if self.verbose else folder / VERL_LOG

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).resolve())  # cells run with their folder as cwd
        if self.recipe is not None:
            object.__setattr__(self, "recipe", Path(self.recipe).resolve())
        _check(self)

    def cells(self) -> list[Cell]:
        """Every (env, method, seed) cell, seed by seed: a stopped matrix holds the same seeds of every method."""
        return [
            Cell(env, method, seed, cell_dir(self.out, env, method, seed))
            for seed in self.seeds
            for env in self.envs
            for method in self.methods
        ]


def _check(spec: ArenaSpec) -> None:
    """Raise ``ValueError`` naming the flag for anything the matrix cannot run with."""
    for flag, values in (("--envs", spec.envs), ("--methods", spec.methods), ("--seeds", spec.seeds)):
        if not values:
            raise ValueError(f"{flag}: nothing given")
        if len(set(values)) != len(values):
            raise ValueError(f"{flag} repeats a value: {','.join(map(str, values))}")
    for env in spec.envs:
        if not _NAME.fullmatch(env):
            raise ValueError(f"--envs: {env!r} is not a plain name (letters, digits, '_', '.', '-')")
    variants = [parse_variant(method) for method in spec.methods]  # ValueError names the bad one
    unknown = sorted({variant.preset for variant in variants} - set(known_methods()))
    if unknown:
        raise ValueError(f"--methods: unknown preset(s) {unknown}; known: {known_methods()}")
    if spec.recipe is not None and any(variant.mini_batches for variant in variants):
        raise ValueError("--mini-batches (mb<k> variants) runs on the CPU testbed only: with --recipe pass "
                         "actor_rollout_ref.actor.ppo_mini_batch_size as an override")  # fmt: skip
    if min(spec.seeds) < 0:
        raise ValueError(f"seeds must be >= 0, got {min(spec.seeds)}")
    for flag, value in (("--steps", spec.steps), ("--test-freq", spec.test_freq), ("--save-freq", spec.save_freq)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if spec.timeout is not None and spec.timeout <= 0:
        raise ValueError(f"--timeout must be > 0, got {spec.timeout}")
    stray = sorted(set(spec.starts) - set(spec.envs))
    if stray:
        raise ValueError(f"--init-model names environment(s) {stray} that are not in --envs")
    if spec.recipe is not None:
        if not spec.recipe.is_file():
            raise ValueError(f"--recipe {spec.recipe}: no such file")
        missing = [env for env in spec.envs if env not in spec.starts]
        if missing:
            raise ValueError(
                f"--recipe needs --init-model for {missing}: the (behaviour-cloned) model every cell starts from"
            )
        if "file" not in os.environ.get("LOGGER", RECIPE_LOGGER):
            raise ValueError(f"LOGGER={os.environ['LOGGER']} must include file: the arena reads verl's file logger")
        return
    for env in spec.envs:
        groups = cpu_testbed(env).rl_groups  # an environment without a CPU testbed fails here, naming the known ones
        for variant in variants:
            try:
                variant.overrides(groups)
            except ValueError as err:
                raise ValueError(f"--methods/--mini-batches: {err} (the {env} testbed; use a divisor)") from None
    for env, start in spec.starts.items():
        if not (Path(start) / "config.json").is_file():
            raise ValueError(f"--init-model {start} (for {env}): not a local model folder (no config.json)")


def parse_starts(values: Sequence[str], envs: Sequence[str]) -> dict[str, str]:
    """``--init-model`` values: ``ENV=MODEL`` for one environment, plain ``MODEL`` for all of them.

    A model that exists as a local path is made absolute; anything else (a hub id) is kept as is.
    """
    starts: dict[str, str] = {}
    for value in values:
        env, sep, model = value.partition("=")
        targets, model = ([env], model) if sep and env in envs else (list(envs), value)
        for target in targets:
            if target in starts:
                raise ValueError(f"--init-model: more than one model for {target}")
            starts[target] = str(Path(model).resolve()) if Path(model).exists() else model
    return starts
