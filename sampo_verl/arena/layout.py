"""The arena's results layout: the contract between the runner (``arena run``) and the report.

::

    DIR/
      <env>/<method>/seed<k>/    one cell: one training run of a method preset on an environment
        metrics.jsonl            verl's file-logger output for the run (point VERL_FILE_LOGGER_PATH
                                 here); validation before training is logged at step 0
        done.json                written last, once the cell finished: {"wall_time_s": float, "steps": int}
        ...                      anything else the runner keeps there (checkpoints, logs)
      <env>/_served/<name>/      a served model evaluated on the environment, shown as a reference row:
        summary.json             ``sampo-verl evaluate --base-url ... --out DIR/<env>/_served/<name>``
      report/                    written by ``arena report DIR``: index.html and the PNG figures

``<env>`` is the environment name (``sokoban``, ``frozenlake``, ...), ``<method>`` the method
preset (``method=<method>`` of ``sampo_verl.main_ppo``, e.g. ``gspo``, ``sapo_seqmask``) and ``<k>``
the integer seed. A cell with ``metrics.jsonl`` but no ``done.json`` is unfinished (running or
interrupted): the report still shows its data and counts it as unfinished; a runner re-runs (or
resumes) exactly those cells.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sampo_verl.metrics import skip

METRICS_FILE = "metrics.jsonl"
DONE_FILE = "done.json"
REPORT_DIR = "report"
SERVED_DIR = "_served"
_SEED_DIR = re.compile(r"seed(\d+)")


@dataclass(frozen=True)
class Cell:
    """One (environment, method, seed) run under a results folder."""

    env: str
    method: str
    seed: int
    path: Path

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def done_path(self) -> Path:
        return self.path / DONE_FILE

    @property
    def name(self) -> str:
        return f"{self.env}/{self.method}/seed{self.seed}"

    def done(self, skipped: list[str] | None = None) -> dict[str, Any] | None:
        """The finished marker's contents, or ``None`` while the cell is unfinished; a marker that is not a
        JSON object counts as unfinished (``mark_done`` writes it atomically) and is noted in ``skipped``."""
        if not self.done_path.is_file():
            return None
        marker = _json_object(self.done_path)
        if marker is None or not _numbers(marker, "wall_time_s", "steps"):
            marker_form = "{'wall_time_s': s, 'steps': n}"
            skip(skipped, f"{self.done_path}: not a marker {marker_form}; the cell counts as unfinished")
            return None
        return marker


def cell_dir(root: str | Path, env: str, method: str, seed: int) -> Path:
    """The folder of one cell: ``root/<env>/<method>/seed<seed>``."""
    return Path(root) / env / method / f"seed{seed}"


def mark_done(path: str | Path, wall_time_s: float, steps: int) -> Path:
    """Write a cell's ``done.json`` atomically (write then rename), so a killed runner leaves none."""
    done = Path(path) / DONE_FILE
    tmp = done.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"wall_time_s": float(wall_time_s), "steps": int(steps)}), encoding="utf-8")
    os.replace(tmp, done)
    return done


def served_summaries(root: str | Path, env: str, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The evaluation summaries under ``root/<env>/_served/*/summary.json``, by folder name (one that
    is not a JSON object is left out and noted in ``skipped``)."""
    summaries = []
    for path in sorted(Path(root, env, SERVED_DIR).glob("*/summary.json")):
        summary = _json_object(path)
        if summary is None or not _numbers(summary, "success_rate", "episodes"):
            skip(skipped, f"{path}: not an evaluation summary (success_rate, episodes); the served model is left out")
        else:
            summaries.append({"name": path.parent.name, **summary})
    return summaries


def _numbers(record: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(record.get(key), (int, float)) and not isinstance(record.get(key), bool) for key in keys)


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def find_cells(root: str | Path) -> list[Cell]:
    """Every cell under ``root`` that has a metrics file, sorted by environment, method and seed."""
    cells = []
    for metrics in Path(root).glob(f"*/*/seed*/{METRICS_FILE}"):
        seed = _SEED_DIR.fullmatch(metrics.parent.name)
        if seed:
            cell_path = metrics.parent
            cells.append(Cell(cell_path.parent.parent.name, cell_path.parent.name, int(seed.group(1)), cell_path))
    return sorted(cells, key=lambda c: (c.env, c.method, c.seed))
