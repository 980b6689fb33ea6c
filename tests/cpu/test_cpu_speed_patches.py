"""The speed-only CPU patches (sampo_verl.patches.cpu_*): same numbers as verl's own path, only faster."""

from types import SimpleNamespace

import pytest
import torch
import verl.utils.tensordict_utils as tu
import verl.utils.torch_functional as verl_F
from sampo_verl.patches import cpu_causal_right_padding, cpu_chunked_logprobs, disabled_patches
from sampo_verl.runs.assets import ModelSize, build_model, build_tokenizer
from tensordict import TensorDict
from transformers.masking_utils import find_packed_sequence_indices
from verl.utils.dataset.dataset_utils import DatasetPadMode
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

verl_row_loop = verl_F.logprobs_from_logits_v2.__wrapped__  # verl's function before the patch


@pytest.mark.parametrize("shape", [(37, 11), (3, 13, 11)])
def test_chunked_logprobs_equal_verls_row_loop_with_gradients(monkeypatch, shape):
    monkeypatch.setattr(cpu_chunked_logprobs, "CHUNK_ELEMENTS", 50)  # several chunks of 4 rows
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, generator=generator, dtype=torch.float32) * 5
    labels = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    weights = torch.randn(shape[:-1], generator=generator)
    results = []
    for fn in (verl_row_loop, verl_F.logprobs_from_logits):
        x = logits.clone().requires_grad_(True)
        out = fn(x, labels)
        (out * weights).sum().backward()
        results.append((out.detach(), x.grad))
    (expected, expected_grad), (got, got_grad) = results
    assert got.shape == labels.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_grad, expected_grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(got, torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1))


def test_chunked_logprobs_only_on_cpu_and_for_full_precision(monkeypatch):
    def refuse(*args):
        raise AssertionError("the patch ran")

    logits, labels = torch.randn(4, 8), torch.randint(0, 8, (4,))
    monkeypatch.setattr(cpu_chunked_logprobs, "chunked_logprobs", refuse)
    verl_F.logprobs_from_logits_v2(logits.bfloat16(), labels)  # verl's log_softmax path for bf16
    monkeypatch.setattr(cpu_chunked_logprobs, "get_device_name", lambda: "cuda")
    torch.testing.assert_close(verl_F.logprobs_from_logits_v2(logits, labels), verl_row_loop(logits, labels))
    with pytest.raises(AssertionError, match="the patch ran"):
        monkeypatch.setattr(cpu_chunked_logprobs, "get_device_name", lambda: "cpu")
        verl_F.logprobs_from_logits_v2(logits, labels)


def micro_batch(lengths: list[int], vocab: int) -> TensorDict:
    """A micro-batch as verl's engine receives it: nested (jagged) ids and positions, no padding."""
    generator = torch.Generator().manual_seed(1)
    ids = [torch.randint(3, vocab, (n,), generator=generator) for n in lengths]
    batch = TensorDict(
        {
            "input_ids": torch.nested.as_nested_tensor(ids, layout=torch.jagged),
            "position_ids": torch.nested.as_nested_tensor([torch.arange(n) for n in lengths], layout=torch.jagged),
        },
        batch_size=[len(lengths)],
    )
    tu.assign_non_tensor(batch, use_remove_padding=False, pad_mode=DatasetPadMode.NO_PADDING, temperature=1.0)
    return batch


def real_positions_out(model, inputs: dict, lengths: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Log-probs of the next token at the real (unpadded) positions, and the gradients of their sum."""
    model.zero_grad()
    logits = model(**inputs).logits
    log_probs = torch.log_softmax(logits, -1).gather(-1, inputs["input_ids"].roll(-1, 1)[..., None]).squeeze(-1)
    real = torch.arange(logits.shape[1])[None] < torch.tensor(lengths)[:, None]
    log_probs[real].sum().backward()
    return log_probs[real].detach(), [p.grad.clone() for p in model.parameters()]


def test_dropping_the_padding_mask_keeps_log_probs_and_gradients():
    tokenizer = build_tokenizer(["a b c d e f g"], vocab_size=320)
    model = build_model(tokenizer, ModelSize(hidden=32, init_std=0.3))
    model.config._attn_implementation = "sdpa"
    lengths = [5, 23, 17, 1, 23]
    engine = SimpleNamespace(pad_to_length=None)
    verl_inputs, _ = FSDPEngineWithLMHead.prepare_model_inputs.__wrapped__(engine, micro_batch(lengths, 320))
    patched_inputs, _ = FSDPEngineWithLMHead.prepare_model_inputs(engine, micro_batch(lengths, 320))
    assert verl_inputs["attention_mask"] is not None and patched_inputs["attention_mask"] is None
    torch.testing.assert_close(patched_inputs["input_ids"], verl_inputs["input_ids"])
    # transformers sees one sequence per row (no packed-sequence mask): SDPA's causal kernel runs
    assert find_packed_sequence_indices(verl_inputs["position_ids"]) is not None  # verl pads positions with 0
    assert find_packed_sequence_indices(patched_inputs["position_ids"]) is None
    real = verl_inputs["attention_mask"].bool()
    torch.testing.assert_close(patched_inputs["position_ids"][real], verl_inputs["position_ids"][real])

    masked, masked_grads = real_positions_out(model, verl_inputs, lengths)
    unmasked, unmasked_grads = real_positions_out(model, patched_inputs, lengths)
    assert masked.numel() == sum(lengths)
    torch.testing.assert_close(unmasked, masked, rtol=0, atol=1e-5)
    for got, expected in zip(unmasked_grads, masked_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_pad_positions_continue_each_rows_last_position():
    positions = torch.tensor([[0, 1, 0, 0], [0, 1, 2, 3], [5, 6, 7, 0]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]])
    expected = [[0, 1, 2, 3], [0, 1, 2, 3], [5, 6, 7, 8]]
    assert cpu_causal_right_padding.continued_positions(positions, mask).tolist() == expected


def test_the_mask_stays_unless_rows_are_right_padded_text_on_cpu(monkeypatch):
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    text = {"input_ids": torch.zeros(2, 3), "attention_mask": right, "position_ids": torch.zeros(2, 3)}
    assert cpu_causal_right_padding.drops_mask(text)
    assert not cpu_causal_right_padding.drops_mask({**text, "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])})
    assert not cpu_causal_right_padding.drops_mask({**text, "attention_mask": torch.tensor([[1, 0, 1], [1, 1, 1]])})
    assert not cpu_causal_right_padding.drops_mask({**text, "pixel_values": torch.zeros(1)})
    assert not cpu_causal_right_padding.drops_mask({**text, "position_ids": torch.zeros(4, 2, 3)})  # mrope
    assert not cpu_causal_right_padding.drops_mask({**text, "attention_mask": None})
    monkeypatch.setattr(cpu_causal_right_padding, "get_device_name", lambda: "cuda")
    assert not cpu_causal_right_padding.drops_mask(text)


def test_optional_patches_are_named_and_unknown_names_fail(monkeypatch):
    optional = {"cpu_chunked_logprobs", "cpu_causal_right_padding"}
    monkeypatch.setenv("SAMPO_DISABLE_PATCHES", " cpu_chunked_logprobs ,")
    assert disabled_patches(optional) == {"cpu_chunked_logprobs"}
    monkeypatch.setenv("SAMPO_DISABLE_PATCHES", "cpu_chunked_logprobs,fsdp2_unpinned_cpu_offload")
    with pytest.raises(ValueError, match=r"\['fsdp2_unpinned_cpu_offload'\] are not optional patches"):
        disabled_patches(optional)
