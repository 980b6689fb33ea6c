"""Which platform a process runs on: whether the CPU backend (:mod:`sampo_verl.cpu`) is wanted here.

``VERL_PLATFORM`` decides when set (``cpu``: the CPU backend; anything else: not); otherwise the CPU
backend is for hosts that expose no accelerator device nodes (NVIDIA, AMD ROCm, Huawei Ascend). The
nodes are visible in every process of a host with the driver, CPU-only Ray actors included, so such
an actor on a GPU node keeps verl's own platform and never loads the CPU patches.
"""

from __future__ import annotations

import glob
import os

ACCELERATOR_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/kfd", "/dev/davinci[0-9]*")


def host_has_accelerator_devices() -> bool:
    """Whether the host exposes accelerator device nodes."""
    return any(glob.glob(pattern) for pattern in ACCELERATOR_DEVICE_NODES)


def cpu_platform_in_use() -> bool:
    """Whether this process runs verl on the CPU platform (module docstring)."""
    forced = os.environ.get("VERL_PLATFORM", "").strip().lower()
    return forced == "cpu" if forced else not host_has_accelerator_devices()
