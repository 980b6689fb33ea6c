"""The arena's stability report: one self-contained HTML page plus PNG figures.

``build_report(DIR)`` reads every cell of a results folder (layout: :mod:`sampo_verl.arena.layout`)
and writes ``DIR/report/index.html`` (figures embedded as base64 data URIs, so the page opens
offline on its own) and, per environment, ``<env>_success.png``, ``<env>_success_by_method.png`` and
``<env>_stability.png`` beside it. Per environment the page shows the success curves per method (mean
over seeds, band min..max), the same curves one panel per method in ranking order (every seed, the
other methods' means in grey), the stability panel, collapse steps as dotted lines, the ranking table
(:mod:`sampo_verl.arena.summary`) and the findings (:mod:`sampo_verl.arena.findings`). The same numbers
go into ``results.md`` (:mod:`sampo_verl.arena.markdown`) for documentation pages.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sampo_verl.arena import findings as findings_mod
from sampo_verl.arena.layout import REPORT_DIR, Cell, find_cells, served_summaries
from sampo_verl.arena.markdown import RESULTS_MD, results_markdown
from sampo_verl.arena.results import (
    EnvResults,
    cost_text,
    definitions,
    env_results,
    off_policy_column,
    off_policy_entry,
    off_policy_grid,
)
from sampo_verl.arena.summary import MethodSummary
from sampo_verl.metrics import History, is_number, read_metrics, skip

# the ARLArena matrix order, used for curve colours and legends; other methods follow by name
METHOD_ORDER = (
    "grpo",
    "grpo_seqmean",
    "grpo_filter",
    "gspo",
    "sapo",
    "sapo_seqmask",
    "cispo",
    "cispo_seqmask",
    "gigpo",
    "gigpo_filter",
    "empg",
    "sampo",
)
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
img { max-width: 100%; }
.held { color: #17692b; } .partly-held { color: #8a6d00; } .did-not-hold { color: #a0201c; }
.inconclusive, .not-tested-on-this-run { color: #666; }
"""


def load_results(root: str | Path, skipped: list[str] | None = None) -> dict[str, list[tuple[Cell, History]]]:
    """Every cell with its metric history, grouped by environment (cells in method-matrix order); lines
    the reader left out, and cells whose metrics cannot be read, are noted in ``skipped``."""
    by_env: dict[str, list[tuple[Cell, History]]] = {}
    for cell in sorted(find_cells(root), key=lambda c: (c.env, _method_rank(c.method), c.seed)):
        try:
            history = read_metrics(cell.metrics_path, skipped)
        except OSError as error:
            skip(skipped, f"{cell.name}: cannot read {cell.metrics_path.name} ({error}); the cell is left out")
            continue
        by_env.setdefault(cell.env, []).append((cell, history))
    return by_env


def build_report(root: str | Path, out: str | Path | None = None, skipped: list[str] | None = None) -> Path:
    """Write the report for results folder ``root`` into ``out`` (default ``root/report``): ``index.html``
    and, for documentation, the same in Markdown (:data:`~sampo_verl.arena.markdown.RESULTS_MD`).

    Returns the path of ``index.html``; raises ``FileNotFoundError`` when ``root`` holds no cell. What
    was left out (each line, file or cell the readers could not use, with why) is listed on the page and
    added to ``skipped``.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / REPORT_DIR
    notes: list[str] = []
    by_env = load_results(root, notes)
    if not by_env:
        raise FileNotFoundError(f"no arena cells under {root} (expected {root}/<env>/<method>/seed<k>/metrics.jsonl)")
    results = [env_results(env, cells, out, served_summaries(root, env, notes), notes) for env, cells in by_env.items()]
    cells = [cell for env_cells in by_env.values() for cell, _ in env_cells]
    notes = list(dict.fromkeys(notes))  # a file read twice is noted once
    line = _summary_line(cells)
    index = out / "index.html"
    index.write_text(_page(root, line, [_env_section(r) for r in results], notes), encoding="utf-8")
    (out / RESULTS_MD).write_text(results_markdown(root, results, line, notes), encoding="utf-8")
    if skipped is not None:
        skipped.extend(notes)
    return index


def _summary_line(cells: Sequence[Cell]) -> str:
    done = [cell.done() for cell in cells]
    finished = [d for d in done if d is not None]
    wall = sum(float(d["wall_time_s"]) for d in finished)
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"{len(cells)} cells, {len(finished)} finished, {len(cells) - len(finished)} unfinished; "
        f"wall time of the finished cells {wall:.0f} s. Generated {generated}."
    )


def _env_section(results: EnvResults) -> str:
    env, summaries = results.env, results.summaries
    figures = "\n".join(f"<figure>{_img(path, what)}</figure>" for path, what in results.figures)
    return f"""
<section id="env-{html.escape(env)}">
<h2>{html.escape(env)}</h2>
<p>{_code_spans(results.intro())}</p>
{figures}
<h3>Ranking</h3>
{_ranking_table(summaries)}
{_off_policy_table(summaries)}
{_served_table(results.served)}
<h3>Findings</h3>
{_findings_table(results.findings)}
</section>"""


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    caption = f"{html.escape(alt)} ({html.escape(png.name)})"
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{caption}</figcaption>'


def _ranking_table(summaries: Sequence[MethodSummary]) -> str:
    head = (
        "<tr><th>rank</th><th>method</th><th>seeds finished</th><th>final success</th><th>best success</th>"
        "<th>drop (largest fall)</th><th>collapse steps: mean (per seed)</th>"
        "<th>lowest valid-format rate</th><th>wall time per finished seed (s): all (training steps / validations / "
        "the rest)</th><th>intervals over</th></tr>"
    )
    rows = []
    for rank, s in enumerate(summaries, start=1):
        per_seed = ", ".join(str(x.collapses) for x in s.seeds)
        final, best, drop, fmt = (s.estimate(v) for v in ("final", "best", "drop", "format_min"))
        wall_text = cost_text(s.seeds)
        rows.append(
            f'<tr data-method="{html.escape(s.method)}"><td>{rank}</td><td>{html.escape(s.method)}</td>'
            f"<td>{s.finished}/{len(s.seeds)}</td><td>{final.text()}</td><td>{best.text()}</td><td>{drop.text()}</td>"
            f"<td>{s.collapses.mean:g} ({per_seed})</td><td>{fmt.text()}</td><td>{wall_text}</td>"
            f"<td>{final.basis()}</td></tr>"
        )
    return f'<table class="ranking">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _off_policy_table(summaries: Sequence[MethodSummary]) -> str:
    """The off-policy axis, when the run has it (:func:`~sampo_verl.arena.results.off_policy_grid`)."""
    columns, grid = off_policy_grid(summaries)
    if not columns:
        return ""
    head = "<tr><th>preset (trainer)</th>" + "".join(
        f"<th>{off_policy_column(k)}: final / drop / collapse steps / optimiser steps a batch</th>" for k in columns
    )
    rows = [
        f'<tr data-preset="{html.escape(label)}"><td>{html.escape(label)}</td>'
        + "".join(f"<td>{off_policy_entry(row.get(k))}</td>" for k in columns)
        + "</tr>"
        for label, row in grid.items()
    ]
    return '<h3>Off-policy axis</h3>\n<table class="off-policy">\n' + head + "</tr>\n" + "\n".join(rows) + "\n</table>"


def _served_table(served: Sequence[dict]) -> str:
    """Served models evaluated on the environment (``sampo-verl evaluate --base-url``), as reference rows."""
    if not served:
        return ""
    rows = []
    for s in served:
        interval = s.get("success_ci95")
        low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)
        rows.append(
            f'<tr data-served="{html.escape(s["name"])}"><td>{html.escape(str(s.get("model", s["name"])))}</td>'
            f"<td>{_number(s['success_rate'])} [{_number(low)}, {_number(high)}]</td><td>{s['episodes']}</td>"
            f"<td>{_number(s.get('invalid_action_rate'))}</td>"
            f"<td>{_number(s.get('failed_request_rate', 0.0))}</td></tr>"
        )
    head = (
        "<tr><th>served model (reference)</th><th>success [95% interval]</th><th>episodes</th>"
        "<th>invalid-action rate</th><th>failed requests</th></tr>"
    )
    return f'<h3>Served models</h3>\n<table class="served">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _number(value: object) -> str:
    """A rate with three decimals, '–' for anything that is not a finite number."""
    return f"{value:.3f}" if is_number(value) else "–"


def _findings_table(verdicts: Sequence[findings_mod.Finding]) -> str:
    rows = [
        f'<tr data-finding="{f.key}"><td>{html.escape(f.claim)}</td>'
        f'<td class="{f.verdict.replace(" ", "-")}"><b>{f.verdict}</b></td><td>{html.escape(f.evidence)}</td>'
        f"<td>{html.escape(f.needs or '–')}</td></tr>"
        for f in verdicts
    ]
    head = "<tr><th>finding</th><th>on this run</th><th>evidence</th><th>what would decide it</th></tr>"
    return f'<table class="findings">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _skipped_section(skipped: Sequence[str]) -> str:
    if not skipped:
        return ""
    items = "\n".join(f"<li>{html.escape(note)}</li>" for note in skipped)
    return f"""
<section id="skipped">
<h2>Left out ({len(skipped)})</h2>
<p>What the report could not use, and why; the numbers above are computed without it.</p>
<ul>
{items}
</ul>
</section>"""


def _page(root: Path, summary_line: str, sections: Sequence[str], skipped: Sequence[str]) -> str:
    left_out = f' <a href="#skipped">{len(skipped)} item(s) left out</a>.' if skipped else ""
    how = "\n".join(f"<li>{_code_spans(item)}</li>" for item in definitions())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Arena report: {html.escape(root.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Arena report: {html.escape(str(root))}</h1>
<p>{html.escape(summary_line)}{left_out}</p>
{"".join(sections)}
{_skipped_section(skipped)}
<section id="definitions">
<h2>How the numbers are computed</h2>
<ul>
{how}
</ul>
</section>
</body></html>
"""


def _code_spans(text: str) -> str:
    """HTML of a Markdown text whose only markup is `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def _method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)
