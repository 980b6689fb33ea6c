"""The CPU-scale ARLArena testbed: behaviour cloning first, then RL through ``sampo_verl.main_ppo``.

SPEC.md's testbed starts RL from a behaviour-cloned policy. This module holds the small version
that runs on a laptop, shared by the quickstart (one environment, one method) and the arena
(environment x method x seed cells, all from the same behaviour-cloned start):

1. :func:`bc_start`: the tiny local model (:mod:`sampo_verl.assets`), expert SFT data in the agent
   loop's prompt format (:mod:`sampo_verl.sft_data`), behaviour cloning through verl's SFT trainer
   (:mod:`sampo_verl.bc`). Cached: a finished start is reused.
2. :func:`rl_config`: the RL run (:mod:`sampo_verl.cpu.agent_run`) on the same environment settings,
   validating on held-out seeds before, during and after training (verl's ``val-core/<env>/acc``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampo_verl.assets import ModelSize
from sampo_verl.cpu.agent_run import AgentRunConfig, is_built, mark_built, prepare_model

DONE_FILE = "bc_done.json"


@dataclass(frozen=True)
class Testbed:
    """Environment, model and behaviour-cloning settings of one CPU testbed."""

    env: str
    env_options: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 5
    model: ModelSize = ModelSize(hidden=64, init_std=0.3)  # 0.3: BC reached higher held-out success than 0.02
    bc_episodes: int = 150
    bc_val_episodes: int = 16
    bc_steps: int = 150  # optimizer steps; ~100-150 at batch 16 were needed for BC to succeed
    bc_lr: float = 1e-3
    bc_batch_size: int = 16
    rl_train_tasks: int = 512
    rl_val_tasks: int = 32
    rl_groups: int = 4  # episode groups per RL step
    rl_lr: float = 5e-4  # 1e-3 and up broke the answer format; 5e-4 beat BC in 2 of 3 seeds (README)
    # Sampling at 1.0 from the cloned tiny model gives ~20% malformed turns, and RL then learned that a
    # malformed turn (a stand-still) beats a move into a hole: the format collapsed. At 0.7 ~3% are malformed
    # and the exploration is over moves.
    rl_temperature: float = 0.7
    rl_group_size: int = 8  # the testbed's group size
    max_response_length: int = 48  # a cloned turn is ~25 tokens; sampled ones run longer


TESTBEDS: dict[str, Testbed] = {
    "sokoban": Testbed(env="sokoban", env_options={"dim_room": [5, 5], "num_boxes": 1, "search_depth": 4}),
    # 4x4 lakes, 6 moves from start to goal. With the grid alone the 64-wide model never located P: it
    # cloned the commonest path (3x3 lakes: exactly down,down,right,right). With the neighbour line BC
    # reaches ~0.55 greedy held-out success in ~85 s (3x3 lakes: 0.97, no room left for RL).
    "frozenlake": Testbed(
        env="frozenlake",
        env_options={"size": 4, "hole_prob": 0.25, "describe_neighbors": True},
        max_turns=8,
        rl_val_tasks=64,
    ),
}


def cpu_testbed(env: str, **changes: Any) -> Testbed:
    """The CPU testbed of ``env`` with ``changes`` applied (an unknown name fails naming the known ones)."""
    if env not in TESTBEDS:
        raise ValueError(f"no CPU testbed for env {env!r}; known: {sorted(TESTBEDS)}")
    return dataclasses.replace(TESTBEDS[env], **changes)


def bc_start(workdir: Path, tb: Testbed, timeout: float | None = None) -> Path:
    """The behaviour-cloned model directory ``workdir/bc`` (built unless a finished one is there)."""
    from sampo_verl.bc import run_bc
    from sampo_verl.sft_data import write_sft_splits

    out = workdir / "bc"
    done = out / DONE_FILE
    if is_built(done, _fingerprint(tb)):
        return out
    model = prepare_model(workdir / "init_model", tb.model)
    data = workdir / "sft_data"
    write_sft_splits(
        str(data),
        tb.env,
        tb.bc_episodes,
        tb.bc_val_episodes,
        env_options=tb.env_options,
        max_turns=tb.max_turns,
    )
    run_bc(
        model,
        data,
        out,
        steps=tb.bc_steps,
        lr=tb.bc_lr,
        batch_size=tb.bc_batch_size,
        timeout=timeout,
    )
    mark_built(done, _fingerprint(tb))
    return out


def rl_config(tb: Testbed, method: str, seed: int, steps: int, test_freq: int, **changes: Any) -> AgentRunConfig:
    """The RL run on ``tb``: validation before training, every ``test_freq`` steps and at the end."""
    return AgentRunConfig(
        env=tb.env,
        method=method,
        steps=steps,
        seed=seed,
        max_turns=tb.max_turns,
        env_options=tb.env_options,
        train_tasks=tb.rl_train_tasks,
        val_tasks=tb.rl_val_tasks,
        max_response_length=tb.max_response_length,
        train_batch_size=tb.rl_groups,
        lr=tb.rl_lr,
        temperature=tb.rl_temperature,
        group_size=tb.rl_group_size,
        test_freq=test_freq,
        val_before_train=True,
        **changes,
    )


def _fingerprint(tb: Testbed) -> dict[str, Any]:
    """The settings the behaviour-cloned start depends on (the RL ones may change freely)."""
    return {k: v for k, v in dataclasses.asdict(tb).items() if not k.startswith(("rl_", "max_response"))}
