"""HF-transformers generation server for the ``hf`` rollout backend.

:class:`HFGenerator` is the engine: left-padded batched generation with a KV cache, per-row
sampling parameters and per-token log-probs. :class:`HFServer` wraps it as the Ray actor verl's
agent loops talk to (``generate(prompt_ids, sampling_params, request_id) -> TokenOutput``):
concurrent requests wait in a queue and every pass of the batching loop runs all pending ones
as one padded batch.

Log-probs are those of the temperature-scaled distribution, ``log_softmax(logits / T)`` over
the full vocabulary (``T = 1`` for greedy rows), which is what verl's actor recomputes, so
``training/rollout_probs_diff_*`` measures only numerical differences. top-k/top-p shape the
sampling, not the reported log-probs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

SUPPORTED_SAMPLING_PARAMS = {
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_new_tokens",
    "logprobs",
    "repetition_penalty",
    "ignore_eos",
}


GREEDY_BELOW = 1e-5  # as vLLM: smaller temperatures are greedy (dividing by one would overflow to NaN)


@dataclass(frozen=True)
class SamplingConfig:
    """Sampling parameters of one request. ``temperature < GREEDY_BELOW`` is greedy; ``top_k <= 0`` and
    ``top_p = 1`` switch those filters off."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    logprobs: bool = False
    ignore_eos: bool = False

    @classmethod
    def from_request(
        cls, params: dict[str, Any], prompt_len: int, prompt_length: int, response_length: int, max_model_len: int
    ) -> SamplingConfig:
        """Validate verl's ``sampling_params`` dict and resolve the token budget as vLLM does:
        ``max_tokens`` (or ``max_new_tokens``), else ``min(response_length, prompt_length +
        response_length - prompt_len)``, clamped to ``[1, max_model_len - prompt_len]``."""
        unknown = set(params) - SUPPORTED_SAMPLING_PARAMS
        if unknown:
            raise ValueError(
                f"hf rollout: unsupported sampling_params {sorted(unknown)}; "
                f"supported: {sorted(SUPPORTED_SAMPLING_PARAMS)}"
            )
        if float(params.get("repetition_penalty", 1.0)) != 1.0:
            raise ValueError("hf rollout: sampling_params.repetition_penalty must be 1.0")
        room = max_model_len - prompt_len
        if room < 1:
            raise ValueError(
                f"hf rollout: prompt of {prompt_len} tokens leaves no room within max_model_len={max_model_len}"
            )
        max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
        if max_tokens is None:
            max_tokens = min(response_length, prompt_length + response_length - prompt_len)
        config = cls(
            max_tokens=max(1, min(int(max_tokens), room)),
            temperature=float(params.get("temperature", 1.0)),
            top_p=float(params.get("top_p", 1.0)),
            top_k=int(params.get("top_k", -1)),
            logprobs=bool(params.get("logprobs", False)),
            ignore_eos=bool(params.get("ignore_eos", False)),
        )
        if not 0.0 < config.top_p <= 1.0:
            raise ValueError(f"hf rollout: sampling_params.top_p must be in (0, 1], got {config.top_p}")
        return config


@dataclass
class GenerationResult:
    token_ids: list[int]
    log_probs: list[float] | None
    finish_reason: str  # "stop" (EOS) or "length"


def sample_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row with per-row temperature, top-k and top-p.

    Args:
        logits: ``[B, V]`` next-token logits.
        temperature: ``[B]``; rows with ``T < GREEDY_BELOW`` take the argmax (and the log-probs of ``T = 1``).
        top_k: ``[B]`` long; ``<= 0`` keeps the whole vocabulary.
        top_p: ``[B]`` in ``(0, 1]``; keeps the smallest prefix of the sorted distribution
            whose mass reaches ``top_p`` (the most likely token always stays).

    Returns:
        tokens ``[B]`` and their log-probs ``log_softmax(logits / T)[token]`` ``[B]``.
    """
    vocab = logits.shape[-1]
    greedy = temperature < GREEDY_BELOW
    scaled = logits.float() / torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
    log_probs = torch.log_softmax(scaled, dim=-1)

    if bool(((top_k > 0) | (top_p < 1)).any()):  # filtering needs the sorted distribution
        sorted_logits, sorted_ids = scaled.sort(dim=-1, descending=True, stable=True)
        keep_k = torch.where(top_k > 0, top_k.clamp(max=vocab), torch.full_like(top_k, vocab))
        ranks = torch.arange(vocab, device=logits.device)
        removed = ranks[None, :] >= keep_k[:, None]
        sorted_probs = torch.softmax(sorted_logits.masked_fill(removed, float("-inf")), dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        removed |= mass_before >= top_p[:, None]
        choice = torch.multinomial(sorted_probs.masked_fill(removed, 0.0), 1, generator=generator)
        sampled = sorted_ids.gather(-1, choice).squeeze(-1)
    else:
        sampled = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)

    tokens = torch.where(greedy, logits.argmax(dim=-1), sampled)
    return tokens, log_probs.gather(-1, tokens[:, None]).squeeze(-1)


class HFGenerator:
    """Batched autoregressive generation with an HF causal LM (left padding, KV cache)."""

    def __init__(self, model: torch.nn.Module, eos_token_ids: set[int], pad_token_id: int, seed: int = 0):
        self.model = model.eval()
        self.eos_token_ids = torch.tensor(sorted(eos_token_ids), dtype=torch.long)
        self.pad_token_id = pad_token_id
        self.generator = torch.Generator().manual_seed(seed)
        self.lock = threading.Lock()  # generation and weight loading never overlap

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], configs: list[SamplingConfig]) -> list[GenerationResult]:
        """Generate for all prompts in one padded batch; row ``i`` follows ``configs[i]``."""
        with self.lock:
            return self._generate(prompts, configs)

    def _generate(self, prompts: list[list[int]], configs: list[SamplingConfig]) -> list[GenerationResult]:
        device = next(self.model.parameters()).device  # sampling stays on the CPU, with its generator
        batch = len(prompts)
        width = max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)

        temperature = torch.tensor([c.temperature for c in configs], dtype=torch.float32)
        top_k = torch.tensor([c.top_k for c in configs], dtype=torch.long)
        top_p = torch.tensor([c.top_p for c in configs], dtype=torch.float32)
        max_tokens = torch.tensor([c.max_tokens for c in configs], dtype=torch.long)
        stops_on_eos = torch.tensor([not c.ignore_eos for c in configs])

        steps = int(max_tokens.max())
        tokens = torch.full((batch, steps), self.pad_token_id, dtype=torch.long)
        log_probs = torch.zeros((batch, steps), dtype=torch.float32)
        lengths = torch.zeros(batch, dtype=torch.long)
        hit_eos = torch.zeros(batch, dtype=torch.bool)
        finished = torch.zeros(batch, dtype=torch.bool)

        attention_mask, position_ids = attention_mask.to(device), position_ids.to(device)
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
        )
        for step in range(steps):
            logits = out.logits[:, -1].cpu()
            next_tokens, next_log_probs = sample_tokens(logits, temperature, top_k, top_p, self.generator)
            active = ~finished
            tokens[active, step] = next_tokens[active]
            log_probs[active, step] = next_log_probs[active]
            lengths += active.long()
            eos = active & stops_on_eos & torch.isin(next_tokens, self.eos_token_ids)
            hit_eos |= eos
            finished |= eos | (lengths >= max_tokens)
            if bool(finished.all()):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=-1)
            position_ids = position_ids[:, -1:] + 1
            out = self.model(
                input_ids=next_tokens[:, None].to(device),
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=out.past_key_values,
                use_cache=True,
                logits_to_keep=1,
            )

        results = []
        for row, config in enumerate(configs):
            n = int(lengths[row])
            results.append(
                GenerationResult(
                    token_ids=tokens[row, :n].tolist(),
                    log_probs=log_probs[row, :n].tolist() if config.logprobs else None,
                    finish_reason="stop" if bool(hit_eos[row]) else "length",
                )
            )
        return results

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a (possibly partial, e.g. tied ``lm_head`` omitted) state dict; unknown names fail."""
        with self.lock:
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
        if unexpected:
            raise KeyError(f"hf rollout: weights not in the rollout model: {unexpected}")
        untied_missing = [n for n in missing if not (n == "lm_head.weight" and self.model.config.tie_word_embeddings)]
        if untied_missing:
            logger.warning(
                "hf rollout: weight update left %d tensors unchanged: %s", len(untied_missing), untied_missing
            )


def load_generator(model_config: Any, dtype: str, seed: int, device: str = "cpu") -> HFGenerator:
    """Build an :class:`HFGenerator` from verl's ``HFModelConfig`` (model, tokenizer, EOS ids) on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from verl.utils.fs import copy_to_local
    from verl.utils.torch_dtypes import PrecisionType

    path = getattr(model_config, "local_path", None) or copy_to_local(model_config.path)
    tokenizer_path = getattr(model_config, "local_tokenizer_path", None) or path
    override = dict(getattr(model_config, "override_config", None) or {})
    trust_remote_code = bool(getattr(model_config, "trust_remote_code", False))
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=PrecisionType.to_dtype(dtype),
        attn_implementation=override.get("attn_implementation", "sdpa"),
        trust_remote_code=trust_remote_code,
    )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)
    eos = model.generation_config.eos_token_id
    eos_ids = {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
    if tokenizer.eos_token_id is not None:
        eos_ids.add(int(tokenizer.eos_token_id))
    if not eos_ids:
        raise ValueError(f"hf rollout: model at {path} defines no eos_token_id (generation_config or tokenizer)")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    return HFGenerator(model.to(device), eos_ids, pad_id, seed=seed)


@dataclass
class _Pending:
    prompt_ids: list[int]
    config: SamplingConfig
    future: asyncio.Future


class HFServer:
    """Ray actor (async): token-in/token-out generation for verl's agent loops.

    Requests that arrive while a batch is running wait in a queue; each pass of the batching
    loop takes every pending request (up to ``max_num_seqs``) and runs them as one batch in a
    worker thread, so the event loop keeps accepting requests. The worker thread is always the
    same one: every new thread running torch ops would start its own OpenMP team.
    """

    GATHER_IDLE_S = 0.02  # a batch closes when no request came for this long (see _gather)
    GATHER_MAX_S = 0.25  # ... or this long after its first request

    def __init__(self, config, model_config, replica_rank: int):
        self.config = config
        self.replica_rank = replica_rank
        self.max_model_len = config.max_model_len or config.prompt_length + config.response_length
        device = getattr(config, "device", None) or "cpu"  # verl's rollout config has none: the CPU
        self.engine = load_generator(model_config, dtype=config.dtype, seed=config.seed + replica_rank, device=device)
        self.global_steps: int | None = None
        self._queue: asyncio.Queue | None = None
        self._batcher: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf_rollout")

    def get_server_address(self) -> tuple[str, int]:
        import ray

        return ray.util.get_node_ip_address(), 0

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        **kwargs: Any,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if image_data is not None or video_data is not None:
            raise ValueError("hf rollout: multimodal inputs are not supported")
        prompt_ids = [int(t) for t in prompt_ids]
        config = SamplingConfig.from_request(
            dict(sampling_params),
            prompt_len=len(prompt_ids),
            prompt_length=self.config.prompt_length,
            response_length=self.config.response_length,
            max_model_len=self.max_model_len,
        )
        result = await self.submit(prompt_ids, config)
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason="completed",  # EOS or length, as verl's vLLM server reports both
            extra_fields={"global_steps": self.global_steps, "finish_reason": result.finish_reason},
        )

    async def submit(self, prompt_ids: list[int], config: SamplingConfig) -> GenerationResult:
        """Queue one request and wait for the batch it lands in."""
        loop = asyncio.get_running_loop()
        if self._batcher is None or self._batcher.get_loop() is not loop:  # one queue per event loop
            self._queue = asyncio.Queue()
            self._batcher = loop.create_task(self._batching_loop(self._queue))
        future = loop.create_future()
        await self._queue.put(_Pending(prompt_ids, config, future))
        return await future

    async def _gather(self, queue: asyncio.Queue) -> list[_Pending]:
        """The next batch: the first pending request, then all that follow it closely.

        Agent loops submit a turn's requests one by one as their environments step (a few ms
        apart); taking only what is queued at the first arrival split each turn into a batch of 1-5
        and one of the rest, each a full decode. The
        batch stays open while requests keep arriving within ``GATHER_IDLE_S`` of each other, for at
        most ``GATHER_MAX_S``.
        """
        loop = asyncio.get_running_loop()
        batch = [await queue.get()]
        deadline = loop.time() + self.GATHER_MAX_S
        while len(batch) < self.config.max_num_seqs:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            wait = min(self.GATHER_IDLE_S, deadline - loop.time())
            if wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), wait))
            except asyncio.TimeoutError:
                break
        return batch

    async def _batching_loop(self, queue: asyncio.Queue) -> None:
        while True:
            batch = await self._gather(queue)
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self.engine.generate, [p.prompt_ids for p in batch], [p.config for p in batch]
                )
            except Exception as error:  # fail the requests of this batch, keep serving
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():  # the caller may have been cancelled meanwhile
                    pending.future.set_result(result)

    def update_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None = None) -> int:
        self.engine.load_weights(state_dict)
        self.global_steps = global_steps
        return len(state_dict)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # Control plane of verl's rollout servers. The HF model holds no device memory to release
    # and requests always run to completion, so these are no-ops.
    async def wake_up(self, *args, **kwargs) -> None:
        pass

    async def sleep(self, *args, **kwargs) -> None:
        pass

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        pass

    async def start_profile(self, **kwargs) -> None:
        pass

    async def stop_profile(self) -> None:
        pass
