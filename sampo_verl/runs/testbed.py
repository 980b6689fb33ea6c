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

import yaml

from sampo_verl.bc.sft_data import DEFAULT_THOUGHT, message_texts
from sampo_verl.conf import CONFIG_DIR
from sampo_verl.envs import ENV_REGISTRY
from sampo_verl.options import read_options
from sampo_verl.runs.agent_run import AgentRunConfig, is_built, mark_built
from sampo_verl.runs.assets import ModelSize, build_assets

BC_DONE_FILE = "bc_done.json"  # in the behaviour-cloned model folder, once it is built
TESTBED_DIR = CONFIG_DIR / "testbed"


@dataclass(frozen=True)
class Testbed:
    """Environment, model, behaviour-cloning and RL settings of one CPU testbed: these defaults, and
    what ``sampo_verl/conf/testbed/<env>.yaml`` changes (:func:`load_testbed`).

    How the values were chosen: ``benchmarks/quickstart_learning.py``, docs/studies/.
    """

    env: str
    env_options: dict[str, Any] = field(default_factory=dict)
    max_turns: int = 5
    # init 0.3: better held-out BC success than 0.02; 4 heads of 32 at width 64 (Qwen3: a head size apart
    # from the width), the smallest heads vLLM's CPU attention serves (docs/studies/quickstart-learning.md)
    model: ModelSize = ModelSize(hidden=64, heads=4, kv_heads=2, head_dim=32, init_std=0.3)
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
    rl_lr: float = 1.5e-4  # tuning: docs/studies/quickstart-learning.md
    rl_temperature: float = 0.7
    rl_group_size: int = 8  # the testbed's group size
    # the release filters after 15 cold-start steps; a CPU run is about as long as that: filter from step 3
    rl_filter_cold_start_steps: int = 2
    max_response_length: int = 48  # a cloned turn is ~25 tokens; sampled ones run longer
    max_prompt_length: int = 1024


def _file_values(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A testbed file's values over those of the testbed it names as ``base`` (a file beside it, whose
    environment it keeps unless it names one), if any."""
    values = dict(yaml.safe_load(path.read_text()) or {})
    if "base" not in values:
        return values
    base = path.with_name(f"{values.pop('base')}.yaml")
    if base in (*seen, path) or not base.is_file():
        raise ValueError(f"testbed ({path}): base {base.stem!r} is {'a cycle' if base.is_file() else 'not a testbed'}")
    return {"env": base.stem, **_file_values(base, (*seen, path)), **values}


def load_testbed(path: Path) -> Testbed:
    """The testbed a ``conf/testbed/<name>.yaml`` file describes: the :class:`Testbed` defaults with the
    file's values (``model`` a :class:`ModelSize`'s; ``env`` the environment, default ``<name>``, so that
    one environment can have several testbeds; ``base: <testbed>`` starts from that testbed's file instead);
    an unknown or misspelt key fails naming the file."""
    values = {"env": path.stem, **_file_values(path)}
    prefix = f"testbed ({path})"
    if values["env"] not in ENV_REGISTRY:
        raise ValueError(f"{prefix}: env {values['env']!r} is not an environment; known: {sorted(ENV_REGISTRY)}")
    if "model" in values:
        values["model"] = read_options(ModelSize, values["model"], f"{prefix} model")
    if "bc_overrides" in values:
        values["bc_overrides"] = tuple(values["bc_overrides"])
    return read_options(Testbed, values, prefix)


# the CPU testbeds by name, one file each (sampo_verl/conf/testbed/<name>.yaml)
TESTBEDS: dict[str, Testbed] = {path.stem: load_testbed(path) for path in sorted(TESTBED_DIR.glob("*.yaml"))}


def cpu_testbed(name: str, **changes: Any) -> Testbed:
    """The CPU testbed ``name`` with ``changes`` applied (an unknown name fails naming the known ones)."""
    if name not in TESTBEDS:
        raise ValueError(f"no CPU testbed {name!r}; known: {sorted(TESTBEDS)}")
    return dataclasses.replace(TESTBEDS[name], **changes)


def bc_start(
    workdir: Path,
    tb: Testbed,
    timeout: float | None = None,
    log_file: Path | None = None,
) -> Path:
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


_LATER_MODEL_FIELDS = {"head_dim": None}


def _fingerprint(tb: Testbed) -> dict[str, Any]:
    """The settings the behaviour-cloned start depends on (the RL ones may change freely)."""
    settings = {
        k: v
        for k, v in dataclasses.asdict(tb).items()
        if not k.startswith(("rl_", "max_response", "max_prompt")) and _LATER_FIELDS.get(k, object()) != v
    }
    settings["model"] = {k: v for k, v in settings["model"].items() if _LATER_MODEL_FIELDS.get(k, object()) != v}
    return settings
