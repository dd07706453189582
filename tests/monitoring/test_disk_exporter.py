"""The disk exporter as a real process: values read at scrape time, failures visible, lint clean."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.support import PROMTOOL
from tests.utils.procs import Server, free_port, make_env, start_server

EXPORTER = [sys.executable, "-m", "ef_disk_exporter"]


def _start(tmp_path: Path, paths: str) -> Server:
    port = free_port()
    return start_server(
        "disk-exporter",
        EXPORTER,
        port=port,
        log_dir=tmp_path / "logs",
        env={"EF_DISK_PATHS": paths, "EF_DISK_EXPORTER_PORT": str(port)},
    ).wait_ready("/metrics", timeout=30)


def _samples(server: Server) -> dict[tuple[str, str], float]:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return {
        (sample.name, sample.labels.get("path", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    present = tmp_path / "data"
    present.mkdir()
    later = tmp_path / "later"
    server = _start(tmp_path, f"{present},{later}")
    try:
        yield server, present, later
    finally:
        server.stop()


@pytest.mark.server
def test_values_match_the_file_system(watched: tuple[Server, Path, Path]) -> None:
    server, present, _ = watched
    samples = _samples(server)
    usage = psutil.disk_usage(str(present))
    path = str(present)
    assert samples[("ef_disk_size_bytes", path)] == usage.total
    # Other processes write meanwhile: used and free agree with psutil to within 64 MiB.
    assert abs(samples[("ef_disk_used_bytes", path)] - usage.used) < 64 * 1024**2
    assert abs(samples[("ef_disk_free_bytes", path)] - usage.free) < 64 * 1024**2
    ratio = samples[("ef_disk_used_ratio", path)]
    assert 0.0 <= ratio <= 1.0
    assert abs(ratio - usage.used / (usage.used + usage.free)) < 0.01
    st = os.statvfs(path)
    if st.f_files:
        assert samples[("ef_disk_inodes", path)] == st.f_files
        assert 0 < samples[("ef_disk_inodes_free", path)] <= st.f_files
    assert 0 < samples[("ef_disk_exporter_scrape_duration_seconds", "")] < 10


@pytest.mark.server
def test_read_at_scrape_time_and_failures_visible(watched: tuple[Server, Path, Path]) -> None:
    """A path that does not exist yet: up is 0 and its series are absent; once the directory
    exists the very next scrape reads it (nothing cached from start-up)."""
    server, present, later = watched
    before = _samples(server)
    assert before[("ef_disk_exporter_up", "")] == 0
    assert ("ef_disk_size_bytes", str(later)) not in before
    assert ("ef_disk_size_bytes", str(present)) in before  # the readable path still reported
    later.mkdir()
    after = _samples(server)
    assert after[("ef_disk_exporter_up", "")] == 1
    assert after[("ef_disk_size_bytes", str(later))] > 0
    assert "cannot read disk usage of " + str(later) in server.log()


@pytest.mark.server
def test_promtool_finds_no_lint_problem(watched: tuple[Server, Path, Path]) -> None:
    server, _, _ = watched
    text = httpx.get(server.url + "/metrics", timeout=5).text
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EF_DISK_PATHS": "data"}, "EF_DISK_PATHS entries must be absolute paths, got 'data'"),
        ({"EF_DISK_PATHS": " , "}, "EF_DISK_PATHS is empty"),
        ({"EF_DISK_EXPORTER_PORT": "http"}, "EF_DISK_EXPORTER_PORT must be a number, got 'http'"),
        ({"EF_DISK_EXPORTER_PORT": "70000"}, "EF_DISK_EXPORTER_PORT must be 1-65535, got 70000"),
    ],
)
def test_bad_settings_exit_with_a_clear_message(env: dict[str, str], message: str) -> None:
    result = subprocess.run(EXPORTER, env=make_env(env), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
