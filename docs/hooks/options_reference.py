"""MkDocs hook: the configuration page's reference, generated from the package's options registry at
build time (``<!-- options-reference -->`` in ``configuration.md``), so it cannot drift from the code."""

MARKER = "<!-- options-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    import verl  # noqa: F401  (loads sampo_verl.plugin: every options section registered)

    from sampo_verl.options import reference_markdown

    return markdown.replace(MARKER, reference_markdown())
