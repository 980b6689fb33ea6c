"""TIR-Math task files from parquet files in verl's math format (e.g. MATH levels 3-5 to train, AIME to
validate): one dataset row per problem, its ``task`` option carrying the question and the answer::

    sampo-verl math-tasks --train math.parquet --levels 3 4 5 \\
        --val aime24.parquet aime25.parquet --out ~/data/sampo_verl/tir_math
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any, Sequence

import pandas as pd

from sampo_verl.agent.dataset import episode_rows
from sampo_verl.envs.tir_math import ENV_NAME, last_group

# the user's data: verl's math parquet files --------------------------------------------------------

# instructions verl's examples/data_preprocess scripts append to the question in the prompt
VERL_INSTRUCTIONS = (
    "Let's think step by step and output the final answer within \\boxed{}.",
    'Let\'s think step by step and output the final answer after "####".',
)


def _final_answer(solution: str) -> str:
    """The final answer of a worked solution: after the last ``####`` (GSM8K) or the last ``\\boxed{}``."""
    if "####" in solution:
        return solution.rsplit("####", 1)[1].strip()
    boxed = last_group(solution, "\\boxed")
    return solution.strip() if boxed is None else boxed.strip()


def _question_from_prompt(prompt: Any) -> str:
    messages = [m for m in prompt if m["role"] == "user"]
    if not messages:
        raise ValueError("tir_math: a verl math row without question has no user message in its prompt")
    question = messages[-1]["content"]
    for instruction in VERL_INSTRUCTIONS:
        question = question.replace(instruction, "")
    return question.strip()


def _level(row: dict[str, Any], extra: dict[str, Any]) -> int | None:
    found = re.search(r"\d+", str(row.get("level", extra.get("level", ""))))
    return int(found[0]) if found else None


def tasks_from_verl_math(path: str, levels: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Tasks ``{"id", "question", "answer", "data_source"}`` from one parquet file in verl's math format.

    A row as verl's ``examples/data_preprocess`` (math_dataset.py, gsm8k.py, ...) writes it: the
    question is ``extra_info.question`` (or ``problem``), else the last user message of ``prompt``
    without verl's instruction sentence; the answer is ``reward_model.ground_truth``, else the final
    answer of ``extra_info.answer`` / ``solution``. ``levels`` keeps the rows whose ``level``
    (``"Level 3"`` in MATH) is one of them.
    """
    tasks = []
    stem = os.path.splitext(os.path.basename(path))[0]
    for number, row in enumerate(pd.read_parquet(path).to_dict("records")):
        extra = row.get("extra_info") or {}
        if levels is not None and _level(row, extra) not in levels:
            continue
        question = extra.get("question") or extra.get("problem") or _question_from_prompt(row["prompt"])
        truth = (row.get("reward_model") or {}).get("ground_truth")
        if truth is not None and not isinstance(truth, (str, int, float)):
            truth = list(truth)[0]  # a list of accepted answers: the first
        if truth is None or str(truth).strip() == "":
            solution = extra.get("answer") or extra.get("solution") or row.get("solution")
            if solution is None:
                raise ValueError(f"tir_math: row {number} of {path} has no ground truth")
            truth = _final_answer(str(solution))
        source = str(row.get("data_source") or stem)
        index = extra.get("index", number)
        tasks.append({"id": f"{source}/{extra.get('split', stem)}/{index}", "question": str(question).strip(),
                      "answer": str(truth).strip(), "data_source": source})  # fmt: skip
    return tasks


def math_rows(
    tasks: list[dict[str, Any]], split: str, env_options: dict[str, Any] | None = None, max_turns: int | None = None
) -> list[dict[str, Any]]:
    """Dataset rows of :mod:`sampo_verl.agent.dataset`, one per task (its ``task`` option); the row's
    ``data_source`` stays the task's (validation reports each benchmark apart)."""
    rows = []
    for index, task in enumerate(tasks):
        options = {k: task[k] for k in ("id", "question", "answer")}
        (row,) = episode_rows(ENV_NAME, range(index, index + 1), split, env_options, options, max_turns)
        row["extra_info"]["index"] = index
        row["data_source"] = task.get("data_source", ENV_NAME)
        rows.append(row)
    return rows


def write_math_splits(
    out_dir: str,
    train_files: Sequence[str],
    val_files: Sequence[str],
    levels: Sequence[int] | None = None,
    env_options: dict[str, Any] | None = None,
    max_turns: int | None = None,
) -> tuple[str, str]:
    """Write ``train.parquet`` / ``val.parquet`` of TIR-Math episodes from verl math parquet files;
    ``levels`` filters the training files only. Returns the two paths."""
    train = [t for path in train_files for t in tasks_from_verl_math(path, levels)]
    val = [t for path in val_files for t in tasks_from_verl_math(path)]
    if not train:
        raise ValueError(f"tir_math: no training problems in {list(train_files)} (levels={levels})")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for split, tasks in (("train", train), ("val", val)):
        path = os.path.join(out_dir, f"{split}.parquet")
        pd.DataFrame(math_rows(tasks, split, env_options, max_turns)).to_parquet(path)
        paths.append(path)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sampo-verl math-tasks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True, help="verl math parquet files to train on")
    parser.add_argument("--val", nargs="*", default=[], help="verl math parquet files to validate on")
    parser.add_argument("--levels", nargs="*", type=int, default=None, help="keep training rows of these levels")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--env-options", default="{}", help="JSON dict of environment constructor options")
    parser.add_argument("--max-turns", type=int, default=None, help="per-row turn limit (default: the loop's)")
    args = parser.parse_args(argv)
    options = json.loads(args.env_options)
    train, val = write_math_splits(args.out, args.train, args.val, args.levels, options, args.max_turns)
    print(f"wrote {train} and {val}")


if __name__ == "__main__":
    main()
