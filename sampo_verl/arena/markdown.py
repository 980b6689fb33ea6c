"""The arena report as Markdown (``results.md`` beside the HTML page and its figures), for documentation.

Per environment: the figures, the ranking beside the ARLArena paper's table (:mod:`.paper`) with each seed's
curve and the wall time, the off-policy axis where the run has one, the findings with what would decide the
inconclusive ones, then what was left out and how the numbers are computed. A docs page takes it in whole
(``docs/hooks/generated.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sampo_verl.arena.paper import PAPER_SUCCESS, PAPER_TASKS, mean_paper_rank
from sampo_verl.arena.results import (
    EnvResults,
    cost_text,
    curve_text,
    definitions,
    off_policy_column,
    off_policy_entry,
    off_policy_grid,
)

RESULTS_MD = "results.md"
AGENT_TASKS = PAPER_TASKS[:3]  # the paper's columns set beside ours: the multi-turn agent tasks


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return "\n".join([_row(head), _row(["---"] * len(head)), *(_row(r) for r in rows)])


def _paper_value(method: str, task: str) -> str:
    value = PAPER_SUCCESS.get(method, (None,) * len(PAPER_TASKS))[PAPER_TASKS.index(task)]
    return "–" if value is None else f"{value:.2f}"


def ranking_table(results: EnvResults) -> str:
    """Our ranking with per-seed curves and cost, and the paper's success and rank for the same presets."""
    ranked = [s.method for s in results.summaries]
    paper_rows = [m for m in ranked if m in PAPER_SUCCESS]
    ours = {m: rank for rank, m in enumerate(paper_rows, start=1)}
    theirs = mean_paper_rank(paper_rows)
    head = [
        "rank", "method", "final success", "best success", "drop", "collapse steps per seed", "lowest valid format",
        "curve per seed", "wall time (s): all (training / validations / rest)", *(f"paper: {t}" for t in AGENT_TASKS),
        "rank among the paper's rows: here / paper (mean)",
    ]  # fmt: skip
    rows = []
    for rank, s in enumerate(results.summaries, start=1):
        curves = "<br>".join(f"s{x.seed}: {curve_text(x)}" for x in s.seeds)
        paper_rank = f"{ours[s.method]} / {theirs[s.method]:.1f}" if s.method in ours else "–"
        rows.append([
            rank, f"`{s.method}`", s.estimate("final").text(), s.estimate("best").text(), s.estimate("drop").text(),
            ", ".join(str(x.collapses) for x in s.seeds), s.estimate("format_min").text(), curves,
            "<br>".join(f"s{x.seed}: {cost_text([x])}" for x in s.seeds),
            *(_paper_value(s.method, t) for t in AGENT_TASKS), paper_rank,
        ])  # fmt: skip
    return _table(head, rows)


def off_policy_table(results: EnvResults) -> str:
    """The off-policy axis under its heading, when the run has it; else nothing."""
    columns, grid = off_policy_grid(results.summaries)
    if not columns:
        return ""
    head = ["preset (trainer)", *(off_policy_column(k) for k in columns)]
    rows = [[label, *(off_policy_entry(row.get(k)) for k in columns)] for label, row in grid.items()]
    what = "Each entry: final success / drop / mean collapse steps / mean optimiser steps a sampled batch."
    return f"\n### Off-policy axis\n\n{what}\n\n{_table(head, rows)}\n"


def findings_table(results: EnvResults) -> str:
    head = ["finding", "here", "evidence", "what would decide it"]
    rows = [[f.claim, f"**{f.verdict}**", f.evidence, f.needs or "–"] for f in results.findings]
    return _table(head, rows)


def _env_section(results: EnvResults) -> str:
    figures = "\n\n".join(f"![{what}]({path.name})" for path, what in results.figures)
    return f"""## {results.env}

{results.intro()}

{figures}

### Ranking, beside the paper

The paper's columns are its reported success (%) with Qwen3-4B; the last column ranks the presets the paper
reports, here by final success and there by the mean of their ranks over its three agent tasks.

{ranking_table(results)}
{off_policy_table(results)}
### Findings

{findings_table(results)}
"""


def results_markdown(root: Path, results: Sequence[EnvResults], summary_line: str, skipped: Sequence[str]) -> str:
    """The whole Markdown report of results folder ``root``: no title, so that a page can take it in."""
    left_out = ""
    if skipped:
        items = "\n".join(f"- {_cell(note)}" for note in skipped)
        left_out = f"\n## Left out ({len(skipped)})\n\nWhat the report could not use, and why:\n\n{items}\n"
    how = "\n".join(f"- {item}" for item in definitions())
    sections = "\n".join(_env_section(r) for r in results)
    return f"""Arena report of `{root.name}`: {summary_line}

{sections}{left_out}
## How the numbers are computed

{how}
"""
