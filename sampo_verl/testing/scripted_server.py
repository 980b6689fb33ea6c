"""A scripted stand-in for verl's LLM server client.

:class:`ScriptedServer` has the call signature of ``verl.workers.rollout.llm_server.LLMServerClient
.generate`` and answers with the text a ``policy(prompt_text, call_index) -> str`` returns,
tokenized and terminated with EOS. Agent loops can thus be tested and benchmarked without a model,
e.g. with the tiny model's tokenizer, built in memory by
``sampo_verl.runs.assets.build_tokenizer(default_corpus())``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from verl.workers.rollout.replica import TokenOutput

Policy = Callable[[str, int], str]
Versions = Callable[[int], tuple[int, int]]  # call index -> (first, last) weight version it ran on


class ScriptedServer:
    """Answers every ``generate`` call with ``policy(decoded prompt, call index)``.

    ``calls`` records (request_id, prompt_ids, sampling_params) of every call; with
    ``logprob`` set, every response token gets that log-probability; ``latency_s`` simulates the
    time a real server takes per call (concurrent calls overlap, as on a batching server).
    ``versions(call_index)`` gives the weight versions a call ran on, returned in the extra fields as
    verl's clients return them (``global_steps``, ``min_global_steps``, ``max_global_steps``; the first
    and last differ for a call aborted and resumed under new weights); by default version 0.
    """

    def __init__(
        self,
        tokenizer: Any,
        policy: Policy,
        logprob: float | None = None,
        latency_s: float = 0.0,
        versions: Versions = lambda index: (0, 0),
    ):
        self.tokenizer, self.policy, self.logprob, self.latency_s = tokenizer, policy, logprob, latency_s
        self.versions = versions
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
        first, last = self.versions(index)
        versions = {"global_steps": last, "min_global_steps": first, "max_global_steps": last}
        return TokenOutput(token_ids=token_ids, log_probs=log_probs, stop_reason="completed", extra_fields=versions)
