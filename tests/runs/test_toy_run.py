"""verl's own trainer (``verl.trainer.main_ppo``, v1) runs GRPO end to end on CPU.

The toy run of :mod:`sampo_verl.runs.toy_run`: two steps with a reference model (KL loss) on the
tiny local Qwen2, the ``hf`` rollout and the cpu preset; then a second command resumes from the
step-2 checkpoint and runs step 3. About 1 minute per command on 2 idle cores.
"""

import pytest
import torch
from safetensors.torch import load_file

from sampo_verl.processes.launch import run_main_ppo
from sampo_verl.runs.toy_run import prepare, toy_grpo_overrides


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cpu_e2e")
    model_dir = prepare(workdir)
    first = run_main_ppo(workdir, toy_grpo_overrides(workdir, model_dir, total_steps=2), workdir / "first.jsonl")
    resumed = run_main_ppo(workdir, toy_grpo_overrides(workdir, model_dir, total_steps=3), workdir / "resumed.jsonl")
    return workdir, model_dir, first, resumed


def step_metrics(history: dict[int, dict]) -> dict[int, dict]:
    return {step: metrics for step, metrics in history.items() if "training/global_step" in metrics}


def test_two_grpo_steps_log_metrics_with_matching_rollout_log_probs(runs):
    _, _, first, _ = runs
    steps = step_metrics(first)
    assert sorted(steps) == [1, 2]
    for metrics in steps.values():
        assert metrics["training/rollout_probs_diff_valid"] == 1
        assert metrics["training/rollout_probs_diff_max"] < 1e-4
        assert metrics["actor/grad_norm"] > 0
        assert "actor/kl_loss" in metrics and "critic/score/mean" in metrics


def test_training_changed_the_weights(runs):
    workdir, model_dir, _, _ = runs
    initial = load_file(model_dir / "model.safetensors")
    shard = workdir / "ckpt" / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt"
    trained = torch.load(shard, map_location="cpu", weights_only=False)
    full = {name: getattr(tensor, "full_tensor", lambda t=tensor: t)() for name, tensor in trained.items()}
    changed = [name for name in initial if name in full and not torch.equal(full[name], initial[name])]
    assert len(changed) > len(initial) // 2


def test_checkpoint_at_step_two_resumes_to_step_three(runs):
    workdir, _, _, resumed = runs
    assert sorted(step_metrics(resumed)) == [3]
    assert (workdir / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "3"
