"""Success rate of an HF model directory on held-out episodes, played by the RL agent loop itself.

Each episode runs through :class:`sampo_verl.agent.loop.EnvAgentLoop` (same prompts, parsing,
invalid-action handling and success flag as in RL) against the CPU backend's batching HF
generation server (:class:`sampo_verl.cpu.hf_server.HFServer`, the ``hf`` rollout's engine), in
one process, without Ray. Episodes run concurrently and their turns are generated in batches.
Decoding is greedy by default. Default seeds are the held-out validation seeds of
:mod:`sampo_verl.agent.dataset` and :mod:`sampo_verl.bc.sft_data` (from ``VAL_SEED_OFFSET``)::

    python -m sampo_verl.evaluate --model CKPT_DIR --env sokoban --episodes 50 \
        --env-options '{"dim_room": [5, 5], "search_depth": 4}' --max-turns 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omegaconf import OmegaConf
from transformers import AutoConfig, AutoTokenizer

from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.agent.turns import EpisodeOutcome
from sampo_verl.cpu.hf_server import HFServer
from sampo_verl.agent.dataset import VAL_SEED_OFFSET


@dataclass(frozen=True)
class EvalResult:
    """Episode means over the evaluated seeds."""

    episodes: int
    success_rate: float
    mean_turns: float
    invalid_action_rate: float
    env_error_rate: float


NOT_STARTED = EpisodeOutcome(success=0.0, episode_length=0, invalid_action_rate=0.0, env_error=1.0)


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
    """Play one episode per seed; return each episode's metrics (``success``, ``episode_length``, ...)."""
    model = str(model)
    hf_config = AutoConfig.from_pretrained(model)
    rollout = {
        "prompt_length": hf_config.max_position_embeddings - response_length,
        "response_length": response_length,
        "max_model_len": hf_config.max_position_embeddings,
        "max_num_seqs": concurrency,
        "dtype": "float32",
        "seed": 0,
    }
    model_config = SimpleNamespace(path=model, override_config={}, trust_remote_code=False)
    server = HFServer(OmegaConf.create(rollout), model_config, replica_rank=0)
    loop = EnvAgentLoop.standalone(
        server,
        AutoTokenizer.from_pretrained(model),
        rollout,
        hf_model_type=hf_config.model_type,
        max_turns=max_turns,
        history_length=history_length,
    )
    limit = asyncio.Semaphore(concurrency)

    async def episode(seed: int) -> dict[str, Any]:
        extra_info = {"env": env, "seed": seed, "env_options": env_options or {}, "task": task or {}}
        async with limit:
            outputs = await loop.run({"temperature": temperature}, raw_prompt=[], extra_info=extra_info, uid=str(seed))
        if not outputs:  # the environment could not start the episode (the loop logged why)
            return {"seed": seed, **asdict(NOT_STARTED)}
        return {"seed": seed, **outputs[0].extra_fields["reward_extra_info"]}

    return list(await asyncio.gather(*(episode(seed) for seed in seeds)))


def evaluate(model: str | Path, env: str, seeds: list[int], **options: Any) -> EvalResult:
    """Greedy (by default) success rate of ``model`` on ``env`` over ``seeds``; options of :func:`play_episodes`."""
    if not seeds:
        raise ValueError("evaluate: no seeds")
    episodes = asyncio.run(play_episodes(model, env, seeds, **options))
    n = len(episodes)
    return EvalResult(
        episodes=n,
        success_rate=sum(e["success"] for e in episodes) / n,
        mean_turns=sum(e["episode_length"] for e in episodes) / n,
        invalid_action_rate=sum(e["invalid_action_rate"] for e in episodes) / n,
        env_error_rate=sum(e["env_error"] for e in episodes) / n,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sampo_verl.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF model directory (initial, behaviour-cloned or RL)")
    parser.add_argument("--env", required=True, help="registered environment")
    parser.add_argument("--episodes", type=int, default=50, help="number of episodes (consecutive seeds)")
    parser.add_argument("--seed", type=int, default=VAL_SEED_OFFSET, help="first seed (default: held-out seeds)")
    parser.add_argument("--env-options", default="{}", help="JSON dict of environment constructor options")
    parser.add_argument("--task", default="{}", help="JSON dict passed to reset(seed, task)")
    parser.add_argument("--max-turns", type=int, default=None, help="turn limit (default: the agent loop's)")
    parser.add_argument("--history-length", type=int, default=2, help="past turns shown in the prompt")
    parser.add_argument("--response-length", type=int, default=64, help="max tokens per turn")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--concurrency", type=int, default=32, help="episodes played (and batched) at once")
    args = parser.parse_args(argv)
    result = evaluate(
        args.model,
        args.env,
        list(range(args.seed, args.seed + args.episodes)),
        env_options=json.loads(args.env_options),
        task=json.loads(args.task),
        max_turns=args.max_turns,
        history_length=args.history_length,
        response_length=args.response_length,
        temperature=args.temperature,
        concurrency=args.concurrency,
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
