"""Register verl's FSDP training engines for device ``cpu``.

verl registers ``FSDPEngineWithLMHead`` / ``FSDPEngineWithValueHead`` for ``cuda`` and ``npu``
only; the engines themselves run on CPU with FSDP2 over gloo, they just need a registry entry.
Only the ``fsdp2`` backend is registered: FSDP1 does not run on CPU, and leaving it out makes
``strategy=fsdp`` fail at engine construction with verl's "No engine registered for
device='cpu' ... backend='fsdp'" instead of deep inside FSDP.
"""

from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

CPU_BACKENDS = ["fsdp2"]


def register_fsdp_engines_for_cpu() -> None:
    """Add the ``cpu`` key for both FSDP engines (idempotent)."""
    for model_type, engine_cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        registered = EngineRegistry._engines.get(model_type, {})
        if all("cpu" in registered.get(backend, {}) for backend in CPU_BACKENDS):
            continue
        EngineRegistry.register(model_type=model_type, backend=CPU_BACKENDS, device="cpu")(engine_cls)
