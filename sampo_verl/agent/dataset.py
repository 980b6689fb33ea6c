"""Write verl-format parquet files of environment episodes (environment, seed, task) for train/val.

Each row is one task; with ``actor_rollout_ref.rollout.n=G`` verl plays it G times (one group).
The prompt column holds a short placeholder message: ``sampo_env_agent`` builds every turn's
prompt itself from the environment (:mod:`sampo_verl.agent.prompts`). Train and validation seeds never
overlap (validation seeds start at ``VAL_SEED_OFFSET``).

    sampo-verl dataset --env sokoban --train 256 --val 64 --out data/sokoban \
        --env-options '{"dim_room": [6, 6], "num_boxes": 1}'
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import pandas as pd

from sampo_verl.envs import ENV_REGISTRY, import_external_modules, make_env

AGENT_NAME = "sampo_env_agent"
VAL_SEED_OFFSET = 1_000_000


def episode_rows(
    env: str,
    seeds: range,
    split: str,
    env_options: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    max_turns: int | None = None,
) -> list[dict[str, Any]]:
    """One verl dataset row per seed (options stored as JSON strings to keep one parquet schema)."""
    if env not in ENV_REGISTRY:
        raise KeyError(f"--env {env!r} is not a registered environment; registered: {sorted(ENV_REGISTRY)}")
    make_env(env, **(env_options or {}))  # fail here, not in the rollout, on bad options
    rows = []
    for index, seed in enumerate(seeds):
        extra_info = {
            "index": index,
            "split": split,
            "env": env,
            "seed": seed,
            "env_options": json.dumps(env_options or {}),
            "task": json.dumps(task or {}),
        }
        if max_turns is not None:
            extra_info["max_turns"] = max_turns
        rows.append(
            {
                "data_source": env,
                "prompt": [{"role": "user", "content": f"{env} episode, seed {seed}"}],
                "agent_name": AGENT_NAME,
                "reward_model": {"style": "env", "ground_truth": ""},
                "extra_info": extra_info,
            }
        )
    return rows


def write_splits(
    out_dir: str,
    env: str,
    num_train: int,
    num_val: int,
    env_options: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    max_turns: int | None = None,
    val_env_options: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Write ``train.parquet`` and ``val.parquet`` under ``out_dir``; return their paths.

    ``val_env_options`` (default: ``env_options``) lets validation use other games, e.g. ALFWorld's
    official ``valid_unseen`` directory.
    """
    if num_train < 1 or num_val < 0 or num_train > VAL_SEED_OFFSET:
        raise ValueError(f"--train must be in [1, {VAL_SEED_OFFSET}] and --val >= 0, got {num_train}, {num_val}")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    val_seeds = range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + num_val)
    val_options = env_options if val_env_options is None else val_env_options
    splits = (("train", range(num_train), env_options), ("val", val_seeds, val_options))
    for split, seeds, options in splits:
        path = os.path.join(out_dir, f"{split}.parquet")
        pd.DataFrame(episode_rows(env, seeds, split, options, task, max_turns)).to_parquet(path)
        paths.append(path)
    return paths[0], paths[1]


def task_seeds(parquet_file: str) -> list[int]:
    """The episode seeds of a task file, in row order (the tasks its validation records name)."""
    return [int(info["seed"]) for info in pd.read_parquet(parquet_file, columns=["extra_info"])["extra_info"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--env", required=True, help=f"registered environment: {sorted(ENV_REGISTRY)}")
    parser.add_argument("--train", type=int, default=256, help="number of training tasks (seeds)")
    parser.add_argument("--val", type=int, default=64, help="number of validation tasks (seeds)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--env-options", default="{}", help="JSON dict of environment constructor options")
    parser.add_argument("--val-env-options", default=None, help="JSON dict for validation (default: --env-options)")
    parser.add_argument("--task", default="{}", help="JSON dict passed to reset(seed, task)")
    parser.add_argument("--max-turns", type=int, default=None, help="per-row turn limit (default: the loop's)")
    args = parser.parse_args(argv)
    import_external_modules()  # a user's environments

    def json_object(flag: str, text: str | None) -> dict | None:
        try:
            value = None if text is None else json.loads(text)
        except json.JSONDecodeError as error:
            parser.error(f"{flag} is not a JSON object ({error}): {text!r}")
        if value is not None and not isinstance(value, dict):
            parser.error(f"{flag} is not a JSON object: {text!r}")
        return value

    env_options = json_object("--env-options", args.env_options)
    val_options = json_object("--val-env-options", args.val_env_options)
    task = json_object("--task", args.task)
    try:
        train, val = write_splits(
            args.out, args.env, args.train, args.val, env_options, task, args.max_turns, val_options
        )
    except (KeyError, ValueError) as error:  # an unknown environment, a bad option or data file: named
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    print(f"wrote {train} ({args.train} rows) and {val} ({args.val} rows)")


if __name__ == "__main__":
    main()
