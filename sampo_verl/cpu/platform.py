"""The ``cpu`` platform for verl's :class:`~verl.plugin.platform.PlatformRegistry`.

verl asks its platform for the device name, the ``torch.<device>`` namespace, the collective
backend and the Ray resource that workers reserve. On a machine without an accelerator this
platform answers: device ``cpu``, a ``torch.cpu`` namespace completed with the ``torch.cuda``-style
calls verl makes (memory statistics, RNG state, cache control), backend ``gloo``, and Ray resource
``GPU``, which a CPU run declares as logical slots (``ray_init.num_gpus=N``) so that verl's
placement groups work unchanged.

Selection: ``VERL_PLATFORM=cpu`` forces it. Otherwise verl's auto-detection probes the registered
platforms in order and this one reports itself available only when no other registered platform
(CUDA, ROCm, NPU, ...) is, so a machine with an accelerator keeps its own platform.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from sampo_verl import accelerators

PLATFORM_NAME = "cpu"

class CpuDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the ``torch.cuda``-style calls verl makes on ``get_torch_device()``.

    Memory counters report 0 (verl only logs them); ``mem_get_info`` reports host RAM.
    Anything not defined here is looked up on ``torch.cpu`` (streams, events, ``synchronize``).
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def set_device(device: Any) -> None:
        del device

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        del device
        return "cpu"

    @staticmethod
    def empty_cache() -> None:
        pass

    @staticmethod
    def ipc_collect() -> None:
        pass

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        del fraction, device

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        del device
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        del device

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        """(free, total) bytes of host memory."""
        del device
        import psutil

        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        del device
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        del device
        torch.set_rng_state(state)


cpu_device_module = CpuDeviceModule("sampo_verl.cpu.device_module")


@PlatformRegistry.register(platform=PLATFORM_NAME)
class CPUPlatform(PlatformBase):
    """verl platform for hosts without an accelerator (training over gloo, HF rollout)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return cpu_device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        """True only when no other registered platform is available: CPU is the fallback.

        Another platform counts as available if either its host probe (e.g. ``nvidia-smi``)
        or its in-process check (e.g. ``torch.cuda.is_available()``) says so. A host with
        accelerator device nodes is never taken for CPU-only, so a CPU-only Ray actor on a GPU
        host without ``nvidia-smi`` keeps verl's own fallback (``nvidia``).
        """
        if accelerators.host_has_accelerator_devices():
            return False
        for name in PlatformRegistry.registered_names():
            other_cls = PlatformRegistry.get(name)
            if other_cls is None or issubclass(other_cls, CPUPlatform):
                continue
            try:
                other = other_cls()
                if other.is_platform_available(use_smi_check=use_smi_check) or other.is_available():
                    return False
            except Exception:  # a platform whose probe crashes is not available
                continue
        return True

    def current_device(self) -> str:  # type: ignore[override]
        # verl moves tensors with `.to(get_device_id())`; an int would mean cuda:<int>.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        del device_index

    def synchronize(self, device_index: int | None = None) -> None:
        del device_index

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        del settings

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[None, None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        # Logical slots declared with ray.init(num_gpus=N); no device is attached to them.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> None:
        return None


def is_cpu_platform() -> bool:
    """Whether verl runs on this platform in the current process (resolves verl's platform)."""
    from verl.utils.device import get_device_name

    return get_device_name() == "cpu"
