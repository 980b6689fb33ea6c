"""The validation before training, run by the first cell of a start and copied into the others.

Every CPU cell of an environment starts from the same model and validates it greedily on the same
held-out tasks before it trains, whatever its method: the same numbers, every time (the FrozenLake
study's ten seed-0 cells recorded identical per-task outcomes). The first cell to run it keeps its
step-0 metrics and per-task outcomes in ``<env>/_start/first_validation/<key>.json``; a later cell with
the same key starts with ``trainer.val_before_train=false`` and finds that validation copied in:
``attempts/reused_step0.jsonl`` (read before the attempt files when ``metrics.jsonl`` is rebuilt; it
carries ``timing_s/testing = 0`` and ``arena/reused_validation = 1``) and the first line of
``val_outcomes.jsonl``. The key is the start model, the rollout engine and the run's overrides.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sampo_verl.arena.summary import VALIDATION_TIME
from sampo_verl.metrics import read_metrics
from sampo_verl.trainer.val_outcomes import OUTCOMES_FILE, ValOutcomes, append_outcomes, read_val_outcomes

CACHE_DIR = "first_validation"
REUSED_ATTEMPT = "reused_step0.jsonl"
REUSED_MARKER = "arena/reused_validation"
NO_VALIDATION_BEFORE_TRAINING = "trainer.val_before_train=false"


def cache_file(shared: Path, start: str, engine: str, overrides: Sequence[str]) -> Path:
    """Where the start's first validation is kept for these settings (a start built in ``shared`` is named
    relative to it, so a results folder that moves keeps its kept validations)."""
    start_path = Path(start)
    name = str(start_path.relative_to(shared)) if start_path.is_relative_to(shared) else str(start)
    key = hashlib.sha256(json.dumps([name, engine, list(overrides)]).encode()).hexdigest()[:16]
    return shared / CACHE_DIR / f"{key}.json"


def keep(cache: Path, first_attempt: Path, cell: Path) -> bool:
    """Keep the step-0 validation a cell's from-scratch attempt logged (``first_attempt``, its outcomes in
    ``cell``) unless one is kept already; False when there is none to keep."""
    if cache.exists() or not first_attempt.exists():
        return False
    metrics = {k: v for k, v in read_metrics(first_attempt).get(0, {}).items() if k.startswith("val-")}
    outcomes = read_val_outcomes(cell / OUTCOMES_FILE).get(0)
    if not metrics or outcomes is None:
        return False
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"metrics": metrics, "outcomes": asdict(outcomes)}), encoding="utf-8")
    os.replace(tmp, cache)
    return True


def copy_in(cache: Path, cell: Path, attempts: Path) -> bool:
    """Put the kept validation into a cell about to train from scratch; False when none is kept."""
    if not cache.exists():
        return False
    kept = json.loads(cache.read_text(encoding="utf-8"))
    record = {"step": 0, "data": {**kept["metrics"], VALIDATION_TIME: 0.0, REUSED_MARKER: 1.0}}
    attempts.mkdir(parents=True, exist_ok=True)
    (attempts / REUSED_ATTEMPT).write_text(json.dumps(record) + "\n", encoding="utf-8")
    outcomes = read_val_outcomes(cell / OUTCOMES_FILE)
    if 0 not in outcomes:
        append_outcomes(cell / OUTCOMES_FILE, ValOutcomes(**kept["outcomes"]))
    return True
