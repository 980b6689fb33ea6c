"""The arena's off-policy axis: a method preset trained with more optimiser steps per rollout batch, or on
verl's colocated asynchronous trainer, as a cell "method" of its own named ``<preset>@<part>[+<part>]``:

- ``mb<k>``: the batch's prompts split into ``k`` PPO mini-batches (``ppo_mini_batch_size = batch / k``),
  so each rollout batch gets ``k`` times the optimiser steps and the later ones train on staler data
  (every turn is a sample, so ``k = 1`` already makes several; ``sampo/staleness/optimizer_steps``);
- ``async``: ``trainer.v1.trainer_mode=sampo_colocate_async`` (the next batch generated while a step trains).

E.g. ``sapo@mb4``, ``grpo@mb2+async``. ``arena run --mini-batches 1,2,4 --modes sync,async`` writes
these names for every ``--methods`` preset; ``--methods`` also takes them directly (one cell per job).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

VARIANT_SEP = "@"
PART_SEP = "+"
ASYNC = "async"
MODES = ("sync", ASYNC)
_MINI_BATCHES = re.compile(r"mb([1-9][0-9]*)")


@dataclass(frozen=True)
class Variant:
    """A preset and the off-policy settings of one cell; ``mini_batches`` None: the preset's own."""

    preset: str
    mini_batches: int | None = None
    colocate_async: bool = False

    @property
    def name(self) -> str:
        parts = ([f"mb{self.mini_batches}"] if self.mini_batches else []) + ([ASYNC] if self.colocate_async else [])
        return self.preset + (VARIANT_SEP + PART_SEP.join(parts) if parts else "")

    def overrides(self, train_batch_size: int | None) -> list[str]:
        """The hydra overrides of this variant for a run of ``train_batch_size`` prompts a step."""
        overrides = []
        if self.mini_batches:
            if train_batch_size is None:
                raise ValueError(f"{self.name}: mini-batch variants need the CPU testbed's batch size (no --recipe)")
            if train_batch_size % self.mini_batches:
                raise ValueError(f"{self.name}: {train_batch_size} prompts a step do not split into "
                                 f"{self.mini_batches} mini-batches")  # fmt: skip
            overrides.append(f"actor_rollout_ref.actor.ppo_mini_batch_size={train_batch_size // self.mini_batches}")
        if self.colocate_async:
            overrides.append("trainer.v1.trainer_mode=sampo_colocate_async")
        return overrides


def parse_variant(name: str) -> Variant:
    """``<preset>[@<part>[+<part>]]`` -> :class:`Variant`; ``ValueError`` naming the bad part."""
    preset, sep, rest = name.partition(VARIANT_SEP)
    if not sep:
        return Variant(preset)
    mini_batches, colocate_async = None, False
    for part in rest.split(PART_SEP):
        match = _MINI_BATCHES.fullmatch(part)
        if match and mini_batches is None:
            mini_batches = int(match.group(1))
        elif part == ASYNC and not colocate_async:
            colocate_async = True
        else:
            raise ValueError(f"{name!r}: unknown or repeated variant part {part!r} (mb<k>, {ASYNC})")
    return Variant(preset, mini_batches, colocate_async)


def expand(
    methods: Sequence[str], mini_batches: Sequence[int] = (), modes: Sequence[str] = ("sync",)
) -> tuple[str, ...]:
    """Every (preset, mini-batches, mode) cell name, preset by preset; ``methods`` are plain presets."""
    variants = [name for name in methods if VARIANT_SEP in name]
    if variants:
        raise ValueError(f"--methods {variants}: with --mini-batches/--modes give plain presets")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"--modes: unknown {unknown}; known: {list(MODES)}")
    if any(k < 1 for k in mini_batches):
        raise ValueError(f"--mini-batches must be >= 1, got {list(mini_batches)}")
    return tuple(
        Variant(method, k, mode == ASYNC).name
        for method in methods
        for k in (mini_batches or (None,))
        for mode in modes
    )
