"""MkDocs hook: the pages' generated parts, built from the code at build time so they cannot drift:
the configuration reference from the options registry (``<!-- options-reference -->``) and the
per-turn schema from :data:`sampo_verl.agent.turns.SCHEMA` (``<!-- turn-schema -->``)."""

OPTIONS = "<!-- options-reference -->"
TURN_SCHEMA = "<!-- turn-schema -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if TURN_SCHEMA in markdown:
        from sampo_verl.agent.turns import schema_markdown

        markdown = markdown.replace(TURN_SCHEMA, schema_markdown())
    if OPTIONS in markdown:
        import verl  # noqa: F401  (loads sampo_verl.plugin: every options section registered)

        from sampo_verl.options import reference_markdown

        markdown = markdown.replace(OPTIONS, reference_markdown())
    return markdown
