"""The C4 and deployment diagrams render with the PlantUML that ships with Debian."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DIAGRAMS = sorted((Path(__file__).resolve().parents[1] / "diagrams").glob("*.puml"))


def test_the_planned_diagrams_exist() -> None:
    names = {p.stem for p in DIAGRAMS}
    assert {"c4-context", "c4-containers", "c4-components", "deployment-homelab"} <= names


@pytest.mark.parametrize("diagram", DIAGRAMS, ids=lambda p: p.name)
def test_diagram_renders(diagram: Path, tmp_path: Path) -> None:
    plantuml = shutil.which("plantuml")
    assert plantuml, "plantuml is installed by `make system-deps`"
    result = subprocess.run(
        [plantuml, "-tsvg", "-failfast2", "-o", str(tmp_path), str(diagram)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    svg = (tmp_path / f"{diagram.stem}.svg").read_text()
    assert "<svg" in svg and "Syntax Error" not in svg
