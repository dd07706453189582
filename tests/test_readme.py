"""The README is the operator's first page: its settings table must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from ef_backend.core.config import Settings

REPO = Path(__file__).resolve().parents[1]


def _documented(readme: Path) -> set[str]:
    return set(re.findall(r"^\| `(EF_[A-Z0-9_]+)` \|", readme.read_text(), flags=re.M))


def test_every_backend_setting_is_in_the_readme() -> None:
    fields = {f"EF_{name.upper()}" for name in Settings.model_fields}
    documented = _documented(REPO / "README.md")
    assert fields - documented == set(), "settings missing from the README table"
    assert documented - fields == set(), "README lists settings the backend does not have"


def test_readme_names_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert "make run" in text and "make test" in text and "http://127.0.0.1:8000" in text
