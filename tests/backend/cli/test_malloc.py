"""`ef serve` limits glibc's malloc arenas (the soak's memory creep), unless the operator did."""

from __future__ import annotations

import subprocess
import sys

from tests.utils.procs import make_env

PROBE = (
    "import os; from ef_backend.cli.malloc import limit_arenas; "
    "print(limit_arenas(), os.environ['MALLOC_ARENA_MAX'])"
)


def _probe(**env: str) -> str:
    clean = make_env()
    clean.pop("MALLOC_ARENA_MAX", None)  # only the test's own value
    clean.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_the_server_and_its_workers_get_two_arenas() -> None:
    assert _probe() == "True 2"


def test_an_operators_own_setting_wins() -> None:
    assert _probe(MALLOC_ARENA_MAX="4") == "False 4"
