"""The benchmarks keep working: short runs of bench/instrumentation.py,
bench/alert_detection.py and bench/scrape.py.

Speed is never asserted here (docs/performance.md holds the figures); this checks that every
part of a harness runs (ef_tts, one backend per configuration with its cache hit primed, the
OTLP sink, wrk; the whole alert path down to the SMTP server) and that it reports what it was
asked for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("off", "metrics", "all")

pytestmark = [pytest.mark.server, pytest.mark.slow]


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bench/<script> args`` to completion; fails with the end of its stderr."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_a_short_benchmark_run_reports_every_configuration(tmp_path: Path) -> None:
    """wrk comes with ``make system-deps`` (part of ``make test``)."""
    out = tmp_path / "bench.json"
    proc = run_bench(
        "instrumentation.py",
        *("--configs", ",".join(CONFIGS), "--rounds", "1", "--duration", "1", "--json", str(out)),
    )
    for config in CONFIGS:
        assert len(re.findall(rf"^\| {config} \|", proc.stdout, flags=re.M)) == (
            1 if config == "off" else 2
        ), (config, proc.stdout)
    data = json.loads(out.read_text())
    for config in CONFIGS:
        assert data["req_per_s"][config][0] > 0
    assert re.search(
        r"^\| metrics \| [-\d.]+ \| <= 5% \| (met|MISSED) \|$",
        proc.stdout,
        flags=re.M,
    )


def test_a_short_alert_detection_run_times_the_backend_down_email(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    proc = run_bench("alert_detection.py", "--runs", "1", "--json", str(out))
    data = json.loads(out.read_text())
    [run] = data["runs"]
    assert (run["alert"], run["severity"]) == ("EFBackendDown", "critical")
    assert run["subject"] == "[EchoForge] [FIRING:1] EFBackendDown (critical)"
    assert 0 < run["fired"] < run["seconds"] == data["measured_s"]["median"]
    # The intervals are read from the configuration that ran: the e2e test's shortened ones.
    assert data["computed_s"]["shortened"] == {
        "scrape": 1,
        "evaluation": 1,
        "hold": 2,
        "group_wait": 1,
        "best": 3,
        "worst": 6,
    }
    assert re.search(
        r"^\| shortened \(e2e test's\) \| 1 s \| 1 s \| 2 s \| 1 s \| 3 s - 6 s \| "
        r"[\d.]+ / [\d.]+ / [\d.]+ s \(n = 1\) \|$",
        proc.stdout,
        flags=re.M,
    ), proc.stdout


def test_a_short_scrape_run_reports_fifty_routes_and_the_series_at_each_checkpoint(
    tmp_path: Path,
) -> None:
    out = tmp_path / "scrape.json"
    proc = run_bench("scrape.py", "--requests", "1000", "--scrapes", "3", "--json", str(out))
    data = json.loads(out.read_text())
    points = data["checkpoints"]
    assert set(points) == {"start-up", "one pass of the mix", "half", "all"}
    # 50 templates served traffic, plus the one label of every unknown path.
    routes = points["all"]["routes"]
    assert len(routes) == 51 and "<unmatched>" in routes, routes
    assert "/api/bench/r00/{item_id}" in routes and "/openapi.json" in routes
    assert points["all"]["requests"] >= 1000
    assert points["all"]["p95_ms"] > 0 and points["all"]["server_mean_ms"] > 0
    assert points["all"]["content_type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert re.search(
        rf"^\| series bounded \(half = all\) \| {points['half']['series']} = "
        rf"{points['all']['series']} \| (met|MISSED) \|$",
        proc.stdout,
        flags=re.M,
    ), proc.stdout
    assert re.search(r"^\| p95 < 20 ms \| [\d.]+ ms \| (met|MISSED) \|$", proc.stdout, flags=re.M)
