"""The C4 and deployment diagrams: they render with the PlantUML (and Graphviz) that ship with
Debian, they name every service of every compose file, and the SVGs in docs/diagrams/ that the
README shows are the current rendering (`make diagrams`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DIAGRAMS = sorted((REPO / "diagrams").glob("*.puml"))
SVG_DIR = REPO / "docs" / "diagrams"
COMPOSE_FILES = sorted(REPO.glob("docker-compose*.yml"))


def _render(diagram: Path, out: Path) -> str:
    plantuml = shutil.which("plantuml")
    assert plantuml, "plantuml is installed by `make system-deps`"
    result = subprocess.run(
        [plantuml, "-tsvg", "-failfast2", "-o", str(out), str(diagram)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return (out / f"{diagram.stem}.svg").read_text()


def _source(svg: str) -> str:
    """The diagram source PlantUML embeds in the SVG (includes expanded)."""
    match = re.search(r"@startuml.*?@enduml", svg, re.S)
    assert match, "no embedded source"
    return match.group(0)


def test_the_planned_diagrams_exist() -> None:
    names = {p.stem for p in DIAGRAMS}
    assert {"c4-context", "c4-containers", "c4-components", "deployment-homelab"} <= names


@pytest.mark.system
@pytest.mark.parametrize("diagram", DIAGRAMS, ids=lambda p: p.name)
def test_diagram_renders_and_its_svg_is_current(diagram: Path, tmp_path: Path) -> None:
    svg = _render(diagram, tmp_path)
    assert "<svg" in svg and "Syntax Error" not in svg
    assert "Cannot find Graphviz" not in svg, "install graphviz (Makefile APT_PACKAGES)"
    committed = SVG_DIR / f"{diagram.stem}.svg"
    assert committed.exists(), f"run `make diagrams`: {committed.name} is missing"
    assert _source(committed.read_text()) == _source(svg), "run `make diagrams`: SVG is stale"


@pytest.mark.parametrize("diagram", ["c4-containers", "deployment-homelab"])
def test_every_compose_service_is_in_the_diagram(diagram: str) -> None:
    text = (REPO / "diagrams" / f"{diagram}.puml").read_text()
    services = {
        name
        for compose in COMPOSE_FILES
        for name in yaml.safe_load(compose.read_text())["services"]
    }
    missing = sorted(s for s in services if not re.search(rf"\b{s}\b", text))
    assert not missing, f"{diagram}.puml lacks compose services {missing}"


def test_readme_shows_the_diagrams() -> None:
    readme = (REPO / "README.md").read_text()
    for name in ("c4-containers", "deployment-homelab"):
        assert f"](docs/diagrams/{name}.svg)" in readme
