"""Patch ``verl.utils.distributed.initialize_global_process_group`` (the SFT trainer's) for CPU.

``verl.trainer.sft_trainer.run_sft`` starts torch.distributed through this function, which
hard-codes the backend string ``f"cpu:gloo,{device}:{backend}"``. With device ``cpu`` and backend
``gloo`` that is ``"cpu:gloo,cpu:gloo"``, which ``torch.distributed`` rejects ("Duplicate device
type cpu"). Unlike its Ray twin (:mod:`.cpu_process_group_backend`) the function takes no
``backend`` argument, and the string is built from two values the platform provides, so no
registration or config can produce a valid one: on device ``cpu`` the patch initialises the
process group with ``"cpu:gloo"`` and returns what verl's function returns (local rank, rank,
world size from torchrun's environment). Every other device keeps verl's function.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta

import torch.distributed
import verl.utils.distributed as verl_distributed
from verl.utils.device import get_device_name

from ._rebind import rebind

CPU_BACKEND = "cpu:gloo"


def apply() -> None:
    """Install the wrapper (idempotent)."""
    original = verl_distributed.initialize_global_process_group
    if getattr(original, "_sampo_cpu_patch", False):
        return

    @functools.wraps(original)
    def initialize_global_process_group(timeout_second: int = 36000) -> tuple[int, int, int]:
        if get_device_name() != "cpu":
            return original(timeout_second)
        torch.distributed.init_process_group(
            backend=CPU_BACKEND,
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    initialize_global_process_group._sampo_cpu_patch = True
    rebind(verl_distributed, "initialize_global_process_group", initialize_global_process_group)
