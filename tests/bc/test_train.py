"""Behaviour cloning through verl's own SFT trainer, and the CPU patch it needs."""

import json
import socket
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import verl.utils.distributed as verl_distributed
from omegaconf import OmegaConf
from sampo_verl.patches import cpu_sft_process_group
from transformers import AutoModelForCausalLM, AutoTokenizer
from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

from sampo_verl.runs.assets import ModelSize, build_assets
from sampo_verl.bc.train import SFT_CHECKPOINT_DIR, SFT_CPU_PRESET, SFT_METRICS_FILE, main, sft_overrides
from sampo_verl.bc.sft_data import write_sft_splits

LAKE = {"size": 3, "hole_prob": 0.2}


@pytest.fixture
def single_rank_env(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_unpatched_sft_process_group_is_rejected_on_cpu(single_rank_env):
    with pytest.raises(ValueError, match="Duplicate device type cpu"):
        verl_distributed.initialize_global_process_group.__wrapped__()


def test_patched_sft_process_group_initialises_gloo_on_cpu(single_rank_env):
    assert verl_distributed.initialize_global_process_group() == (0, 0, 1)
    assert dist.get_backend() == "cpu:gloo"
    tensor = torch.ones(2)
    dist.all_reduce(tensor)
    assert tensor.tolist() == [1.0, 1.0]

    patched = verl_distributed.initialize_global_process_group
    cpu_sft_process_group.apply()  # idempotent: no double wrapping
    assert verl_distributed.initialize_global_process_group is patched


def test_sft_process_group_patch_keeps_verls_function_on_other_devices(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_sft_process_group, "get_device_name", lambda: "cuda")
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: calls.append(backend))
    monkeypatch.setattr(verl_distributed, "get_device_name", lambda: "cuda")
    monkeypatch.setattr(verl_distributed, "get_nccl_backend", lambda: "nccl")
    monkeypatch.setattr(verl_distributed, "get_torch_device", lambda: SimpleNamespace(set_device=lambda rank: None))
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    verl_distributed.initialize_global_process_group()
    assert calls == ["cpu:gloo,cuda:nccl"]


def test_overrides_select_the_cpu_preset_steps_and_validation(tmp_path):
    write_sft_splits(str(tmp_path), "frozenlake", episodes=6, val_episodes=2, env_options=LAKE)
    rows = len(pd.read_parquet(tmp_path / "train.parquet"))
    val_rows = len(pd.read_parquet(tmp_path / "val.parquet"))
    cpu = sft_overrides(tmp_path / "m", tmp_path, tmp_path / "out", steps=5, batch_size=2, cpu=True)
    assert cpu[1] == SFT_CPU_PRESET and cpu[0].startswith("hydra.searchpath=[file://")
    assert f"trainer.total_epochs={-(-5 // (rows // 2))}" in cpu and "trainer.total_training_steps=5" in cpu
    assert any(o.startswith("data.val_files=") for o in cpu)
    gpu = sft_overrides(tmp_path / "m", tmp_path, tmp_path / "out", epochs=2, batch_size=val_rows + 1, nproc=8)
    assert not any("preset" in o or "searchpath" in o for o in gpu)  # verl's defaults on accelerators
    assert "trainer.total_epochs=2" in gpu and "trainer.n_gpus_per_node=8" in gpu
    assert not any(o.startswith("data.val_files=") for o in gpu)  # fewer held-out rows than one batch
    with pytest.raises(ValueError, match="fewer than --batch-size"):
        sft_overrides(tmp_path / "m", tmp_path, tmp_path / "out", batch_size=rows + 1)


def response_log_prob(model, item) -> float:
    """Summed log-probability of the trained (response) tokens of one SFT dataset item."""
    input_ids, loss_mask = item["input_ids"], item["loss_mask"]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids[None]).logits[0, :-1].float(), dim=-1)
    token_log_probs = log_probs.gather(-1, input_ids[1:, None])[:, 0]
    return float((token_log_probs * loss_mask[1:]).sum())


def test_bc_lowers_the_sft_loss_and_exports_a_model_rl_can_start_from(tmp_path, capsys):
    model_dir = build_assets(tmp_path / "tiny", size=ModelSize(hidden=64), seed=0)
    data = tmp_path / "data"
    write_sft_splits(str(data), "frozenlake", episodes=24, val_episodes=4, env_options=LAKE)
    out = tmp_path / "bc"
    main(["--model", str(model_dir), "--data", str(data), "--out", str(out), "--steps", "12", "--batch-size", "8",
          "--lr", "3e-3"])  # fmt: skip

    # quiet console: the log file's name and the model folder; verl's config dump and step lines in the log
    printed = capsys.readouterr()
    log_line = f"verl's output (warnings, configs, per-step lines): {out / 'verl.log'}"
    assert printed.out.splitlines() == [log_line, str(out)]
    assert "behaviour cloning: 100%" in printed.err and "train/loss" not in printed.err
    log = (out / "verl.log").read_text()
    assert "step:12 - " in log and "train/loss:" in log

    records = [json.loads(line) for line in (out / SFT_METRICS_FILE).read_text().splitlines()]
    losses = [r["data"]["train/loss"] for r in records if "train/loss" in r["data"]]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < 0.7 * losses[0]
    assert any("val/loss" in r["data"] for r in records)
    assert not (out / SFT_CHECKPOINT_DIR).exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(model_dir).get_vocab()
    trained = AutoModelForCausalLM.from_pretrained(out)
    initial = AutoModelForCausalLM.from_pretrained(model_dir)
    assert trained.dtype == torch.float32
    config = OmegaConf.create({"pad_mode": "no_padding", "max_length": 4096})
    held_out = MultiTurnSFTDataset(str(data / "val.parquet"), tokenizer, config)[0]  # seeds never trained on
    assert response_log_prob(trained, held_out) > response_log_prob(initial, held_out) + 10.0
