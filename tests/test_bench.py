"""The instrumentation benchmark keeps working: a short run of bench/instrumentation.py.

Speed is never asserted here (docs/performance.md holds the figures); this checks that every
part of the harness runs (ef_tts, one backend per configuration with its cache hit primed, the
OTLP sink, wrk) and that it reports every configuration it was asked for.
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


def test_a_short_benchmark_run_reports_every_configuration(tmp_path: Path) -> None:
    """wrk comes with ``make system-deps`` (part of ``make test``)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/instrumentation.py"),
            "--configs",
            ",".join(CONFIGS),
            "--rounds",
            "1",
            "--duration",
            "1",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
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
