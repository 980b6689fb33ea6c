"""A served model as the agent: an OpenAI-compatible chat-completions endpoint behind the agent loop.

:class:`ChatModel` is the ``generate`` of :func:`sampo_verl.agent.loop.play_episode` for any server
that speaks OpenAI's chat-completions API (vLLM, SGLang, hosted APIs, ``sampo-verl serve``),
through the official ``openai`` client: the prompts, history window, parser and environments are
those of training; only the model's side differs. A request times out ``request_timeout_s`` after it
was sent, however slowly the server keeps answering, and a reply is kept up to ``MAX_CHARS_PER_TOKEN`` x
``max_tokens`` characters (a longer one is cut and counted: ``truncated_replies``);
rate limits (429), server errors (5xx), timeouts and dropped connections are retried with
exponential backoff (a ``Retry-After`` header is honoured); anything else (a 4xx, a reply that
is not a chat completion) fails at once. A request that still fails raises
:class:`~sampo_verl.agent.loop.GenerationFailed`, which ends that episode as failed, counted.

The API key is read from the environment variable ``api_key_env`` names and handed to the client
only: it is never printed, logged or written.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import openai

from sampo_verl.agent.loop import Generation, GenerationFailed

RETRIED = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)
NO_KEY = "EMPTY"  # what local servers (vLLM, SGLang, sampo-verl serve) accept when no key is set
MAX_CHARS_PER_TOKEN = 32  # a reply of max_tokens tokens is at most this many characters a token


@dataclass(frozen=True)
class ChatSettings:
    """Where the model is and how it is asked."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    request_timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 1.0

    def check(self) -> None:
        for name, value, ok in (
            ("--temperature", self.temperature, self.temperature >= 0),
            ("--top-p", self.top_p, 0 < self.top_p <= 1),
            ("--max-tokens", self.max_tokens, self.max_tokens >= 1),
            ("--request-timeout", self.request_timeout_s, self.request_timeout_s > 0),
            ("--retries", self.retries, self.retries >= 0),
        ):
            if not ok:
                raise ValueError(f"{name} {value} is out of range")


class ChatModel:
    """``generate(messages)`` through the chat-completions API, with retries; counts requests and tokens."""

    def __init__(self, settings: ChatSettings):
        settings.check()
        self.settings = settings
        self._key = os.environ.get(settings.api_key_env) or NO_KEY
        self.client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=self._key,
            timeout=settings.request_timeout_s,
            max_retries=0,  # retried here, with the counts kept
        )
        self.counts: Counter[str] = Counter()

    async def generate(self, messages: list[dict[str, str]]) -> Generation:
        """The model's reply to ``messages``; :class:`GenerationFailed` once the retries are spent."""
        s = self.settings
        began = time.perf_counter()
        for attempt in range(s.retries + 1):
            self.counts["requests"] += 1
            try:
                reply = await asyncio.wait_for(
                    self.client.chat.completions.create(
                        model=s.model, messages=messages, temperature=s.temperature, top_p=s.top_p,
                        max_tokens=s.max_tokens,
                    ),
                    s.request_timeout_s,
                )  # fmt: skip
                text = reply.choices[0].message.content or ""
                usage = reply.usage
            except (*RETRIED, TimeoutError) as error:
                if attempt == s.retries:
                    self.counts["failed_requests"] += 1
                    raise GenerationFailed(f"{type(error).__name__} after {attempt + 1} attempt(s)") from error
                self.counts["retries"] += 1
                await asyncio.sleep(_retry_after(error) or s.backoff_s * 2**attempt)
                continue
            except (openai.APIError, ValueError, TypeError, AttributeError, IndexError) as error:
                self.counts["failed_requests"] += 1
                reason = _short(error).replace(self._key, "<api key>")  # a server may echo the request's headers
                raise GenerationFailed(f"{type(error).__name__}: not a chat completion ({reason})") from None
            cap = MAX_CHARS_PER_TOKEN * s.max_tokens
            if len(text) > cap:
                self.counts["truncated_replies"] += 1
                text = text[:cap]
            prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
            completion_tokens = getattr(usage, "completion_tokens", 0) or 0
            self.counts["prompt_tokens"] += prompt_tokens
            self.counts["completion_tokens"] += completion_tokens
            return Generation(
                prompt_ids=[],
                response_ids=[],
                response_logprobs=None,
                server_extra={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                generate_s=time.perf_counter() - began,
                text=text,
            )
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.client.close()


def _retry_after(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except ValueError:
        return None


def _short(error: Any) -> str:
    text = str(error)
    return text[:200] + ("..." if len(text) > 200 else "")
