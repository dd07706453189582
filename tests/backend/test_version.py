"""One version: ``VERSION`` at the repository root feeds ef_build_info, /health (backend and
ef_tts, and ef_tts_build_info), the OCI image labels and the release notes; all agree."""

from __future__ import annotations

import re
import tomllib

import httpx
import pytest
import yaml
from ef_common.version import version

from tests.backend.conftest import BackendFactory
from tests.utils.procs import REPO, Server

VERSION = (REPO / "VERSION").read_text().strip()
PYPROJECTS = [
    REPO / "common" / "pyproject.toml",
    REPO / "backend" / "pyproject.toml",
    REPO / "tts" / "pyproject.toml",
    *sorted((REPO / "monitoring").glob("*/pyproject.toml")),
]
DOCKERFILES = sorted(REPO.glob("*/Dockerfile")) + sorted(REPO.glob("monitoring/*/Dockerfile"))


def _label(text: str, name: str, **labels: str) -> bool:
    """A series ``name`` with value 1 and (at least) these label values."""
    for line in re.findall(rf"^{name}\{{([^}}]*)\}} 1\.0$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.items() <= found.items():
            return True
    return False


def test_version_file_is_a_release_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: str(p.relative_to(REPO)))
def test_package_versions_match(pyproject: object) -> None:
    data = tomllib.loads(pyproject.read_text())  # type: ignore[attr-defined]
    assert data["project"]["version"] == VERSION


def test_code_reads_the_version_file() -> None:
    import ef_backend
    import ef_tts

    assert version() == VERSION
    assert ef_backend.__version__ == ef_tts.__version__ == VERSION


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_images_label_the_version_they_run(dockerfile: object) -> None:
    text = dockerfile.read_text()  # type: ignore[attr-defined]
    assert re.search(r"^ARG EF_VERSION=?$", text, re.M), "ARG EF_VERSION (no default)"
    assert 'org.opencontainers.image.version="${EF_VERSION}"' in text
    assert 'org.opencontainers.image.revision="${EF_COMMIT}"' in text
    if "python" in text:  # a Python service reports it at run time as well
        assert re.search(r"EF_VERSION=\$\{EF_VERSION\}", text)


def test_release_workflow_builds_and_notes_the_version_file() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    text = "\n".join(str(step.get("run", "")) + str(step.get("with", "")) for step in steps)
    assert "$(cat VERSION)" in text, "the version comes from VERSION"
    assert 'test "$GITHUB_REF_NAME" = "v$version"' in text, "the tag must be v + VERSION"
    assert "EF_VERSION=${{ needs.version.outputs.version }}" in text
    assert "org.opencontainers.image.version" not in text, "labels come from the Dockerfiles"
    assert "scripts/release_notes.py" in text


def test_running_services_report_the_version(backend: Server, piper_tts: Server) -> None:
    health = httpx.get(backend.url + "/health", timeout=30).json()
    assert health["version"] == VERSION
    metrics = httpx.get(backend.url + "/metrics", timeout=10).text
    assert _label(metrics, "ef_build_info", version=VERSION)

    tts_health = httpx.get(piper_tts.url + "/health", timeout=30).json()
    assert (tts_health["version"], tts_health["device"]) == (VERSION, "cpu")
    tts_metrics = httpx.get(piper_tts.url + "/metrics", timeout=10).text
    assert _label(tts_metrics, "ef_tts_build_info", version=VERSION, engine="piper", device="cpu")


def test_image_build_argument_reaches_health_and_metrics(backend_factory: BackendFactory) -> None:
    """In an image EF_VERSION comes from the build argument; both reports follow it."""
    server = backend_factory(EF_VERSION="7.8.9", EF_COMMIT="abc1234")
    health = httpx.get(server.url + "/health", timeout=30).json()
    assert (health["version"], health["commit"]) == ("7.8.9", "abc1234")
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert _label(metrics, "ef_build_info", version="7.8.9", commit="abc1234")
