"""Several uvicorn workers: metrics are summed over workers, or the service refuses to start."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from ef_backend.core.config import Settings
from ef_backend.observability import multiprocess

from tests.backend.observability.support import exposed_families, section_families, value
from tests.utils.procs import (
    REPO,
    Server,
    free_port,
    make_env,
    start_ef_backend,
)


@pytest.mark.server
@pytest.mark.slow
def test_two_workers_report_the_sum_of_their_counters(tmp_path: Path) -> None:
    """No engine is needed here: the backend answers /health/live and /metrics without one."""
    data_dir = tmp_path / "two-workers"
    server = start_ef_backend(
        "ef_backend-2-workers",
        tmp_path / "logs",
        data_dir=data_dir,
        tts_url=f"http://127.0.0.1:{free_port()}",
        env={"EF_WORKERS": "2", "EF_RATE_LIMIT": "0"},
    )
    try:
        server.wait_ready("/health/live", timeout=60)
        _check_sums(server, data_dir)
    finally:
        server.stop()


def _check_sums(server: Server, data_dir: Path) -> None:
    route = {"method": "GET", "route": "/health/live", "status": "200"}
    # A new connection per request, so that the kernel spreads them over both workers.
    with httpx.Client(base_url=server.url, timeout=10, headers={"Connection": "close"}) as client:
        base = value(client.get("/metrics").text, "ef_http_requests_total", **route)
        for _ in range(200):
            assert client.get("/health/live").status_code == 200
        scrapes = [client.get("/metrics").text for _ in range(6)]
    counts = [value(text, "ef_http_requests_total", **route) for text in scrapes]
    assert counts == [base + 200] * 6, f"whichever worker answers, it sums both: {counts}"
    for text in scrapes:
        assert 1 <= value(text, "ef_http_requests_in_progress") <= 2
        assert value(text, "ef_db_up") == 1
    families = exposed_families(scrapes[0])
    documented = section_families("ef_backend") | section_families("Process")
    assert set(families) <= set(documented), set(families) - set(documented)
    assert {"ef_http_requests_total", "ef_db_size_bytes", "ef_build_info"} <= set(families)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=scrapes[0], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    pids = {
        m.group(1)
        for f in (data_dir / "prometheus-multiproc").glob("*.db")
        if (m := re.search(r"_(\d+)\.db$", f.name))
    }
    assert len(pids) >= 2, f"both workers wrote samples: {sorted(pids)}"


def test_several_workers_without_multiprocess_mode_refuse_to_start(tmp_path: Path) -> None:
    code = (
        "from ef_backend.core.config import Settings\n"
        "from ef_backend.main import create_app\n"
        f"create_app(Settings(workers=3, data_dir={str(tmp_path)!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=make_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "MultiprocessConfigError: EF_WORKERS=3 but Prometheus multiprocess mode is off" in (
        proc.stderr
    )
    assert "ef serve" in proc.stderr


def test_a_foreign_directory_is_refused_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROMETHEUS_MULTIPROC_DIR pointed at the data directory: the database survives."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "db.sqlite").write_bytes(b"SQLite format 3\0")
    monkeypatch.setenv(multiprocess.ENV, str(data))
    with pytest.raises(multiprocess.MultiprocessConfigError, match="was not made by EchoForge"):
        multiprocess.prepare(Settings(workers=2, data_dir=data))
    assert (data / "db.sqlite").read_bytes() == b"SQLite format 3\0"


def test_our_directory_is_emptied_of_stale_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setenv first, so that monkeypatch restores the variable's absence afterwards: prepare()
    # exports it itself, and a leaked value would send every later test backend into one
    # shared metrics directory (each start empties the others' samples).
    monkeypatch.setenv(multiprocess.ENV, "")
    monkeypatch.delenv(multiprocess.ENV)
    settings = Settings(workers=2, data_dir=tmp_path)
    first = multiprocess.prepare(settings)
    assert first is not None and (first / multiprocess.MARKER).exists()
    (first / "counter_123.db").write_bytes(b"stale")
    monkeypatch.setenv(multiprocess.ENV, str(first))
    assert multiprocess.prepare(settings) == first
    assert sorted(p.name for p in first.iterdir()) == [multiprocess.MARKER]
    # An empty directory of the operator's is taken over (and marked).
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(multiprocess.ENV, str(empty))
    assert multiprocess.prepare(settings) == empty
    assert (empty / multiprocess.MARKER).exists()
