"""promtool (the Debian prometheus package) checks the config and rules and runs the rule tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.monitoring.support import (
    ALERTS_DIR,
    PROMETHEUS_YML,
    PROMTOOL,
    RECORDING_DIR,
    alert_files,
)
from tests.utils.procs import REPO

pytestmark = pytest.mark.system

RULE_TESTS = sorted((ALERTS_DIR / "tests").glob("*.test.yml"))


def _promtool(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_check_config_loads_every_rule_file() -> None:
    result = _promtool("check", "config", PROMETHEUS_YML)
    assert result.returncode == 0, result.stdout + result.stderr
    # The relative rule_files paths resolve: every generated file is checked, none is missed.
    for path in [*alert_files(), *RECORDING_DIR.glob("*.yml")]:
        assert f"Checking {path}\n" in result.stdout, path


def test_check_rules() -> None:
    result = _promtool("check", "rules", *alert_files(), *sorted(RECORDING_DIR.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests(test_file: Path) -> None:
    result = _promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """The rule tests can fail: the same case with a wrong threshold is reported."""
    source = (ALERTS_DIR / "tests" / "ef-backend.test.yml").read_text()
    relocated = source.replace("../../", f"{REPO}/").replace("../", f"{ALERTS_DIR}/")
    target = tmp_path / "relocated.test.yml"
    target.write_text(relocated)
    assert _promtool("test", "rules", target, cwd=tmp_path).returncode == 0  # same case: passes
    broken = relocated.replace("(threshold 5%;", "(threshold 6%;")
    assert broken != relocated
    target = tmp_path / "broken.test.yml"
    target.write_text(broken)
    result = _promtool("test", "rules", target, cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr
