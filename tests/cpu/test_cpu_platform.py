"""The cpu platform: registration, auto-selection, device module, engine registration."""

import pytest
import torch
from verl.plugin.platform import PlatformRegistry, platform_cuda, platform_manager
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

from sampo_verl import accelerators
from sampo_verl.cpu.platform import CPUPlatform, cpu_device_module


@pytest.fixture
def no_nvidia_smi(monkeypatch):
    """Make CUDA detection depend on torch.cuda.is_available() alone."""
    monkeypatch.setattr(platform_cuda.shutil, "which", lambda cmd: None)
    monkeypatch.setattr(platform_cuda.os.path, "isfile", lambda path: False)
    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    monkeypatch.setattr(accelerators, "ACCELERATOR_DEVICE_NODES", ())


def test_registered_under_cpu():
    assert PlatformRegistry.get("cpu") is CPUPlatform


def test_selected_when_no_accelerator(monkeypatch, no_nvidia_smi):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert platform_manager._detect_platform_name() == "cpu"


def test_cuda_kept_when_available(monkeypatch, no_nvidia_smi):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not CPUPlatform().is_platform_available(use_smi_check=True)
    assert platform_manager._detect_platform_name() == "nvidia"
    assert platform_manager._create_platform("nvidia").device_name == "cuda"


def test_not_selected_in_cpu_only_actor_of_an_accelerator_host(monkeypatch, no_nvidia_smi, tmp_path):
    # e.g. a Ray actor without GPUs (CUDA_VISIBLE_DEVICES="") on a GPU host lacking nvidia-smi
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "nvidia0").touch()
    monkeypatch.setattr(accelerators, "ACCELERATOR_DEVICE_NODES", (str(tmp_path / "nvidia[0-9]*"),))
    assert platform_manager._detect_platform_name() == "nvidia"  # verl's own fallback, unchanged


def test_verl_platform_env_forces_cpu(monkeypatch, no_nvidia_smi):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    assert platform_manager._detect_platform_name() == "cpu"


def test_platform_answers():
    platform = CPUPlatform()
    assert (platform.device_name, platform.communication_backend_name(), platform.ray_resource_name()) == (
        "cpu",
        "gloo",
        "GPU",
    )
    assert platform.ray_resource_options(2) == {"num_gpus": 2}
    # tensors moved with .to(current_device()) stay on the CPU
    assert torch.ones(1).to(platform.current_device()).device.type == "cpu"


def test_device_module_cuda_style_calls():
    state = cpu_device_module.get_rng_state()
    first = torch.rand(3)
    cpu_device_module.set_rng_state(state)
    assert torch.equal(torch.rand(3), first)
    free, total = cpu_device_module.mem_get_info()
    assert 0 < free <= total
    assert cpu_device_module.memory_allocated() == 0 and cpu_device_module.max_memory_reserved() == 0
    cpu_device_module.empty_cache()
    cpu_device_module.synchronize()  # falls through to torch.cpu
    assert cpu_device_module.is_available() and cpu_device_module.device_count() == 1


def test_fsdp2_engines_registered_for_cpu(monkeypatch):
    monkeypatch.setattr("verl.workers.engine.base.get_device_name", lambda: "cpu")
    monkeypatch.setattr("verl.workers.engine.base.get_vendor", lambda: "cpu")
    assert EngineRegistry.get_engine_cls("language_model", "fsdp2") is FSDPEngineWithLMHead
    assert EngineRegistry.get_engine_cls("value_model", "fsdp2") is FSDPEngineWithValueHead
    with pytest.raises(ValueError, match="device='cpu'"):  # FSDP1 does not run on CPU
        EngineRegistry.get_engine_cls("language_model", "fsdp")
