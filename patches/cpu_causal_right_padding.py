"""Patch ``FSDPEngineWithLMHead.prepare_model_inputs`` for CPU: no padding mask for right-padded rows.

Without remove-padding (``use_remove_padding=false``: packed varlen attention needs flash-attn, never
on CPU) the engine pads each micro-batch on the right and passes the padding mask to the model.
With a mask, transformers builds a 4-D float mask and SDPA runs its masked kernel; without one it
calls SDPA with ``is_causal=True``, the fused kernel. For a causal LM fed right-padded rows with
explicit position ids the mask changes nothing a caller reads: a real token only attends to earlier
positions, which are all real, so its logits (and gradients) are those of the masked run; only pad
positions differ, and the engine cuts them off (``torch.nested.narrow``) before log-probs, entropy
and values. transformers reasons the same way for XPU (``masking_utils._can_skip_causal_mask_xpu``).
Sliding windows are unaffected (transformers still builds the window mask from the absent padding
mask). The pad slots' position ids, which verl pads with 0, continue each row's last position
instead: without a mask, transformers reads a drop in the position ids as the start of another packed
sequence (``masking_utils.find_packed_sequence_indices``) and builds a 4-D mask again. Pad positions
only reach pad slots (rotary embeddings are per position), so real tokens see no change. The mask and
the positions are built inside the method, so no config reaches them. The patch acts only on
``cpu``, for text-only inputs with 2-D position ids, and only after checking that every row really is
right-padded.
"""

from __future__ import annotations

import functools

import torch
from verl.utils.device import get_device_name
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

TEXT_INPUTS = {"input_ids", "attention_mask", "position_ids"}


def is_right_padded(mask: torch.Tensor) -> bool:
    """Whether every row of the 2-D 0/1 ``mask`` is ones followed by zeros."""
    lengths = mask.sum(dim=-1, keepdim=True)
    return bool((mask.bool() == (torch.arange(mask.shape[-1], device=mask.device) < lengths)).all())


def drops_mask(model_inputs: dict) -> bool:
    """Whether the padding mask of ``model_inputs`` can go (see the module docstring)."""
    mask = model_inputs.get("attention_mask")
    return (
        get_device_name() == "cpu"
        and set(model_inputs) == TEXT_INPUTS
        and mask is not None
        and mask.dim() == 2
        and model_inputs["position_ids"].dim() == 2
        and is_right_padded(mask)
    )


def continued_positions(position_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``position_ids`` with each row's pad slots numbered on from its last real position."""
    lengths = mask.sum(dim=-1, keepdim=True)
    last = position_ids.gather(-1, (lengths - 1).clamp(min=0))
    continued = last + torch.arange(1, mask.shape[-1] + 1, device=mask.device) - lengths
    return torch.where(mask.bool(), position_ids, continued)


def apply() -> None:
    """Install the wrapper (idempotent)."""
    original = FSDPEngineWithLMHead.prepare_model_inputs
    if getattr(original, "_sampo_cpu_patch", False):
        return

    @functools.wraps(original)
    def prepare_model_inputs(self, micro_batch):
        model_inputs, output_args = original(self, micro_batch)
        if drops_mask(model_inputs):
            mask = model_inputs.pop("attention_mask")
            model_inputs["position_ids"] = continued_positions(model_inputs["position_ids"], mask)
            model_inputs["attention_mask"] = None
        return model_inputs, output_args

    prepare_model_inputs._sampo_cpu_patch = True
    FSDPEngineWithLMHead.prepare_model_inputs = prepare_model_inputs
