"""Run the installed ``ef`` command as an operator would, and read its JSON."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.utils.procs import REPO, VENV_BIN, make_env


@dataclass
class Ran:
    """What one ``ef`` invocation did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def ef(*args: str, env: Mapping[str, str] | None = None, cwd: Path = REPO) -> Ran:
    """``ef ARGS`` with only ``env`` as EF_* settings (nothing leaks in from the test run)."""
    result = subprocess.run(
        [str(VENV_BIN / "ef"), *args],
        env=make_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Ran(result.returncode, result.stdout, result.stderr)


def env_for(data: Path, **extra: str) -> dict[str, str]:
    """The environment of ``ef`` for the data directory ``data``."""
    return {"EF_DATA_DIR": str(data), **extra}
