"""Patch the ``CPUOffloadPolicy`` used by ``verl.workers.engine.fsdp.transformer_impl``.

``FSDPEngine._build_fsdp_module`` (FSDP2 branch) hard-codes ``CPUOffloadPolicy(pin_memory=True)``
for the reference / forward-only engine and for ``offload_policy=True``. Pinned memory needs an
accelerator runtime, so on a CPU-only host building the ref model fails. The value is a literal
in the engine's method, so neither the config nor a registry can change it: the patch replaces
the module's ``CPUOffloadPolicy`` with a subclass that turns ``pin_memory`` off when verl's device
is ``cpu``. It stays a ``CPUOffloadPolicy`` (isinstance checks in FSDP hold), and on any other
device it is the original policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.distributed.fsdp import CPUOffloadPolicy
from verl.utils.device import get_device_name
from verl.workers.engine.fsdp import transformer_impl


@dataclass
class CPUSafeOffloadPolicy(CPUOffloadPolicy):
    """``CPUOffloadPolicy`` that never pins memory when verl runs on the CPU platform."""

    def __post_init__(self) -> None:
        if get_device_name() == "cpu":
            self.pin_memory = False


def apply() -> None:
    """Point the engine module at :class:`CPUSafeOffloadPolicy` (idempotent)."""
    transformer_impl.CPUOffloadPolicy = CPUSafeOffloadPolicy
