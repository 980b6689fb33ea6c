"""Patch ``verl.utils.distributed.initialize_global_process_group_ray`` for CPU.

verl builds the default backend string ``f"cpu:gloo,{device}:{backend}"``. With device ``cpu``
and backend ``gloo`` that is ``"cpu:gloo,cpu:gloo"``, which ``torch.distributed`` rejects
("Duplicate device type cpu"). The string is assembled inside the function from two values
the platform provides, so no registration can produce a valid one: the patch passes
``backend="cpu:gloo"`` when the caller gave none and verl's device is ``cpu``. Callers that
pass a backend, and every non-CPU device, keep verl's behaviour.
"""

from __future__ import annotations

import functools

import verl.utils.distributed as verl_distributed
from verl.utils.device import get_device_name

from ._rebind import rebind

CPU_BACKEND = "cpu:gloo"


def apply() -> None:
    """Install the wrapper (idempotent)."""
    original = verl_distributed.initialize_global_process_group_ray
    if getattr(original, "_sampo_cpu_patch", False):
        return

    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        if backend is None and get_device_name() == "cpu":
            backend = CPU_BACKEND
        return original(timeout_second=timeout_second, backend=backend)

    initialize_global_process_group_ray._sampo_cpu_patch = True
    rebind(verl_distributed, "initialize_global_process_group_ray", initialize_global_process_group_ray)
