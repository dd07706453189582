"""The benchmark itself keeps working: a short run of bench/run.py against the real backend.

Speed is never asserted here (docs/performance.md holds the figures); this checks that every
part of the harness runs (servers, wrk, the OTLP sink, the in-process driver with the app's
lifespan) and that it reports every configuration it was asked for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("off", "metrics", "all")


def test_a_short_benchmark_run_reports_every_configuration(tmp_path: Path) -> None:
    """wrk comes with ``make system-deps`` (part of ``make test``)."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench/run.py"),
            "--configs",
            ",".join(CONFIGS),
            "--rounds",
            "1",
            "--bursts",
            "1",
            "--duration",
            "1",
            "--warmup",
            "0.5",
            "--inprocess-requests",
            "300",
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
        # One row per configuration in each table: the server's and the in-process one.
        rows = re.findall(rf"^\| {config} \|", proc.stdout, flags=re.M)
        assert len(rows) == 2, (config, proc.stdout)
    data = json.loads(out.read_text())
    for config in CONFIGS:
        assert data["req_per_s"][config][0] > 0
        assert data["server_cpu_us_per_request"][config][0] > 0
        assert len(data["inprocess_runs_cpu_us_per_request"][config]) == 3
    assert re.search(r"^\| metrics \|.*<= 10%: (met|MISSED) \|$", proc.stdout, flags=re.M)
    assert re.search(r"^\| all \|.*<= 20%: (met|MISSED) \|$", proc.stdout, flags=re.M)
