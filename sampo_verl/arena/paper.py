"""The ARLArena paper's main table: success (%) per method preset and task, to set beside an arena run.

The paper trains Qwen3-4B (behaviour-cloned first; TIR-Math from the base model) with the authors'
release settings; these are its reported numbers, keyed by the preset that runs each row
(``sampo_verl/conf/method``). Rows the paper does not report (the masked variants, ``sampo_plus``) are
absent; a task a method was not run on is None.
"""

from __future__ import annotations

import math

PAPER_TASKS = ("ALFWorld", "WebShop", "Sokoban", "TIR-Math AIME24", "TIR-Math AIME25")

PAPER_SUCCESS: dict[str, tuple[float | None, ...]] = {
    "grpo": (62.36, 57.71, 83.90, 49.96, 30.78),
    "grpo_seqmean": (72.61, 51.29, 68.73, 27.55, 21.63),
    "sapo": (25.16, 52.10, 30.25, 45.00, 30.85),
    "cispo": (54.42, 54.71, 26.02, 36.53, 30.87),
    "gspo": (78.61, 72.48, 82.22, 51.29, 37.95),
    "gigpo": (81.09, 56.55, 82.67, None, None),
    "empg": (57.91, 64.32, 79.16, None, None),
    "grpo_filter": (49.58, 46.17, 82.40, 54.66, 38.97),
    "gigpo_filter": (60.55, 76.82, 86.20, None, None),
    "sampo": (92.72, 77.73, 88.86, None, None),
}


def paper_ranks(methods: list[str], task: str) -> dict[str, int]:
    """Rank (1 = highest success) of each of ``methods`` the paper reports on ``task``, among those methods."""
    column = PAPER_TASKS.index(task)
    scores = {m: PAPER_SUCCESS[m][column] for m in methods if m in PAPER_SUCCESS}
    reported = sorted((m for m, v in scores.items() if v is not None), key=lambda m: -scores[m])
    return {m: rank for rank, m in enumerate(reported, start=1)}


def mean_paper_rank(methods: list[str]) -> dict[str, float]:
    """Each method's rank among ``methods`` averaged over the paper's agent tasks (ALFWorld, WebShop,
    Sokoban: every row of the table reports them); NaN for a method the paper does not report."""
    per_task = [paper_ranks(methods, task) for task in PAPER_TASKS[:3]]
    return {m: sum(r[m] for r in per_task) / len(per_task) if m in PAPER_SUCCESS else math.nan for m in methods}
