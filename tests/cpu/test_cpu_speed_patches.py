"""The speed-only CPU patches (sampo_verl.patches.cpu_*): same numbers as verl's own path, only faster."""

import inspect
from types import SimpleNamespace

import pytest
import torch
import verl.utils.tensordict_utils as tu
import verl.utils.torch_functional as verl_F
from sampo_verl.patches import cpu_causal_right_padding, cpu_chunked_logprobs, cpu_response_logits, disabled_patches
from sampo_verl.runs.assets import ModelSize, build_model, build_tokenizer
from tensordict import TensorDict
from transformers.masking_utils import find_packed_sequence_indices
from verl.utils.dataset.dataset_utils import DatasetPadMode
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
from verl.workers.utils.padding import no_padding_2_padding

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
    model = tiny_lm()
    lengths = [5, 23, 17, 1, 23]
    engine = SimpleNamespace(pad_to_length=None)
    verl_inputs, _ = inspect.unwrap(FSDPEngineWithLMHead.prepare_model_inputs)(engine, micro_batch(lengths, 320))
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


def rl_micro_batch(prompt_lens: list[int], response_lens: list[int], vocab: int) -> TensorDict:
    """An RL micro-batch as verl's engine receives it (after ``left_right_2_no_padding``)."""
    batch = micro_batch([p + r for p, r in zip(prompt_lens, response_lens)], vocab)
    width_p, width_r = max(prompt_lens), max(response_lens)
    columns = torch.arange(width_p + width_r)
    prompt_mask = columns[None, :width_p] >= width_p - torch.tensor(prompt_lens)[:, None]  # left-padded prompts
    response_mask = columns[None, :width_r] < torch.tensor(response_lens)[:, None]
    batch["prompts"] = torch.zeros(len(prompt_lens), width_p, dtype=torch.long)
    batch["responses"] = torch.zeros(len(prompt_lens), width_r, dtype=torch.long)
    batch["attention_mask"] = torch.cat([prompt_mask, response_mask], dim=1).long()
    tu.assign_non_tensor(batch, calculate_entropy=True, temperature=0.7)
    return batch


def sft_micro_batch(prompt_lens: list[int], response_lens: list[int], vocab: int) -> TensorDict:
    """An SFT micro-batch: a nested loss mask over whole sequences (0 on the prompt, 1 on the response)."""
    batch = micro_batch([p + r for p, r in zip(prompt_lens, response_lens)], vocab)
    masks = [torch.cat([torch.zeros(p), torch.ones(r)]).long() for p, r in zip(prompt_lens, response_lens)]
    batch["loss_mask"] = torch.nested.as_nested_tensor(masks, layout=torch.jagged)
    return batch


class LMHeadEngine(FSDPEngineWithLMHead):
    """The engine's input/output methods around a bare model (no FSDP, no process group)."""

    def __init__(self, model):
        self.module, self.pad_to_length = model, None
        self.engine_config = SimpleNamespace(entropy_checkpointing=False)


def engine_forward(engine, batch: TensorDict, patched: bool) -> tuple[dict, torch.Size]:
    """prepare_model_inputs -> model -> prepare_model_outputs, with the patches or verl's own methods."""
    inputs_fn, outputs_fn = FSDPEngineWithLMHead.prepare_model_inputs, FSDPEngineWithLMHead.prepare_model_outputs
    if not patched:
        inputs_fn, outputs_fn = inspect.unwrap(inputs_fn), inspect.unwrap(outputs_fn)
    model_inputs, output_args = inputs_fn(engine, batch)
    output = engine.module(**model_inputs, use_cache=False)
    return outputs_fn(engine, output, output_args, batch, None), output.logits.shape


def tiny_lm():
    tokenizer = build_tokenizer(["a b c d e f g"], vocab_size=320)
    model = build_model(tokenizer, ModelSize(hidden=32, init_std=0.3))
    model.config._attn_implementation = "sdpa"
    return model


def test_response_logits_give_verls_log_probs_entropy_and_gradients_where_the_rl_loss_reads():
    model = tiny_lm()
    engine = LMHeadEngine(model)
    prompt_lens, response_lens = [7, 12, 3, 9], [5, 1, 8, 4]
    weights = torch.randn(4, max(response_lens), generator=torch.Generator().manual_seed(2))
    results = []
    for patched in (False, True):
        batch = rl_micro_batch(prompt_lens, response_lens, 320)
        model.zero_grad()
        out, logits_shape = engine_forward(engine, batch, patched)
        log_probs, entropy = (no_padding_2_padding(out[key], batch) for key in ("log_probs", "entropy"))
        ((log_probs + entropy) * weights * batch["attention_mask"][:, -max(response_lens) :]).sum().backward()
        results.append((log_probs.detach(), entropy.detach(), [p.grad.clone() for p in model.parameters()]))
        assert out["log_probs"].is_nested and out["log_probs"].offsets().equal(batch["input_ids"].offsets())
    assert logits_shape == (1, sum(response_lens), 320)  # the LM head ran at the response positions only
    (log_probs, entropy, grads), (got_log_probs, got_entropy, got_grads) = results
    torch.testing.assert_close(got_log_probs, log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_entropy, entropy, rtol=0, atol=1e-5)
    # gradients sum many float32 terms in another order (the tied embedding's, ~2 in size, differed by 1.1e-5
    # once): within 1e-5 relative
    for got, expected in zip(got_grads, grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_response_logits_give_verls_sft_loss_and_gradients():
    model = tiny_lm()
    engine = LMHeadEngine(model)
    results = []
    for patched in (False, True):
        batch = sft_micro_batch([6, 10, 2], [4, 9, 3], 320)
        model.zero_grad()
        out, logits_shape = engine_forward(engine, batch, patched)
        mask = torch.roll(batch["loss_mask"].values(), shifts=-1, dims=0)  # as verl's sft_loss reads it
        loss = -(out["log_probs"].values() * mask).sum()
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert logits_shape == (1, 4 + 9 + 3, 320)
    (loss, grads), (got_loss, got_grads) = results
    torch.testing.assert_close(got_loss, loss, rtol=0, atol=1e-5)
    for got, expected in zip(got_grads, grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_response_logits_keep_verls_path_for_other_forwards(monkeypatch):
    model = tiny_lm()
    engine = LMHeadEngine(model)
    batch = rl_micro_batch([4, 6], [2, 3], 320)
    FSDPEngineWithLMHead.prepare_model_inputs(engine, batch)  # positions handed to the LM head, no forward run
    tu.assign_non_tensor(batch, calculate_sum_pi_squared=True)  # unsupported: verl's path, the stale ones dropped
    _, output_args = FSDPEngineWithLMHead.prepare_model_inputs(engine, batch)
    assert cpu_response_logits.KEEP not in output_args
    assert model(input_ids=torch.zeros(2, 5, dtype=torch.long)).logits.shape == (2, 5, 320)
    monkeypatch.setattr(cpu_response_logits, "get_device_name", lambda: "cuda")
    _, output_args = FSDPEngineWithLMHead.prepare_model_inputs(engine, rl_micro_batch([4, 6], [2, 3], 320))
    assert cpu_response_logits.KEEP not in output_args


def test_read_positions_by_hand():
    rl = rl_micro_batch([3, 2], [2, 1], 320)  # sequences of 5 and 3 tokens, packed at offsets 0 and 5
    assert cpu_response_logits.read_positions(rl).tolist() == [2, 3, 6]
    sft = sft_micro_batch([3, 1], [1, 2], 320)  # masks 0001 | 011 -> shifted left: 0010 | 110 (+ 0 wrapped)
    assert cpu_response_logits.read_positions(sft).tolist() == [2, 4, 5]
    assert cpu_response_logits.read_positions(micro_batch([3, 4], 320)) is None


def test_optional_patches_are_named_and_unknown_names_fail(monkeypatch):
    optional = {"cpu_chunked_logprobs", "cpu_causal_right_padding"}
    monkeypatch.setenv("SAMPO_DISABLE_PATCHES", " cpu_chunked_logprobs ,")
    assert disabled_patches(optional) == {"cpu_chunked_logprobs"}
    monkeypatch.setenv("SAMPO_DISABLE_PATCHES", "cpu_chunked_logprobs,fsdp2_unpinned_cpu_offload")
    with pytest.raises(ValueError, match=r"\['fsdp2_unpinned_cpu_offload'\] are not optional patches"):
        disabled_patches(optional)
