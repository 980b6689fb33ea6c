"""MkDocs hook: the pages' generated parts, built from the code at build time so they cannot drift:
the configuration reference from the options registry (``<!-- options-reference -->``), the
per-turn schema from :data:`sampo_verl.agent.turns.SCHEMA` (``<!-- turn-schema -->``), and an arena
report's Markdown (``<!-- include: DIR/results.md -->``, a path relative to the page, written by
``sampo-verl arena report STUDY --out DIR``; its figure links made relative to the page)."""

import re
from pathlib import Path

OPTIONS = "<!-- options-reference -->"
TURN_SCHEMA = "<!-- turn-schema -->"
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)  # alone on its line
FIGURE = re.compile(r"\]\(([^():/]+\.png)\)")  # a link to a PNG beside the included file


def _include(match: re.Match, page) -> str:
    relative = Path(match.group(1))
    text = (Path(page.file.abs_src_path).parent / relative).read_text(encoding="utf-8")
    return FIGURE.sub(lambda m: f"]({(relative.parent / m.group(1)).as_posix()})", text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = INCLUDE.sub(lambda m: _include(m, page), markdown)
    if TURN_SCHEMA in markdown:
        from sampo_verl.agent.turns import schema_markdown

        markdown = markdown.replace(TURN_SCHEMA, schema_markdown())
    if OPTIONS in markdown:
        import verl  # noqa: F401  (loads sampo_verl.plugin: every options section registered)

        from sampo_verl.options import reference_markdown

        markdown = markdown.replace(OPTIONS, reference_markdown())
    return markdown
