"""Expert multi-turn SFT data (behaviour cloning) in the agent loop's exact prompt format.

Each environment's expert (``TextEnv.expert_action()``) plays seeded episodes. Every turn becomes
one SFT sample: the user message that ``sampo_env_agent`` would send at that state (built by the
same :class:`sampo_verl.agent.prompts.EpisodePrompt`: template, history window, admissible actions
and turn numbering) followed by the expert's answer under the format contract
(:func:`sampo_verl.agent.prompts.format_response`). Rows use the ``messages`` column of verl's
``MultiTurnSFTDataset`` (the default dataset of ``verl.trainer.sft_trainer``), which tokenises the
user message and the assistant message with the tokenizer's chat template: the prompt part equals
the agent loop's ``apply_chat_template(..., add_generation_prompt=True)`` token for token, and the
trained part is the response followed by the template's end-of-turn token.

Only episodes the expert wins within ``max_turns`` are kept. Training episodes use seeds
``seed .. seed+episodes-1``; validation episodes use held-out seeds from
``sampo_verl.agent.dataset.VAL_SEED_OFFSET + seed`` on (the seeds of the RL validation split)::

    sampo-verl sft-data --env sokoban --episodes 100 --val-episodes 20 --out data/sokoban_sft \
        --env-options '{"dim_room": [5, 5], "search_depth": 4}' --max-turns 5
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import pandas as pd

from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.agent.prompts import EpisodePrompt, format_response
from sampo_verl.envs import ENV_REGISTRY, env_class, import_external_modules, make_env

DEFAULT_THOUGHT = "{action}"  # short: the tags already cost ~20 tokens of the RL response budget


def expert_episode(
    env_name: str,
    seed: int,
    env_options: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    max_turns: int | None = None,
    history_length: int = 2,
    thought: str = DEFAULT_THOUGHT,
    last_turn_repeats: int = 1,
) -> list[dict[str, Any]] | None:
    """SFT rows (one per turn) of the expert's episode ``seed``; None if the expert does not win in time.
    The last turn's row comes ``last_turn_repeats`` times (more weight on a turn that is rarer than the others).

    The prompt of every turn is built as :class:`sampo_verl.agent.loop.EnvAgentLoop` builds it (by an
    :class:`EpisodePrompt`); ``thought`` is the text inside ``<think>``, ``{action}`` replaced by the action and
    ``{plan}`` by the expert's planned actions from there (:meth:`~sampo_verl.envs.base.TextEnv.expert_plan`).
    """
    if last_turn_repeats < 1:
        raise ValueError(f"last_turn_repeats must be >= 1, got {last_turn_repeats}")
    max_turns = max_turns or env_class(env_name).default_max_turns
    env = make_env(env_name, **(env_options or {}))
    try:
        observation, info = env.reset(seed, task or None)
        prompt = EpisodePrompt.for_env(env_name, str(info.get("task", "")), history_length)
        rows = []
        for _ in range(max_turns):
            messages = prompt.messages(observation, info.get("admissible_actions"))
            plan = env.expert_plan()
            action = plan[0]
            response = format_response(thought.format(action=action, plan=" ".join(plan)), action)
            rows.append(
                {
                    "messages": [*messages, {"role": "assistant", "content": response}],
                    "data_source": env_name,
                    "extra_info": {"env": env_name, "seed": seed, "step": prompt.step, "anchor": str(info["anchor"])},
                }
            )
            prompt.record(observation, action)
            observation, _, done, info = env.step(action)
            if done:
                return rows + [rows[-1]] * (last_turn_repeats - 1) if info.get("won", False) else None
        return None
    finally:
        env.close()


def expert_rows(seeds: range, env_name: str, **episode_options: Any) -> tuple[list[dict[str, Any]], int]:
    """SFT rows of the expert's won episodes over ``seeds``, and the number of episodes kept."""
    rows, kept = [], 0
    for seed in seeds:
        episode = expert_episode(env_name, seed, **episode_options)
        if episode is not None:
            rows.extend(episode)
            kept += 1
    return rows, kept


def message_texts(path: str | os.PathLike) -> list[str]:
    """The text of every message of an SFT parquet file (e.g. to train a tokenizer on)."""
    return [m["content"] for messages in pd.read_parquet(path)["messages"] for m in messages if m["content"]]


def write_sft_splits(
    out_dir: str,
    env_name: str,
    episodes: int,
    val_episodes: int,
    seed: int = 0,
    **episode_options: Any,
) -> dict[str, tuple[str, int, int]]:
    """Write ``train.parquet`` and ``val.parquet``; return ``{split: (path, rows, episodes kept)}``.

    ``episode_options`` are those of :func:`expert_episode` (env_options, task, max_turns,
    history_length, thought, last_turn_repeats).
    """
    if env_name not in ENV_REGISTRY:
        raise KeyError(f"--env {env_name!r} is not a registered environment; registered: {sorted(ENV_REGISTRY)}")
    if episodes < 1 or val_episodes < 0 or seed < 0 or seed + episodes > VAL_SEED_OFFSET:
        raise ValueError(
            f"need --episodes >= 1, --val-episodes >= 0 and training seeds below {VAL_SEED_OFFSET}, "
            f"got episodes={episodes}, val_episodes={val_episodes}, seed={seed}"
        )
    os.makedirs(out_dir, exist_ok=True)
    splits = {
        "train": range(seed, seed + episodes),
        "val": range(VAL_SEED_OFFSET + seed, VAL_SEED_OFFSET + seed + val_episodes),
    }
    written = {}
    for split, seeds in splits.items():
        rows, kept = expert_rows(seeds, env_name, **episode_options)
        if split == "train" and not rows:
            raise RuntimeError(f"{env_name}: the expert won none of the {episodes} training episodes within max_turns")
        path = os.path.join(out_dir, f"{split}.parquet")
        pd.DataFrame(rows, columns=["messages", "data_source", "extra_info"]).to_parquet(path)
        written[split] = (path, len(rows), kept)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl sft-data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help=f"registered environment: {sorted(ENV_REGISTRY)}")
    parser.add_argument("--episodes", type=int, default=100, help="training episodes (seeds seed..seed+N-1)")
    parser.add_argument("--val-episodes", type=int, default=20, help="validation episodes on held-out seeds")
    parser.add_argument("--seed", type=int, default=0, help="first seed of each split")
    parser.add_argument("--out", required=True, help="output directory (train.parquet, val.parquet)")
    parser.add_argument("--env-options", default="{}", help="JSON dict of environment constructor options")
    parser.add_argument("--task", default="{}", help="JSON dict passed to reset(seed, task)")
    parser.add_argument("--max-turns", type=int, default=None, help="turn limit (default: the agent loop's)")
    parser.add_argument("--history-length", type=int, default=2, help="past turns shown (the agent loop's option)")
    parser.add_argument(
        "--thought",
        default=DEFAULT_THOUGHT,
        help="text inside <think>; {action}, {plan} (the expert's next actions) replaced",
    )
    args = parser.parse_args(argv)
    import_external_modules()  # a user's environments
    written = write_sft_splits(
        args.out,
        args.env,
        args.episodes,
        args.val_episodes,
        args.seed,
        env_options=json.loads(args.env_options),
        task=json.loads(args.task),
        max_turns=args.max_turns,
        history_length=args.history_length,
        thought=args.thought,
    )
    for split, (path, rows, kept) in written.items():
        print(f"{split}: {path} ({rows} turns from {kept} won episodes)")


if __name__ == "__main__":
    main()
