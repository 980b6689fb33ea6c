"""A scripted stand-in for verl's LLM server client, and a tiny local tokenizer.

:class:`ScriptedServer` has the call signature of ``verl.workers.rollout.llm_server.LLMServerClient
.generate`` and answers with the text a ``policy(prompt_text, call_index) -> str`` returns,
tokenized and terminated with EOS. Agent loops can thus be tested and benchmarked without a model.
:func:`tiny_tokenizer` builds a byte-level BPE tokenizer with a ChatML template in memory
(no downloads), the tokenizer class verl uses for Qwen2-style models.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from verl.workers.rollout.replica import TokenOutput

Policy = Callable[[str, int], str]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(vocab_size: int = 320):
    """Byte-level BPE tokenizer (256 bytes + a few merges) with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["<think> </think> <action> </action> up down left right user assistant observation turn"] * 10
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


class ScriptedServer:
    """Answers every ``generate`` call with ``policy(decoded prompt, call index)``.

    ``calls`` records (request_id, prompt_ids, sampling_params) of every call; with
    ``logprob`` set, every response token gets that log-probability; ``latency_s`` simulates the
    time a real server takes per call (concurrent calls overlap, as on a batching server).
    """

    def __init__(self, tokenizer: Any, policy: Policy, logprob: float | None = None, latency_s: float = 0.0):
        self.tokenizer, self.policy, self.logprob, self.latency_s = tokenizer, policy, logprob, latency_s
        self.calls: list[tuple[str, list[int], dict[str, Any]]] = []

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        audio_data: list[Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        index = len(self.calls)
        self.calls.append((request_id, list(prompt_ids), dict(sampling_params)))
        await asyncio.sleep(self.latency_s)  # yield like a real server so concurrent episodes interleave
        text = self.policy(self.tokenizer.decode(prompt_ids), index)
        token_ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        log_probs = None if self.logprob is None else [self.logprob] * len(token_ids)
        return TokenOutput(token_ids=token_ids, log_probs=log_probs, stop_reason="completed")
