"""Patch ``verl.utils.torch_functional.logprobs_from_logits_v2`` for CPU: row chunks, not single rows.

Without flash-attn's cross-entropy (never on CPU), ``logprobs_from_logits`` falls back to
``logprobs_from_logits_v2``, which calls ``torch.logsumexp`` once per row of the packed
``(tokens, vocab)`` logits to bound peak memory. On the CPU testbed that is ~2,400 calls per
micro-batch and ~135k per training step, in the forward and again in the backward: a quarter of the
trainer's time (py-spy). The loop is inside the function, so no config or registry reaches it: the
patch computes the same ``x[label] - logsumexp(x)`` over chunks of rows whose size bounds the chunk
to ``CHUNK_ELEMENTS`` logits (64 MiB of float32), the memory bound the loop was there for. On any
device other than ``cpu``, and for bfloat16/float16 logits (where verl uses ``log_softmax`` for
stability), verl's own function runs.
"""

from __future__ import annotations

import functools

import torch
import verl.utils.torch_functional as verl_F
from verl.utils.device import get_device_name

from ._rebind import rebind

CHUNK_ELEMENTS = 1 << 24  # logits per logsumexp call


def chunked_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits)[labels]`` for float32/float64 ``logits (..., vocab)``, ``labels (...)``."""
    picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
    rows = logits.reshape(-1, logits.shape[-1])
    chunk = max(1, CHUNK_ELEMENTS // rows.shape[-1])
    norms = torch.cat([torch.logsumexp(part, dim=-1) for part in rows.split(chunk)])
    return picked - norms.view(picked.shape)


def apply() -> None:
    """Install the wrapper (idempotent)."""
    original = verl_F.logprobs_from_logits_v2
    if getattr(original, "_sampo_cpu_patch", False):
        return

    @functools.wraps(original)
    def logprobs_from_logits_v2(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.dtype in (torch.float32, torch.float64) and get_device_name() == "cpu":
            return chunked_logprobs(logits, labels)
        return original(logits, labels)

    logprobs_from_logits_v2._sampo_cpu_patch = True
    rebind(verl_F, "logprobs_from_logits_v2", logprobs_from_logits_v2)
