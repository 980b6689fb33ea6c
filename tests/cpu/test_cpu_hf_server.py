"""The hf rollout engine and server: sampling parameters, EOS, log-probs, batching, weights."""

import asyncio
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from sampo_verl.cpu.hf_rollout import HFServerAdapter
from sampo_verl.cpu.hf_server import HFGenerator, HFServer, SamplingConfig, load_generator, sample_tokens

PROMPTS = [[1, 40, 41, 42, 2, 1, 43], [1, 50, 2], [1, 60, 61, 62, 63, 64, 65, 66, 2, 1]]


def rollout_config(**overrides):
    fields = dict(prompt_length=16, response_length=8, max_model_len=None, dtype="float32", seed=0, max_num_seqs=64)
    return SimpleNamespace(**{**fields, **overrides})


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return load_generator(SimpleNamespace(path=str(tiny_model_dir)), dtype="float32", seed=0)


def greedy(max_tokens=8, **kwargs):
    return SamplingConfig(max_tokens=max_tokens, temperature=0.0, logprobs=True, **kwargs)


def manual_greedy(model, prompt, steps):
    """Reference: full forward pass (no cache, no padding) at every step."""
    ids = list(prompt)
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ids.append(int(logits.argmax()))
    return ids[len(prompt) :]


# ---- sampling ------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 3.0))
def test_top_k_one_equals_greedy(seed, temperature):
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(seed))
    rows = logits.shape[0]
    tokens, _ = sample_tokens(
        logits, torch.full((rows,), temperature), torch.ones(rows, dtype=torch.long), torch.ones(rows)
    )
    greedy_tokens, _ = sample_tokens(logits, torch.zeros(rows), torch.full((rows,), -1), torch.ones(rows))
    assert torch.equal(tokens, logits.argmax(-1)) and torch.equal(greedy_tokens, logits.argmax(-1))


def test_log_probs_are_temperature_scaled_full_vocab():
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(1))
    temperature = torch.tensor([0.0, 0.5, 1.0, 2.0])
    tokens, log_probs = sample_tokens(
        logits, temperature, torch.tensor([-1, 5, -1, 3]), torch.tensor([1.0, 1.0, 0.7, 1.0])
    )
    scale = torch.tensor([1.0, 0.5, 1.0, 2.0])[:, None]
    expected = torch.log_softmax(logits / scale, -1).gather(-1, tokens[:, None]).squeeze(-1)
    torch.testing.assert_close(log_probs, expected)


def test_temperatures_that_would_overflow_are_greedy_and_finite():
    logits = torch.randn(3, 30, generator=torch.Generator().manual_seed(2)) * 50
    ones = torch.ones(3)
    for tiny in (1e-40, 1e-6):
        tokens, log_probs = sample_tokens(logits, torch.full((3,), tiny), torch.full((3,), -1), ones)
        assert torch.equal(tokens, logits.argmax(-1)) and torch.isfinite(log_probs).all()
    assert sample_tokens(logits, torch.full((3,), 2e-5), torch.full((3,), -1), ones)[1].isfinite().all()


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(4000, 1)
    rows = logits.shape[0]
    rng = torch.Generator().manual_seed(0)
    ones = torch.ones(rows)
    top2, _ = sample_tokens(logits, ones, torch.full((rows,), 2), ones, rng)
    assert set(top2.tolist()) == {0, 1}
    # probabilities 0.64, 0.24, 0.09, ...: top_p=0.8 keeps {0, 1} (mass before token 2 is 0.88)
    nucleus, _ = sample_tokens(logits, ones, torch.full((rows,), -1), torch.full((rows,), 0.8), rng)
    assert set(nucleus.tolist()) == {0, 1}
    free, _ = sample_tokens(logits, ones, torch.full((rows,), -1), ones, rng)
    assert set(free.tolist()) == {0, 1, 2, 3, 4}
    # sampled frequencies follow softmax(logits / T)
    hot, _ = sample_tokens(logits, torch.full((rows,), 2.0), torch.full((rows,), -1), ones, rng)
    frequency = torch.bincount(hot, minlength=5).float() / rows
    torch.testing.assert_close(frequency, torch.softmax(logits[0] / 2.0, -1), atol=0.03, rtol=0)


def test_sampling_config_budget_and_validation():
    common = dict(prompt_length=16, response_length=8, max_model_len=24)
    assert SamplingConfig.from_request({}, prompt_len=10, **common).max_tokens == 8
    assert SamplingConfig.from_request({}, prompt_len=20, **common).max_tokens == 4  # prompt + response budget
    assert SamplingConfig.from_request({"max_tokens": 50}, prompt_len=20, **common).max_tokens == 4  # model length
    assert SamplingConfig.from_request({"max_new_tokens": 3}, prompt_len=5, **common).max_tokens == 3
    with pytest.raises(ValueError, match="unsupported sampling_params.*'seed'"):
        SamplingConfig.from_request({"seed": 1}, prompt_len=5, **common)
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplingConfig.from_request({"repetition_penalty": 1.1}, prompt_len=5, **common)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig.from_request({"top_p": 0.0}, prompt_len=5, **common)
    with pytest.raises(ValueError, match="max_model_len"):
        SamplingConfig.from_request({}, prompt_len=24, **common)


# ---- generation ----------------------------------------------------------------------------


def test_greedy_batch_matches_unbatched_full_forward(generator):
    results = generator.generate(PROMPTS, [greedy(ignore_eos=True)] * len(PROMPTS))
    with torch.no_grad():
        for prompt, result in zip(PROMPTS, results, strict=True):
            assert result.token_ids == manual_greedy(generator.model, prompt, 8)
            assert result.finish_reason == "length"


def test_log_probs_equal_a_direct_forward_pass(generator):
    configs = [SamplingConfig(max_tokens=8, temperature=t, logprobs=True, ignore_eos=True) for t in (1.0, 0.7, 1.3)]
    results = generator.generate(PROMPTS, configs)
    with torch.no_grad():
        for prompt, config, result in zip(PROMPTS, configs, results, strict=True):
            sequence = torch.tensor([prompt + result.token_ids])
            logits = generator.model(input_ids=sequence).logits[0, len(prompt) - 1 : -1] / config.temperature
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(result.token_ids)[:, None]).squeeze(-1)
            torch.testing.assert_close(torch.tensor(result.log_probs), expected, atol=1e-5, rtol=0)


def test_eos_stops_generation_unless_ignored(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        free_run = manual_greedy(model, PROMPTS[2], 8)
    # declare as EOS the first token of the free run that differs from the first one
    stop_at = next(i for i, token in enumerate(free_run) if token != free_run[0])
    stopping = HFGenerator(model, eos_token_ids={free_run[stop_at]}, pad_token_id=0)
    stopped, ignored = stopping.generate([PROMPTS[2]] * 2, [greedy(), greedy(ignore_eos=True)])
    assert stopped.token_ids == free_run[: stop_at + 1] and stopped.finish_reason == "stop"
    assert ignored.token_ids == free_run and ignored.finish_reason == "length"


def test_max_tokens_per_row_and_logprobs_only_when_asked(generator):
    configs = [greedy(max_tokens=2, ignore_eos=True), SamplingConfig(max_tokens=5, temperature=0.0, ignore_eos=True)]
    short, long = generator.generate(PROMPTS[:2], configs)
    assert len(short.token_ids) == 2 and len(short.log_probs) == 2
    assert len(long.token_ids) == 5 and long.log_probs is None


def test_seeded_sampling_is_reproducible(tiny_model_dir):
    config = [SamplingConfig(max_tokens=8, temperature=1.0, ignore_eos=True)] * 3
    first = load_generator(SimpleNamespace(path=str(tiny_model_dir)), "float32", seed=7).generate(PROMPTS, config)
    again = load_generator(SimpleNamespace(path=str(tiny_model_dir)), "float32", seed=7).generate(PROMPTS, config)
    assert [r.token_ids for r in first] == [r.token_ids for r in again]


# ---- server --------------------------------------------------------------------------------


def make_server(tiny_model_dir):
    return HFServer(rollout_config(), SimpleNamespace(path=str(tiny_model_dir)), replica_rank=0)


def test_concurrent_requests_are_batched_and_match_sequential(tiny_model_dir):
    server = make_server(tiny_model_dir)
    batch_sizes = []
    run_batch = server.engine.generate

    def counting(prompts, configs):
        batch_sizes.append(len(prompts))
        return run_batch(prompts, configs)

    server.engine.generate = counting
    params = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": True, "repetition_penalty": 1.0}

    async def run():
        concurrent = await asyncio.gather(
            *[server.generate(p, dict(params), request_id=str(i)) for i, p in enumerate(PROMPTS * 4)]
        )
        sequential = [await server.generate(p, dict(params), request_id="s") for p in PROMPTS]
        return concurrent, sequential

    concurrent, sequential = asyncio.run(run())
    assert sum(batch_sizes[:-3]) == 12 and max(batch_sizes) > 1  # the 12 concurrent ones shared batches
    assert [o.token_ids for o in concurrent] == [o.token_ids for o in sequential] * 4
    for batched, alone in zip(concurrent, sequential * 4, strict=True):
        torch.testing.assert_close(torch.tensor(batched.log_probs), torch.tensor(alone.log_probs), atol=1e-5, rtol=0)
    assert concurrent[0].stop_reason == "completed" and len(concurrent[0].token_ids) <= 8


def test_requests_arriving_a_few_ms_apart_share_one_batch(tiny_model_dir):
    """An agent loop's turn arrives request by request as its environments step; it is one batch, not 1 + rest."""
    server = make_server(tiny_model_dir)
    batch_sizes = []
    run_batch = server.engine.generate
    server.engine.generate = lambda prompts, configs: batch_sizes.append(len(prompts)) or run_batch(prompts, configs)
    params = {"temperature": 0, "max_tokens": 4}

    async def staggered(i, prompt, gap_s):
        await asyncio.sleep(i * gap_s)
        return await server.generate(prompt, dict(params), request_id=str(i))

    async def run(gap_s):
        return await asyncio.gather(*[staggered(i, p, gap_s) for i, p in enumerate(PROMPTS * 3)])

    server.GATHER_IDLE_S, server.GATHER_MAX_S = 0.2, 1.0  # margins for a loaded machine
    asyncio.run(run(gap_s=0.01))  # 80 ms from first to last, each well within GATHER_IDLE_S of the previous
    assert batch_sizes == [9]
    batch_sizes.clear()
    server.GATHER_IDLE_S = 0.02
    asyncio.run(run(gap_s=0.1))  # spread out: served as they come
    assert len(batch_sizes) > 1 and sum(batch_sizes) == 9


def test_weight_update_changes_generation(tiny_model_dir):
    server = make_server(tiny_model_dir)
    state = {
        name: torch.randn_like(t) for name, t in server.engine.model.state_dict().items() if name != "lm_head.weight"
    }
    assert server.update_weights(state, global_steps=3) == len(state)
    torch.testing.assert_close(server.engine.model.model.embed_tokens.weight, state["model.embed_tokens.weight"])
    output = asyncio.run(server.generate(PROMPTS[0], {"temperature": 0, "logprobs": True}, request_id="w"))
    assert output.extra_fields["global_steps"] == 3
    with torch.no_grad():
        assert output.token_ids[:2] == manual_greedy(server.engine.model, PROMPTS[0], 2)[: len(output.token_ids[:2])]
    with pytest.raises(KeyError, match="not in the rollout model"):
        server.update_weights({"bogus.weight": torch.zeros(1)})


def test_adapter_forwards_full_state_dict_and_rejects_other_formats():
    received = {}

    class FakeServer:
        class update_weights:  # noqa: N801  (mimics a Ray actor method)
            @staticmethod
            async def remote(state_dict, global_steps):
                received.update(state_dict=state_dict, global_steps=global_steps)

    config = SimpleNamespace(tensor_model_parallel_size=1, data_parallel_size=1, pipeline_model_parallel_size=1)
    adapter = HFServerAdapter.__new__(HFServerAdapter)
    adapter.config, adapter.replica_rank, adapter._server = config, 0, FakeServer()
    weights = [("a", torch.ones(2)), ("b", torch.zeros(3))]
    asyncio.run(adapter.update_weights(iter(weights), global_steps=5))
    assert set(received["state_dict"]) == {"a", "b"} and received["global_steps"] == 5
    with pytest.raises(NotImplementedError, match="checkpoint_engine.backend=naive"):
        asyncio.run(adapter.update_weights(iter(weights), wire_format="delta_flush"))
    with pytest.raises(NotImplementedError, match="lora.merge"):
        asyncio.run(adapter.update_weights(iter(weights), peft_config={"r": 8}))


def test_server_serves_successive_event_loops(tiny_model_dir):
    server = make_server(tiny_model_dir)
    params = {"temperature": 0, "max_tokens": 3, "ignore_eos": True}
    first = asyncio.run(server.generate(PROMPTS[0], dict(params), request_id="a"))
    second = asyncio.run(asyncio.wait_for(server.generate(PROMPTS[0], dict(params), request_id="b"), timeout=60))
    assert first.token_ids == second.token_ids and len(first.token_ids) == 3
