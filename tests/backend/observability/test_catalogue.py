"""docs/metrics.md is the truth: the live services export exactly what it lists.

The real backend (after one speech request, so that every labelled family has a series), the
real Piper ef_tts and the real disk exporter are scraped; every documented family must be there
with its type, nothing undocumented may be, and ``promtool check metrics`` must be clean. The
"alerts" and "dashboards" columns must say what the monitoring mixin really reads.
"""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from monitoring.mixin.usage import usage
from tests.backend.api.helpers import unique_text
from tests.backend.observability.support import (
    documented_metrics,
    exposed_families,
    section_families,
)
from tests.utils.procs import VENV_BIN, Server, free_port, start_server

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROCESS = section_families("Process")
PROCESS_ONLY = {k: v for k, v in PROCESS.items() if k.startswith("process_")}


def scrape(url: str) -> str:
    response = httpx.get(url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def promtool_problems(text: str) -> str:
    proc = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr


def compare(live: dict[str, str], documented: dict[str, str], service: str) -> None:
    missing = sorted(set(documented) - set(live))
    undocumented = sorted(set(live) - set(documented))
    wrong_type = sorted(
        f"{name}: live {live[name]}, documented {documented[name]}"
        for name in set(live) & set(documented)
        if live[name] != documented[name]
    )
    assert not missing, f"{service}: documented in docs/metrics.md but not exported: {missing}"
    assert not undocumented, f"{service}: exported but not in docs/metrics.md: {undocumented}"
    assert not wrong_type, f"{service}: type differs from docs/metrics.md: {wrong_type}"


@pytest.fixture(scope="module")
def disk_exporter(tmp_path_factory: pytest.TempPathFactory) -> Server:
    workdir = tmp_path_factory.mktemp("disk")
    port = free_port()
    server = start_server(
        "ef_disk_exporter-catalogue",
        [str(VENV_BIN / "ef-disk-exporter")],
        port=port,
        log_dir=workdir,
        env={
            "EF_DISK_PATHS": str(workdir),
            "EF_DISK_EXPORTER_HOST": "127.0.0.1",
            "EF_DISK_EXPORTER_PORT": str(port),
        },
    )
    try:
        yield server.wait_ready("/metrics", timeout=30)
    finally:
        server.stop()


@pytest.mark.server
def test_backend_exports_exactly_the_documented_families(backend: Server) -> None:
    with httpx.Client(base_url=backend.url, timeout=60) as client:
        spoken = client.post("/api/v1/speech", json={"text": unique_text("Catalogue check")})
        assert spoken.status_code == 200, spoken.text
    text = scrape(backend.url)
    documented = section_families("ef_backend") | PROCESS
    compare(exposed_families(text), documented, "ef_backend")
    assert promtool_problems(text) == ""


@pytest.mark.server
def test_tts_exports_exactly_the_documented_families(piper_tts: Server) -> None:
    text = scrape(piper_tts.url)
    documented = section_families("ef_tts") | PROCESS
    compare(exposed_families(text), documented, "ef_tts")
    assert promtool_problems(text) == ""


@pytest.mark.server
def test_disk_exporter_exports_exactly_the_documented_families(disk_exporter: Server) -> None:
    text = scrape(disk_exporter.url)
    documented = section_families("ef_disk_exporter") | PROCESS_ONLY
    compare(exposed_families(text), documented, "ef_disk_exporter")
    assert promtool_problems(text) == ""


def test_used_by_columns_match_the_alerts_and_dashboards() -> None:
    """docs/metrics.md says what the mixin reads (``python -m monitoring.mixin --usage``)."""
    used = usage()
    rows = {m.name: m for m in documented_metrics()}
    stale = []
    for name, m in rows.items():
        alerts, boards = used.get(name, ([], []))
        if (list(m.alerts), list(m.dashboards)) != (list(alerts), list(boards)):
            stale.append(
                f"{name}: docs say alerts={list(m.alerts)} dashboards={list(m.dashboards)}, "
                f"the mixin reads it in alerts={alerts} dashboards={boards}"
            )
    assert not stale, "update docs/metrics.md:\n" + "\n".join(stale)
    ours = [n for n in used if n.startswith(("ef_", "process_", "python_"))]
    undocumented = sorted(set(ours) - set(rows))
    assert not undocumented, f"alerts or dashboards read undocumented metrics: {undocumented}"


def test_every_documented_name_follows_the_conventions() -> None:
    for metric in documented_metrics():
        name, kind = metric.name, metric.type
        assert kind in {"counter", "gauge", "histogram"}, f"{name}: unknown type {kind}"
        if kind == "counter":
            assert name.endswith("_total"), f"{name}: a counter ends in _total"
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        assert not name.endswith(("_milliseconds", "_ms", "_kb", "_mb")), f"{name}: base units"
    names = [m.name for m in documented_metrics()]
    assert len(names) == len(set(names)), "a metric is documented twice"
