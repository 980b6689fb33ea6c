"""A toy GRPO run of verl's own trainer on CPU: the smoke test of the CPU backend.

Builds the tiny local model (:mod:`sampo_verl.runs.assets`), a toy "say the word" dataset and a
toy reward, and runs ``python -m verl.trainer.main_ppo`` (v1 trainer) with the cpu preset::

    python -m sampo_verl.runs.toy_run WORKDIR [--steps 2] [verl overrides ...]

The trailing overrides go to verl's own config: a key it lacks (the package's ``sampo.*``,
``algorithm.gigpo.*``, ...) needs a leading ``+``. Metrics go to the console and, through verl's
``file`` logger, to ``WORKDIR/metrics.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from sampo_verl.cpu.overrides import cpu_overrides
from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.processes.launch import run_main_ppo

WORDS = ["north", "south", "east", "west", "key", "door", "box", "lamp"]
TOY_MODEL = ModelSize(init_std=0.3)  # peaked, varied outputs from the random model


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """Toy reward: 1 if the target word is in the response, else a byte-sum hash in [0, 0.9]
    (deterministic and varied within a GRPO group, so advantages are non-zero)."""
    if ground_truth in solution_str:
        return 1.0
    return (sum(solution_str.encode()) % 10) / 10


def write_toy_dataset(path: Path, rows: int, seed: int = 0) -> Path:
    """verl RLHF parquet of chat prompts "Say the word W." with ground truth W."""
    import pandas as pd

    records = []
    for i in range(rows):
        word = WORDS[(i * 7 + seed) % len(WORDS)]
        records.append(
            {
                "data_source": "toy_words",
                "prompt": [{"role": "user", "content": f"Say the word {word}."}],
                "ability": "toy",
                "reward_model": {"style": "rule", "ground_truth": word},
                "extra_info": {"index": i},
            }
        )
    pd.DataFrame(records).to_parquet(path)
    return path


def prepare(workdir: Path, model_size: ModelSize = TOY_MODEL) -> Path:
    """Write model, train/val data under ``workdir`` (kept if already there); return the model dir."""
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "model"
    if not (model_dir / "config.json").exists():
        build_assets(model_dir, size=model_size)
    if not (workdir / "train.parquet").exists():
        write_toy_dataset(workdir / "train.parquet", rows=32, seed=0)
        write_toy_dataset(workdir / "val.parquet", rows=8, seed=3)
    return model_dir


def toy_grpo_overrides(workdir: Path, model_dir: Path, total_steps: int, save_freq: int = 2) -> list[str]:
    """cpu preset + a small GRPO config with a reference model (KL loss), checkpoints every ``save_freq`` steps."""
    return [
        *cpu_overrides(),
        "trainer.use_v1=true",
        "algorithm.adv_estimator=grpo",
        f"data.train_files={workdir / 'train.parquet'}",
        f"data.val_files={workdir / 'val.parquet'}",
        "data.train_batch_size=4",
        "data.max_prompt_length=32",
        "data.max_response_length=16",
        f"actor_rollout_ref.model.path={model_dir}",
        "actor_rollout_ref.actor.optim.lr=1e-2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        f"reward.custom_reward_function.path={Path(__file__).resolve()}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        "trainer.project_name=cpu_toy",
        "trainer.experiment_name=grpo",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        f"trainer.save_freq={save_freq}",
        f"trainer.total_training_steps={total_steps}",
        f"trainer.default_local_dir={workdir / 'ckpt'}",
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sampo_verl.runs.toy_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--steps", type=int, default=2)
    args, extra_overrides = parser.parse_known_args(argv)
    workdir = args.workdir.resolve()
    model_dir = prepare(workdir)
    overrides = toy_grpo_overrides(workdir, model_dir, args.steps) + extra_overrides
    run_main_ppo(workdir, overrides, workdir / "metrics.jsonl", capture=False)


if __name__ == "__main__":
    main()
