"""verl's own trainer (``verl.trainer.main_ppo``, v1) runs GRPO end to end on CPU.

Two steps with a reference model (KL loss) on the tiny local Qwen2, the ``hf`` rollout and the
cpu preset; then a second command resumes from the step-2 checkpoint and runs step 3.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from sampo_verl.cpu import cpu_overrides

TOY_REWARD = Path(__file__).with_name("toy_reward.py")
WORDS = ["north", "south", "east", "west", "key", "door", "box", "lamp"]


def write_dataset(path: Path, rows: int, seed: int) -> None:
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


def run_trainer(workdir: Path, model_dir: Path, total_steps: int, log_name: str) -> list[dict]:
    """Run verl's main_ppo and return the records of its file logger."""
    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_MODULES": "sampo_verl",
        "VERL_FILE_LOGGER_PATH": str(workdir / log_name),
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_DEDUP_LOGS": "0",
    }
    if torch.cuda.is_available():  # on a GPU host, still test the CPU backend
        env["VERL_PLATFORM"] = "cpu"
    overrides = [
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
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=16",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16",
        "actor_rollout_ref.rollout.n=4",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16",
        f"reward.custom_reward_function.path={TOY_REWARD}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        "trainer.project_name=cpu_e2e",
        "trainer.experiment_name=grpo",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=2",
        f"trainer.total_training_steps={total_steps}",
        f"trainer.default_local_dir={workdir / 'ckpt'}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    return [json.loads(line) for line in (workdir / log_name).read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cpu_e2e")
    write_dataset(workdir / "train.parquet", rows=32, seed=0)
    write_dataset(workdir / "val.parquet", rows=8, seed=3)
    first = run_trainer(workdir, tiny_model_dir, total_steps=2, log_name="first.jsonl")
    resumed = run_trainer(workdir, tiny_model_dir, total_steps=3, log_name="resumed.jsonl")
    return workdir, first, resumed


def step_metrics(records: list[dict]) -> dict[int, dict]:
    return {record["step"]: record["data"] for record in records if "training/global_step" in record["data"]}


def test_two_grpo_steps_log_metrics_with_matching_rollout_log_probs(runs):
    _, first, _ = runs
    steps = step_metrics(first)
    assert sorted(steps) == [1, 2]
    for metrics in steps.values():
        assert metrics["training/rollout_probs_diff_valid"] == 1
        assert metrics["training/rollout_probs_diff_max"] < 1e-4
        assert metrics["actor/grad_norm"] > 0
        assert "actor/kl_loss" in metrics and "critic/score/mean" in metrics


def test_training_changed_the_weights(runs, tiny_model_dir):
    workdir, _, _ = runs
    initial = load_file(tiny_model_dir / "model.safetensors")
    shards = list((workdir / "ckpt" / "global_step_2" / "actor").glob("model_world_size_1_rank_0.pt"))
    assert shards, sorted(p.name for p in (workdir / "ckpt" / "global_step_2" / "actor").iterdir())
    trained = torch.load(shards[0], map_location="cpu", weights_only=False)
    changed = [
        name
        for name, tensor in trained.items()
        if name in initial and not torch.equal(getattr(tensor, "full_tensor", lambda: tensor)(), initial[name])
    ]
    assert len(changed) > len(initial) // 2


def test_checkpoint_at_step_two_resumes_to_step_three(runs):
    workdir, _, resumed = runs
    assert sorted(step_metrics(resumed)) == [3]
    assert (workdir / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
