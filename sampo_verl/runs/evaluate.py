"""Success rate of a model on held-out episodes, played by the RL agent loop itself.

Every episode runs through :func:`sampo_verl.agent.loop.play_episode` (same prompts, history
window, parsing, invalid-action handling and success flag as in RL). The model is either

- a local HF model directory (``--model DIR``): the CPU backend's batching HF generation server
  (:class:`sampo_verl.cpu.hf_server.HFServer`, the ``hf`` rollout's engine), in this process,
  through :class:`sampo_verl.agent.loop.EnvAgentLoop` itself; or
- a served model (``--base-url URL --model NAME``): any OpenAI-compatible chat-completions
  endpoint (vLLM, SGLang, a hosted API, ``sampo-verl serve``) through the ``openai``
  client (:mod:`sampo_verl.runs.chat_client`), the key read from ``--api-key-env``.

Episodes run concurrently. Decoding is greedy by default. Default seeds are the held-out validation
seeds of :mod:`sampo_verl.agent.dataset` and :mod:`sampo_verl.bc.sft_data` (from ``VAL_SEED_OFFSET``).
The summary (success rate with a 95% Wilson interval, invalid-action, env-error and failed-request
rates, turns, tokens, wall time) is printed as JSON; ``--out DIR`` also writes ``DIR/summary.json``
and ``DIR/episodes.jsonl`` (every episode's transcript: prompt messages, replies, parsed actions,
rewards)::

    sampo-verl evaluate --model CKPT_DIR --env sokoban --episodes 50 \\
        --env-options '{"dim_room": [5, 5], "search_depth": 4}' --max-turns 5
    sampo-verl evaluate --base-url http://127.0.0.1:8000/v1 --model Qwen3-4B --env frozenlake \\
        --episodes 256 --out runs/eval_qwen
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.agent.loop import Episode, EnvAgentLoop, EpisodeSpec, play_episode
from sampo_verl.metrics import wilson_interval
from sampo_verl.runs.chat_client import ChatModel, ChatSettings

SUMMARY_FILE = "summary.json"
EPISODES_FILE = "episodes.jsonl"


@dataclass(frozen=True)
class EvalResult:
    """Episode means over the evaluated seeds."""

    episodes: int
    success_rate: float
    mean_turns: float
    invalid_action_rate: float
    env_error_rate: float
    success_ci95: tuple[float, float] = (0.0, 1.0)
    failed_request_rate: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time_s: float = 0.0


def episode_record(seed: int, episode: Episode | None) -> dict[str, Any]:
    """One evaluated episode: its outcome (as verl's validation logs it) and transcript."""
    if episode is None:  # the environment could not start it (the loop logged why)
        return {
            "seed": seed, "success": 0.0, "episode_length": 0, "invalid_action_rate": 0.0, "env_error": 1.0,
            "env_error_reason": "reset", "request_failed": 0.0, "reward": 0.0, "turns": [],
        }  # fmt: skip
    generations = [t.generation for t in episode.turns]
    return {
        "seed": seed,
        **asdict(episode.outcome()),
        "env_error_reason": episode.fault.reason if episode.fault else "",
        "request_failed": float(episode.generation_error is not None),
        "reward": episode.reward,
        "prompt_tokens": sum(int(g.server_extra.get("prompt_tokens", len(g.prompt_ids))) for g in generations),
        "completion_tokens": sum(
            int(g.server_extra.get("completion_tokens", len(g.response_ids))) for g in generations
        ),
        "turns": [
            {
                "messages": t.messages,
                "reply": t.generation.text,
                "action": t.action,
                "parse_reason": t.parse_reason,
                "reward": t.reward,
                "won": t.won,
            }
            for t in episode.turns
        ],
    }


async def _play_all(
    play: Callable[[EpisodeSpec], Awaitable[Episode | None]],
    env: str,
    seeds: list[int],
    env_options: dict[str, Any] | None,
    task: dict[str, Any] | None,
    concurrency: int,
) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)

    async def one(seed: int) -> dict[str, Any]:
        spec = EpisodeSpec(
            env=env, seed=seed, env_options=dict(env_options or {}), task=dict(task or {}), max_turns=None
        )
        async with limit:
            return episode_record(seed, await play(spec))

    return list(await asyncio.gather(*(one(seed) for seed in seeds)))


async def play_episodes(
    model: str | Path,
    env: str,
    seeds: list[int],
    env_options: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    max_turns: int | None = None,
    history_length: int = 2,
    response_length: int = 64,
    temperature: float = 0.0,
    concurrency: int = 32,
) -> list[dict[str, Any]]:
    """Play one episode per seed with a local HF model; return each episode's record (:func:`episode_record`)."""
    from transformers import AutoConfig, AutoTokenizer

    from sampo_verl.runs.serve import local_server

    server, rollout = local_server(model, response_length, concurrency)
    loop = EnvAgentLoop.standalone(
        server,
        AutoTokenizer.from_pretrained(str(model)),
        rollout,
        hf_model_type=AutoConfig.from_pretrained(str(model)).model_type,
        max_turns=max_turns,
        history_length=history_length,
    )

    async def play(spec: EpisodeSpec) -> Episode | None:
        return await loop.play(spec, traj_uid=str(spec.seed), sampling_params={"temperature": temperature})

    return await _play_all(play, env, seeds, env_options, task, concurrency)


async def play_served(
    settings: ChatSettings,
    env: str,
    seeds: list[int],
    env_options: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    max_turns: int | None = None,
    history_length: int = 2,
    concurrency: int = 8,
    env_timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Play one episode per seed with a served model (:class:`~sampo_verl.runs.chat_client.ChatModel`)."""
    model = ChatModel(settings)

    async def play(spec: EpisodeSpec) -> Episode | None:
        return await play_episode(spec, model.generate, max_turns, history_length, env_timeout_s)

    try:
        return await _play_all(play, env, seeds, env_options, task, concurrency)
    finally:
        await model.close()


def summarise(records: list[dict[str, Any]], wall_time_s: float = 0.0) -> EvalResult:
    """Means over the episode records, the success rate's 95% interval, token totals."""
    n = len(records)
    if n == 0:
        raise ValueError("evaluate: no episodes")
    successes = sum(r["success"] for r in records)
    return EvalResult(
        episodes=n,
        success_rate=successes / n,
        mean_turns=sum(r["episode_length"] for r in records) / n,
        invalid_action_rate=sum(r["invalid_action_rate"] for r in records) / n,
        env_error_rate=sum(r["env_error"] for r in records) / n,
        success_ci95=wilson_interval(successes, n),
        failed_request_rate=sum(r["request_failed"] for r in records) / n,
        prompt_tokens=sum(r.get("prompt_tokens", 0) for r in records),
        completion_tokens=sum(r.get("completion_tokens", 0) for r in records),
        wall_time_s=wall_time_s,
    )


def evaluate(model: str | Path, env: str, seeds: list[int], **options: Any) -> EvalResult:
    """Greedy (by default) success of a local ``model`` on ``env`` over ``seeds`` (options: :func:`play_episodes`)."""
    if not seeds:
        raise ValueError("evaluate: no seeds")
    began = time.monotonic()
    records = asyncio.run(play_episodes(model, env, seeds, **options))
    return summarise(records, time.monotonic() - began)


def write_results(out: Path, result: EvalResult, records: list[dict[str, Any]], about: dict[str, Any]) -> None:
    """``out/summary.json`` (the result and what was evaluated) and ``out/episodes.jsonl`` (transcripts)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps({**about, **asdict(result)}, indent=2), encoding="utf-8")
    with (out / EPISODES_FILE).open("w", encoding="utf-8") as episodes:
        for record in records:
            episodes.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF model directory, or with --base-url the served model's name")
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--env", required=True, help="registered environment")
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes (consecutive seeds)")
    parser.add_argument("--seed", type=int, default=VAL_SEED_OFFSET, help="first seed (default: held-out seeds)")
    parser.add_argument("--env-options", default="{}", help="JSON dict of environment constructor options")
    parser.add_argument("--task", default="{}", help="JSON dict passed to reset(seed, task)")
    parser.add_argument("--max-turns", type=int, default=None, help="turn limit (default: the agent loop's)")
    parser.add_argument("--history-length", type=int, default=2, help="past turns shown in the prompt")
    parser.add_argument("--response-length", "--max-tokens", type=int, default=64, help="max tokens per turn")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (served models)")
    parser.add_argument("--concurrency", type=int, default=32, help="episodes played (and batched) at once")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request (served models)")
    parser.add_argument("--retries", type=int, default=4, help="retries of a rate-limited or failed request")
    parser.add_argument("--env-timeout", type=float, default=60.0, help="seconds per environment call")
    parser.add_argument("--out", type=Path, default=None, help="write summary.json and episodes.jsonl here")
    args = parser.parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.episodes))
    episode = {
        "env_options": json.loads(args.env_options),
        "task": json.loads(args.task),
        "max_turns": args.max_turns,
        "history_length": args.history_length,
        "concurrency": args.concurrency,
    }
    began = time.monotonic()
    if args.base_url is None:
        records = asyncio.run(
            play_episodes(
                args.model,
                args.env,
                seeds,
                response_length=args.response_length,
                temperature=args.temperature,
                **episode,
            )
        )
        about = {"model": args.model, "env": args.env}
    else:
        settings = ChatSettings(
            base_url=args.base_url,
            model=args.model,
            api_key_env=args.api_key_env,
            temperature=args.temperature,
            top_p=args.top_p,
            max_tokens=args.response_length,
            request_timeout_s=args.request_timeout,
            retries=args.retries,
        )
        try:
            settings.check()
        except ValueError as error:
            raise SystemExit(f"evaluate: {error}") from None
        records = asyncio.run(play_served(settings, args.env, seeds, env_timeout_s=args.env_timeout, **episode))
        about = {"model": args.model, "base_url": args.base_url, "env": args.env, "served": True}
    result = summarise(records, time.monotonic() - began)
    if args.out is not None:
        write_results(args.out, result, records, about)
    print(json.dumps({**about, **asdict(result)}))


if __name__ == "__main__":
    main()
