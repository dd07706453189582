"""The end-to-end benchmarks keep working: short runs of bench/cache_hit.py,
bench/proxy_cache_hit.py, bench/synthesis.py, bench/engine_load.py, bench/capacity.py and
bench/soak.py.

Speed is never asserted (docs/performance.md and docs/reliability.md hold the figures); this
checks that the harness starts its stack, loads it and reports every row it promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _run(args: list[str], tmp_path: Path) -> tuple[str, dict[str, object]]:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, *args, "--json", str(out), "--keep", str(tmp_path / "work")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_a_short_cache_hit_run_reports_every_route(tmp_path: Path) -> None:
    stdout, data = _run(["bench/cache_hit.py", "--rounds", "1", "--duration", "1"], tmp_path)
    for route in ("speech", "openai", "job_audio"):
        assert f"| {route} |" in stdout
    ratios = data["ratios"]
    assert isinstance(ratios, dict) and set(ratios) == {"speech", "openai", "job_audio"}
    assert all(value[0] > 0 for value in ratios.values())


def test_a_short_proxy_cache_hit_run_reports_every_route(tmp_path: Path) -> None:
    """Real nginx (Debian's, ``make system-deps``) with the project's templates."""
    stdout, data = _run(["bench/proxy_cache_hit.py", "--rounds", "1", "--duration", "1"], tmp_path)
    routes = ("speech", "openai", "job_audio")
    for route in routes:
        assert f"| {route}/static |" in stdout
    assert "| backend/static (context) |" in stdout
    ratios = data["ratios"]
    assert isinstance(ratios, dict)
    assert set(ratios) == {f"{route}/static" for route in routes} | {"backend/static"}
    assert all(value[0] > 0 for value in ratios.values())
    cpu = data["cpu_us_per_request"]
    assert isinstance(cpu, dict) and len(cpu) == 2 * len(routes) + 1
    proxied = data["proxied_hits"]
    assert isinstance(proxied, dict) and set(proxied) == set(routes)
    assert all(isinstance(count, int) and count > 0 for count in proxied.values())


def test_a_short_synthesis_run_reports_every_ratio(tmp_path: Path) -> None:
    stdout, data = _run(["bench/synthesis.py", "--iterations", "1"], tmp_path)
    ratios = data["ratios"]
    expected = {"short_p50", "short_p95", "para_p50", "para_p95", "first_audio"}
    assert isinstance(ratios, dict) and set(ratios) == expected
    for name in expected:
        assert f"| {name} |" in stdout
    seconds = data["seconds"]
    assert isinstance(seconds, dict)
    assert all(len(values) == 1 and values[0] > 0 for values in seconds.values())
    assert all(value > 0 for value in ratios.values())


def test_a_short_engine_load_run_reports_busy_time_and_scaling(tmp_path: Path) -> None:
    stdout, data = _run(["bench/engine_load.py", "--workers", "1", "--per-worker", "2"], tmp_path)
    assert "Engine busy:" in stdout and "Replicas:" in stdout
    busy, scaling = data["busy"], data["scaling"]
    assert isinstance(busy, float) and 0 < busy <= 1
    assert isinstance(scaling, float) and scaling > 0


def test_a_short_capacity_run_coalesces_and_reports_memory(tmp_path: Path) -> None:
    stdout, data = _run(["bench/capacity.py", "--requests", "1000"], tmp_path)
    assert "Coalescing:" in stdout and "Memory:" in stdout
    coalescing = data["coalescing"]
    assert isinstance(coalescing, dict)
    assert coalescing["statuses"] == [200] and coalescing["syntheses"] == 1
    memory = data["memory_mb"]
    assert isinstance(memory, dict)
    assert all(memory[name] > 0 for name in ("idle", "loaded", "ef_tts"))
    assert memory["requests"] >= 1000


def test_a_short_soak_reports_its_verdicts(tmp_path: Path) -> None:
    stdout, data = _run(
        ["bench/soak.py", "--duration", "8", "--warmup", "2", "--sample", "1", "--clients", "2"],
        tmp_path,
    )
    verdicts = data["verdicts"]
    assert isinstance(verdicts, dict) and len(verdicts) == 5
    assert "| zero unexpected errors |" in stdout and data["unexpected"] == []
