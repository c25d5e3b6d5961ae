"""Docs say what a user sees: commands that exist today, figures labelled with the setup they came from."""

from __future__ import annotations

import re

from tests.support import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_docs_use_the_current_hugging_face_cli() -> None:
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert not re.search(r"^\s*`?huggingface-cli (download|upload|login)", text, re.MULTILINE), path
        assert "huggingface-cli download" not in text, path


def test_every_readme_benchmark_row_names_its_setup() -> None:
    section = README.split("## Benchmarks", 1)[1]
    header, _rule, *rows = [line for line in section.splitlines() if line.startswith("|")]
    assert [c.strip() for c in header.strip("|").split("|")] == ["what", "setup", "result"]
    for row in rows:
        _what, setup, result = (c.strip() for c in row.strip("|").split("|"))
        assert setup and result, row
    assert "upper bounds" not in section


def test_readme_states_the_lerobot_versions_it_supports() -> None:
    assert "LeRobot 0.6.1" in README and "LeRobot 0.4.x" in README and "not supported" in README
