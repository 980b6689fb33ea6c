"""The CPU patches of verl (sampo_verl.patches): each fixes its verl function on CPU only."""

import socket

import pytest
import torch
import torch.distributed as dist
import verl.checkpoint_engine.base as checkpoint_engine_base
import verl.utils.distributed as verl_distributed
import verl.workers.engine_workers as engine_workers
from sampo_verl.patches import cpu_process_group_backend, fsdp2_unpinned_cpu_offload
from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard
from verl.workers.engine.fsdp import transformer_impl


@pytest.fixture
def single_rank_env(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_process_group_patch_is_bound_everywhere_verl_imported_it():
    patched = verl_distributed.initialize_global_process_group_ray
    assert patched._sampo_cpu_patch
    assert engine_workers.initialize_global_process_group_ray is patched
    assert checkpoint_engine_base.initialize_global_process_group_ray is patched
    cpu_process_group_backend.apply()  # idempotent: no double wrapping
    assert verl_distributed.initialize_global_process_group_ray is patched


def test_unpatched_default_backend_is_rejected_on_cpu(single_rank_env):
    original = verl_distributed.initialize_global_process_group_ray.__wrapped__
    with pytest.raises(ValueError, match="Duplicate device type cpu"):
        original()


def test_patched_default_backend_initialises_gloo_on_cpu(single_rank_env):
    verl_distributed.initialize_global_process_group_ray()
    assert dist.get_backend() == "cpu:gloo"
    tensor = torch.ones(2)
    dist.all_reduce(tensor)
    assert tensor.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("device", "backend", "expected"),
    [("cpu", None, "cpu:gloo"), ("cpu", "gloo", "gloo"), ("cuda", None, "cpu:gloo,cuda:nccl")],
)
def test_process_group_backend_choice(monkeypatch, device, backend, expected):
    seen = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: seen.setdefault("backend", backend))
    monkeypatch.setattr(cpu_process_group_backend, "get_device_name", lambda: device)
    monkeypatch.setattr(verl_distributed, "get_device_name", lambda: device)
    monkeypatch.setattr(verl_distributed, "get_nccl_backend", lambda: "nccl" if device == "cuda" else "gloo")
    verl_distributed.initialize_global_process_group_ray(backend=backend)
    assert seen["backend"] == expected


def test_offload_policy_unpinned_on_cpu_only(monkeypatch):
    policy = transformer_impl.CPUOffloadPolicy(pin_memory=True)
    assert isinstance(policy, CPUOffloadPolicy) and policy.pin_memory is False
    monkeypatch.setattr(fsdp2_unpinned_cpu_offload, "get_device_name", lambda: "cuda")
    assert transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory is True


def test_ref_style_offload_shards_and_runs_on_cpu(single_rank_env):
    verl_distributed.initialize_global_process_group_ray()
    layer = torch.nn.Linear(4, 3)
    expected = layer(torch.ones(2, 4))
    with pytest.raises(RuntimeError, match="accelerator"):  # what verl's literal pin_memory=True does
        pinned = torch.nn.Linear(4, 3)
        fully_shard(pinned, offload_policy=CPUOffloadPolicy(pin_memory=True))
        pinned(torch.ones(2, 4))
    fully_shard(layer, offload_policy=transformer_impl.CPUOffloadPolicy(pin_memory=True))
    torch.testing.assert_close(layer(torch.ones(2, 4)), expected)
