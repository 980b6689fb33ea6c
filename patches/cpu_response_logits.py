"""Patch ``FSDPEngineWithLMHead`` for CPU: the LM head only at the positions whose log-probs a loss reads.

verl's engine computes logits, temperature scaling, log-probs and entropy at every position of every
sequence (``prepare_model_outputs``) and the losses then read a slice: the RL losses the response
(``no_padding_2_padding``: ``[seq_len - response_len - 1, seq_len - 1)`` of each row), the SFT loss the
positions its shifted ``loss_mask`` marks. On the CPU testbed a response is ~10% of its sequence, so
the ``(positions, vocab)`` work (the LM head's matmuls, log-softmax, entropy and their backward) is
mostly spent on prompt positions nobody reads: ~40% of the update's backward (py-spy). The positions
are known only inside the engine's ``forward_step`` and the logits are made inside the model's
forward, so no config or registry reaches them. The patch:

1. ``prepare_model_inputs``: finds the read positions of the micro-batch (:func:`read_positions`) and
   hands them to a forward pre-hook on the model's output embedding, which feeds the LM head only the
   hidden states at those positions (``(1, n, hidden)`` instead of ``(rows, length, hidden)``);
2. ``prepare_model_outputs``: log-probs and entropy of those ``n`` logits, scattered into verl's
   full-length nested layout (zeros at the positions no loss reads).

Values and gradients at the read positions equal verl's (the same hidden states, the same functions
per position). It acts only on ``cpu``, for the padded path (``use_remove_padding=false``), without
fused kernels, distillation or ``sum_pi_squared``; the value-head engine keeps verl's path.
"""

from __future__ import annotations

import functools

import torch
import verl.utils.tensordict_utils as tu
import verl.utils.torch_functional as verl_F
from tensordict import TensorDict
from verl.utils.device import get_device_name
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, _scale_logits_by_temperature

KEEP = "_sampo_read_positions"  # output_args key ((flat, rows)) and LM head attribute ((rows, cols)) during a forward
UNSUPPORTED_FLAGS = ("use_remove_padding", "use_fused_kernels", "distillation_use_topk", "calculate_sum_pi_squared")


def read_positions(micro_batch: TensorDict) -> torch.Tensor | None:
    """Flat indices (into the packed ``input_ids.values()``) of the positions whose log-probs the loss
    reads, or None when the micro-batch is neither an RL one (``prompts``/``responses``) nor an SFT one
    (a nested ``loss_mask`` over whole sequences)."""
    input_ids = micro_batch["input_ids"]
    offsets = input_ids.offsets()
    seq_lens = offsets.diff()
    if "prompts" in micro_batch.keys() and "responses" in micro_batch.keys():
        prompts, responses = micro_batch["prompts"], micro_batch["responses"]
        if responses.is_nested:
            response_lens = responses.offsets().diff()
        else:  # the same lengths as no_padding_2_padding reads
            response_lens = micro_batch["attention_mask"][:, prompts.shape[1] :].sum(dim=1)
        response_lens = response_lens.to(seq_lens)
        starts = offsets[:-1] + seq_lens - response_lens - 1
        rows = torch.repeat_interleave(torch.arange(len(seq_lens)), response_lens)
        first = torch.repeat_interleave(response_lens.cumsum(0) - response_lens, response_lens)
        return starts[rows] + torch.arange(int(response_lens.sum())) - first
    loss_mask = micro_batch.get("loss_mask", None)
    if loss_mask is not None and loss_mask.is_nested and torch.equal(loss_mask.offsets(), offsets):
        # sft_loss shifts the packed mask left by one token, across row boundaries as verl does
        return torch.roll(loss_mask.values(), shifts=-1, dims=0).nonzero().squeeze(-1)
    return None


def _keep_hidden(lm_head: torch.nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook: the hidden states at the read positions only (once per forward)."""
    keep = lm_head.__dict__.pop(KEEP, None)
    if keep is None:
        return None
    rows, cols = keep
    return (args[0][rows, cols].unsqueeze(0), *args[1:])


def lm_head(engine) -> torch.nn.Module | None:
    """The engine's LM head with the pre-hook installed, or None (not an LM-head engine on cpu)."""
    module = getattr(engine, "module", None)
    if get_device_name() != "cpu" or not hasattr(module, "get_output_embeddings"):
        return None
    if not getattr(getattr(type(engine), "prepare_model_outputs", None), "_sampo_cpu_patch", False):
        return None  # e.g. the value-head engine: its own outputs
    head = module.get_output_embeddings()
    if head is not None and not getattr(head, "_sampo_keep_hook", False):
        head.register_forward_pre_hook(_keep_hidden)
        head._sampo_keep_hook = True
    return head


def applies(micro_batch: TensorDict, output_args: dict) -> bool:
    """Whether this forward can take the read-positions path (see the module docstring)."""
    return "temperature" in output_args and not any(  # "temperature": the padded path's outputs
        tu.get_non_tensor_data(data=micro_batch, key=flag, default=False) for flag in UNSUPPORTED_FLAGS
    )


def outputs_at(engine, logits: torch.Tensor, output_args: dict, micro_batch: TensorDict) -> dict:
    """verl's ``model_output`` (nested full-length log-probs, entropy) from the logits at the read positions
    (``flat`` packed indices, in ``rows``)."""
    flat, rows = output_args[KEEP]
    offsets = micro_batch["input_ids"].offsets()
    temperature = output_args["temperature"][rows].unsqueeze(-1)
    logits = _scale_logits_by_temperature(
        logits, temperature, is_unit_temperature=output_args.get("temperature_is_one", False)
    )
    labels = output_args["input_ids_rmpad_rolled"][flat]
    total = int(offsets[-1])

    def full_length(values: torch.Tensor) -> torch.Tensor:
        packed = values.new_zeros(total).index_put((flat,), values)
        return torch.nested.nested_tensor_from_jagged(packed, offsets)

    model_output = {"log_probs": full_length(verl_F.logprobs_from_logits(logits=logits, labels=labels))}
    if tu.get_non_tensor_data(data=micro_batch, key="calculate_entropy", default=False):
        if engine.engine_config.entropy_checkpointing:
            entropy = torch.utils.checkpoint.checkpoint(verl_F.entropy_from_logits, logits, use_reentrant=False)
        else:
            entropy = verl_F.entropy_from_logits(logits)
        model_output["entropy"] = full_length(entropy)
    return model_output


def apply() -> None:
    """Install both wrappers (idempotent)."""
    original_inputs = FSDPEngineWithLMHead.prepare_model_inputs
    original_outputs = FSDPEngineWithLMHead.prepare_model_outputs
    if getattr(original_outputs, "_sampo_cpu_patch", False):
        return

    @functools.wraps(original_inputs)
    def prepare_model_inputs(self, micro_batch):
        model_inputs, output_args = original_inputs(self, micro_batch)
        head = lm_head(self)
        if head is None:
            return model_inputs, output_args
        head.__dict__.pop(KEEP, None)  # a forward that never ran must not leave its positions behind
        flat = read_positions(micro_batch) if applies(micro_batch, output_args) else None
        if flat is not None:
            offsets = micro_batch["input_ids"].offsets()
            rows = torch.searchsorted(offsets[1:], flat, right=True)
            head.__dict__[KEEP] = (rows, flat - offsets[rows])
            output_args[KEEP] = (flat, rows)
        return model_inputs, output_args

    @functools.wraps(original_outputs)
    def prepare_model_outputs(self, output, output_args, micro_batch, logits_processor_func):
        if KEEP not in output_args:
            return original_outputs(self, output, output_args, micro_batch, logits_processor_func)
        return outputs_at(self, output.logits.squeeze(0), output_args, micro_batch)

    prepare_model_outputs._sampo_cpu_patch = True
    FSDPEngineWithLMHead.prepare_model_inputs = prepare_model_inputs
    FSDPEngineWithLMHead.prepare_model_outputs = prepare_model_outputs
