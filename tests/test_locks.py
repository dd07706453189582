"""The dependency locks (requirements/<env>.txt, `make lock`) cover what the packages declare:
every dependency of every package an environment installs is pinned there, at a version the
declaration allows, with hashes. A dependency added to a pyproject.toml without `make lock`
fails here (the installs use --no-deps, so it would be missing at run time)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "requirements"
ENVS = sorted(p.stem for p in LOCKS.glob("*.in"))
#: The platform the locks are resolved for (Makefile: --python-version 3.11, Linux x86_64).
MARKERS = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


def _inputs(in_file: Path) -> list[Requirement]:
    """What an .in file asks for: local packages (with extras) expanded, -r files followed."""
    wanted: list[Requirement] = []
    for raw in in_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            wanted += _inputs((in_file.parent / line[3:].strip()).resolve())
        elif line.startswith("./"):
            match = re.fullmatch(r"\./([\w/-]+)(?:\[([\w,]+)\])?", line)
            assert match, line
            project = tomllib.loads((REPO / match[1] / "pyproject.toml").read_text())["project"]
            wanted += [Requirement(r) for r in project.get("dependencies", [])]
            for extra in (match[2] or "").split(","):
                if extra:
                    optional = project["optional-dependencies"][extra]
                    wanted += [Requirement(r) for r in optional]
        else:
            wanted.append(Requirement(line))
    return [r for r in wanted if not canonicalize_name(r.name).startswith("ef-")]


def _locked(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    for block in blocks:
        if re.match(r"[A-Za-z0-9._-]+==", block):
            assert "--hash=sha256:" in block, f"{lock.name}: no hash for {block.split()[0]}"
    return {canonicalize_name(name): version for name, version in pins.items()}


@pytest.mark.parametrize("env", ENVS)
def test_lock_pins_every_declared_dependency(env: str) -> None:
    lock = LOCKS / f"{env}.txt"
    assert lock.exists(), f"run `make lock`: {lock.name} is missing"
    locked = _locked(lock)
    problems = []
    for requirement in _inputs(LOCKS / f"{env}.in"):
        if requirement.marker and not requirement.marker.evaluate(MARKERS):
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement}: the lock has {version}")
    assert not problems, f"{lock.name} is stale, run `make lock`: {problems}"


def test_every_environment_has_a_lock_and_no_local_package_is_locked() -> None:
    assert set(ENVS) == {"backend", "engine-piper", "engine-coqui", "dev", "disk-exporter"}
    for env in ENVS:
        assert not any(name.startswith("ef-") for name in _locked(LOCKS / f"{env}.txt")), env
