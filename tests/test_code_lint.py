"""The Python code passes the checks of `make lint`: ruff (lint and format) and mypy (strict
settings from pyproject.toml). Part of `make test` so that CI's one entry point enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = [
    "backend/ef_backend",
    "tts/ef_tts",
    "common/ef_common",
    "monitoring/disk-exporter/ef_disk_exporter",
]
FORMATTED = ["backend", "tts", "common", "monitoring", "tests", "bench"]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=REPO)


def test_ruff_check() -> None:
    result = _run(BIN / "ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(BIN / "ruff", "format", "--check", *FORMATTED)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_packages() -> None:
    result = _run(BIN / "mypy", *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_monitoring_mixin() -> None:
    result = _run(BIN / "mypy", "--explicit-package-bases", "-p", "monitoring.mixin")
    assert result.returncode == 0, result.stdout + result.stderr
