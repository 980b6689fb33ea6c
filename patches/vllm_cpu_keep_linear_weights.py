"""Keep vLLM's CPU linear weights in place so verl can sync new weights into the engine.

On the CPU platform vLLM's ``UnquantizedLinearMethod.process_weights_after_loading`` packs each
linear layer's weight for oneDNN and then deletes ``layer.weight``
(``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``). verl's weight sync calls the
model's ``load_weights`` with every updated tensor after each training step, and that needs the
``weight`` parameter and its ``weight_loader``: without it the sync fails (``'Parameter' object has
no attribute 'weight_loader'``) and the trainer waits on the engine forever. The call is inside
vLLM's method, which no config reaches, so this patch replaces the method with one that packs and
keeps the weight (``remove_weight=False``, what vLLM already does for embeddings). verl re-runs
``process_weights_after_loading`` after each sync, which packs the new values. Cost: one extra copy
of the linear weights in the engine's memory.

Loaded in every vLLM process (the engine core is a separate process) through the
``vllm.general_plugins`` entry point ``sampo_verl_cpu`` in ``setup.py``; inert on other platforms.
"""

from __future__ import annotations

import torch


def process_weights_keeping_weight(self, layer: torch.nn.Module) -> None:
    """``UnquantizedLinearMethod.process_weights_after_loading`` on CPU, with the weight kept."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    dispatch_cpu_unquantized_gemm(layer, remove_weight=False)


def apply() -> None:
    """Replace the method on vLLM's CPU platform (idempotent; nothing happens elsewhere)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod

    UnquantizedLinearMethod.process_weights_after_loading = process_weights_keeping_weight
