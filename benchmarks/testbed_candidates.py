"""How long the expert's episodes are on candidate long-horizon testbeds, measured without training.

    python benchmarks/testbed_candidates.py [--tasks 200] [--out benchmarks/results/testbed_candidates.md]

For each candidate (an environment with its options and a cloned thought) the expert plays the held-out
tasks (seeds from ``VAL_SEED_OFFSET``, the RL validation split's) with no turn limit; the table gives the
fraction it wins, its turns per episode (mean / 90th percentile / max) and the tokens of one cloned turn
(the trained part: the response and the end-of-turn token, with the CPU testbed's default tokenizer).
A second testbed needs episodes of 8 or more turns and turn lengths that vary (docs/studies/frozenlake-long.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sampo_verl.agent.dataset import VAL_SEED_OFFSET
from sampo_verl.bc.sft_data import DEFAULT_THOUGHT, expert_episode
from sampo_verl.runs.assets import build_tokenizer, default_corpus

NO_LIMIT = 200  # turns: long enough that every episode ends on its own
THOUGHTS = ("", "{plan}")  # "": the action alone, the testbeds' default
LAKE = {"hole_prob": 0.25, "describe_neighbors": True}
CANDIDATES: list[tuple[str, str, dict[str, Any], str]] = [
    ("Sokoban 5x5, 1 box, depth 4 (the Sokoban testbed)", "sokoban", {"dim_room": [5, 5], "search_depth": 4}, ""),
    ("Sokoban 7x7, 2 boxes, depth 40", "sokoban", {"dim_room": [7, 7], "num_boxes": 2, "search_depth": 40}, ""),
    ("Sokoban 8x8, 2 boxes, depth 100", "sokoban", {"dim_room": [8, 8], "num_boxes": 2, "search_depth": 100}, ""),
    *(
        (f"FrozenLake {n}x{n}, holes 0.25", "frozenlake", {"size": n, **LAKE}, thought)
        for n in (4, 5, 6, 8)
        for thought in THOUGHTS
    ),
]  # (label, environment, its options, the cloned thought)


def measure(env: str, options: dict[str, Any], thought: str, tasks: int, tokenizer: Any) -> dict[str, float]:
    """The expert's win rate, turns per won episode and tokens per cloned turn over ``tasks`` held-out seeds."""
    turns, tokens = [], []
    for seed in range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + tasks):
        rows = expert_episode(env, seed, env_options=options, max_turns=NO_LIMIT, thought=thought)
        if rows is None:
            continue
        turns.append(len(rows))
        responses = [row["messages"][-1]["content"] for row in rows]
        tokens.extend(len(ids) + 1 for ids in tokenizer(responses, add_special_tokens=False)["input_ids"])
    t, k = np.asarray(turns), np.asarray(tokens)
    return {
        "won": len(turns) / tasks, "turns": t.mean(), "turns_p90": np.percentile(t, 90), "turns_max": t.max(),
        "tokens": k.mean(), "tokens_std": k.std(), "tokens_min": k.min(), "tokens_max": k.max(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="held-out tasks per candidate")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    tokenizer = build_tokenizer(default_corpus())
    lines = [
        f"Expert episodes on {args.tasks} held-out tasks per candidate (benchmarks/testbed_candidates.py)",
        "",
        "| candidate | cloned thought | expert wins | turns: mean / p90 / max | tokens per cloned turn: "
        "mean ± std [min, max] |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for label, env, options, thought in CANDIDATES:
        thought = thought or DEFAULT_THOUGHT
        m = measure(env, options, thought, args.tasks, tokenizer)
        line = (
            f"| {label} | `{thought}` | {m['won']:.2f} | {m['turns']:.2f} / {m['turns_p90']:g} / {m['turns_max']:g} | "
            f"{m['tokens']:.1f} ± {m['tokens_std']:.1f} [{m['tokens_min']:g}, {m['tokens_max']:g}] |"
        )
        print(line, flush=True)
        lines.append(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
