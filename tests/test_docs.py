"""The documentation site builds in strict mode (no broken link or page); its configuration reference
and per-turn schema are generated from the code, its study pages take in the arena reports."""

import shutil
import subprocess
from pathlib import Path

import pytest
import verl  # noqa: F401  (loads sampo_verl.plugin: every options section registered)

from sampo_verl.agent.turns import SCHEMA
from sampo_verl.options import OPTIONS_SECTIONS

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_build_strictly_with_the_generated_reference(tmp_path):
    mkdocs = shutil.which("mkdocs") or pytest.fail("mkdocs missing: pip install -e '.[test]'")
    built = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    page = (tmp_path / "configuration" / "index.html").read_text(encoding="utf-8")
    for prefix, section in OPTIONS_SECTIONS.items():
        for name in section.options.__dataclass_fields__:
            if not name.startswith("_") and name not in section.ignore:
                assert f"{prefix}.{name}" in page, f"{prefix}.{name}"
    assert "options-reference" not in page
    concepts = (tmp_path / "concepts" / "index.html").read_text(encoding="utf-8")
    assert all(f"<code>{name}</code>" in concepts for name in SCHEMA) and "turn-schema" not in concepts
    # a study page takes in the arena report's Markdown, its figures linked from the page's place
    study = (tmp_path / "studies" / "frozenlake-qwen3" / "index.html").read_text(encoding="utf-8")
    assert "<!-- include:" not in study and "Ranking, beside the paper" in study
    assert 'src="../frozenlake_qwen3/frozenlake_success.png"' in study


def test_the_readme_keeps_to_its_size_and_starts_with_the_two_set_up_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert lines[2] == "```bash" and "sampo-verl quickstart" in lines[3] and "python -m pytest" in lines[4]
