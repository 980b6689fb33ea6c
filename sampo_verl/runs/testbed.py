"""The CPU-scale ARLArena testbed: behaviour cloning first, then RL through ``sampo_verl.main_ppo``.

The ARLArena paper's testbed starts RL from a behaviour-cloned policy. This module holds the small version
that runs on a laptop, shared by the quickstart (one environment, one method) and the arena
(environment x method x seed cells, all from the same behaviour-cloned start):

1. :func:`bc_start`: expert SFT data in the agent loop's prompt format (:mod:`sampo_verl.bc.sft_data`),
   the tiny local model (:mod:`sampo_verl.runs.assets`; its tokenizer trained on that data where the
   testbed says so), behaviour cloning through verl's SFT trainer (:mod:`sampo_verl.bc.train`). Cached: a
   finished start is reused.
2. :func:`rl_config`: the RL run (:mod:`sampo_verl.runs.agent_run`) on the same environment settings,
   validating on held-out seeds before, during and after training (verl's ``val-core/<env>/acc``).
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampo_verl.bc.prompt_loss import PROMPT_LOSS_OVERRIDES
from sampo_verl.bc.sft_data import DEFAULT_THOUGHT, message_texts
from sampo_verl.runs.agent_run import AgentRunConfig, is_built, mark_built
from sampo_verl.runs.assets import ModelSize, build_assets

BC_DONE_FILE = "bc_done.json"  # in the behaviour-cloned model folder, once it is built


@dataclass(frozen=True)
class Testbed:
    """Environment, model, behaviour-cloning and RL settings of one CPU testbed.

    How the values were chosen: ``benchmarks/quickstart_learning.py``.
    """

    env: str
    env_options: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 5
    # init 0.3: better held-out BC success than 0.02; 4 heads of 16, the layout the RL settings were tuned on
    # (vLLM's CPU attention needs heads of >= 32: docs/cpu-backend.md)
    model: ModelSize = ModelSize(hidden=64, heads=4, kv_heads=2, init_std=0.3)
    bc_episodes: int = 150
    bc_val_episodes: int = 16
    bc_steps: int = 150  # optimizer steps; BC needs ~100-150 at batch 16
    bc_lr: float = 1e-3
    bc_batch_size: int = 16
    bc_thought: str = DEFAULT_THOUGHT  # the text inside the cloned turns' <think>
    bc_max_length: int = 1024  # verl's SFT data.max_length: prompt + response tokens of a cloned turn
    bc_last_turn_repeats: int = 1  # rows of an episode's last turn in the cloning data
    bc_overrides: tuple[str, ...] = ()  # more verl SFT overrides (e.g. the learning-rate schedule)
    vocab_size: int = 512
    tokenizer_from_data: bool = False  # BPE trained on the cloning data under Qwen2's split (assets.build_tokenizer)
    rl_train_tasks: int = 512
    rl_val_tasks: int = 32
    rl_groups: int = 4  # episode groups per RL step
    rl_lr: float = 5e-4  # tuning: docs/studies/quickstart-learning.md
    rl_temperature: float = 0.7
    rl_group_size: int = 8  # the testbed's group size
    # the release filters after 15 cold-start steps; a CPU run is about as long as that: filter from step 3
    rl_filter_cold_start_steps: int = 2
    max_response_length: int = 48  # a cloned turn is ~25 tokens; sampled ones run longer
    max_prompt_length: int = 1024


TESTBEDS: dict[str, Testbed] = {
    "sokoban": Testbed(env="sokoban", env_options={"dim_room": [5, 5], "num_boxes": 1, "search_depth": 4}),
    # 4x4 lakes with the neighbour line: the tiny model cannot locate itself in the bare grid
    "frozenlake": Testbed(
        env="frozenlake",
        env_options={"size": 4, "hole_prob": 0.25, "describe_neighbors": True},
        max_turns=8,
        rl_val_tasks=256,  # one standard error ~0.03 (64 tasks: ~0.06, the size of a real change)
    ),
    # gcd/lcm and modular powers, level 1: programs copy the question's numbers; how each value was chosen
    # (cloning with the prompt loss, the answer turn 3 times, the RL learning rate): docs/studies/tir-math.md
    "tir_math": Testbed(
        env="tir_math",
        env_options={"kinds": ["gcd_lcm", "modular"], "difficulty": [1]},
        max_turns=3,
        model=ModelSize(hidden=128, layers=2, heads=4, kv_heads=4, init_std=0.02),
        bc_episodes=2000,
        bc_steps=2000,
        bc_lr=3e-3,
        bc_thought="",
        bc_max_length=512,
        bc_last_turn_repeats=3,
        bc_overrides=(
            *PROMPT_LOSS_OVERRIDES,
            "optim.lr_warmup_steps_ratio=0.05",
            "optim.lr_scheduler_type=cosine",
            "optim.min_lr_ratio=0.1",
            "optim.betas=[0.9,0.98]",
        ),
        vocab_size=1024,
        tokenizer_from_data=True,
        rl_val_tasks=256,
        rl_groups=16,
        rl_lr=1e-4,
        rl_temperature=1.0,
        max_response_length=96,
        max_prompt_length=384,
    ),
    # 300 products, 3 results a page: the expert's episodes take 4-5 turns (search, open, 1-2 options, buy);
    # its prompts are 1200-1500 tokens (two past pages in the history), its turns 30-70
    "webshop": Testbed(
        env="webshop",
        env_options={"num_products": 300, "results_per_page": 3},
        max_turns=8,
        model=ModelSize(hidden=64, heads=4, kv_heads=2, init_std=0.3, max_positions=2048),
        bc_thought="",
        bc_max_length=1664,
        max_response_length=96,
        max_prompt_length=1664,
    ),
}


def cpu_testbed(env: str, **changes: Any) -> Testbed:
    """The CPU testbed of ``env`` with ``changes`` applied (an unknown name fails naming the known ones)."""
    if env not in TESTBEDS:
        raise ValueError(f"no CPU testbed for env {env!r}; known: {sorted(TESTBEDS)}")
    return dataclasses.replace(TESTBEDS[env], **changes)


def bc_start(workdir: Path, tb: Testbed, timeout: float | None = None, log_file: Path | None = None) -> Path:
    """The behaviour-cloned model directory ``workdir/bc`` (built unless a finished one is there);
    verl's SFT output goes to ``log_file`` (None: the console)."""
    from sampo_verl.bc.sft_data import write_sft_splits
    from sampo_verl.bc.train import run_bc

    out = workdir / "bc"
    done = out / BC_DONE_FILE
    if is_built(done, _fingerprint(tb)):
        return out
    data = workdir / "sft_data"
    write_sft_splits(
        str(data),
        tb.env,
        tb.bc_episodes,
        tb.bc_val_episodes,
        env_options=tb.env_options,
        max_turns=tb.max_turns,
        thought=tb.bc_thought,
        last_turn_repeats=tb.bc_last_turn_repeats,
    )
    corpus = message_texts(data / "train.parquet") if tb.tokenizer_from_data else None
    model = workdir / "init_model"
    shutil.rmtree(model, ignore_errors=True)  # built for other settings, if any
    build_assets(model, corpus, tb.vocab_size, tb.model, qwen2_split=tb.tokenizer_from_data)
    run_bc(
        model,
        data,
        out,
        steps=tb.bc_steps,
        lr=tb.bc_lr,
        batch_size=tb.bc_batch_size,
        extra_overrides=[f"data.max_length={tb.bc_max_length}", *tb.bc_overrides],
        timeout=timeout,
        log_file=log_file,
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
        max_prompt_length=tb.max_prompt_length,
        train_batch_size=tb.rl_groups,
        lr=tb.rl_lr,
        temperature=tb.rl_temperature,
        group_size=tb.rl_group_size,
        filter_cold_start_steps=tb.rl_filter_cold_start_steps,
        test_freq=test_freq,
        val_before_train=True,
        **changes,
    )


# fields added after behaviour-cloned starts were first built (and committed, studies/): fingerprinted only
# when they differ from their defaults, so those starts stay valid
_LATER_FIELDS = {
    f.name: f.default
    for f in dataclasses.fields(Testbed)
    if f.name in ("bc_overrides", "vocab_size", "tokenizer_from_data", "bc_last_turn_repeats")
}


def _fingerprint(tb: Testbed) -> dict[str, Any]:
    """The settings the behaviour-cloned start depends on (the RL ones may change freely)."""
    return {
        k: v
        for k, v in dataclasses.asdict(tb).items()
        if not k.startswith(("rl_", "max_response", "max_prompt")) and _LATER_FIELDS.get(k, object()) != v
    }
