"""The ef_tts metrics the alerts need: the configured model load time and the memory limit."""

from __future__ import annotations

from pathlib import Path

from ef_tts import metrics
from ef_tts.config import Settings
from ef_tts.runtime import EngineRuntime
from prometheus_client import REGISTRY


def test_the_configured_load_time_is_exported() -> None:
    """EFTTSNotReady and EFBackendNotReady read it: a load within it pages nobody."""
    runtime = EngineRuntime(Settings(engine="piper", model_load_max_s=1234))
    try:
        engine, model = runtime.labels
        value = REGISTRY.get_sample_value(
            "ef_tts_engine_model_load_max_seconds", {"engine": engine, "model": model}
        )
        assert value == 1234.0
    finally:
        runtime.close()


def test_load_time_default_allows_a_first_coqui_download() -> None:
    assert Settings().model_load_max_s == 900.0


def test_memory_limit_from_cgroup_v2(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("2147483648\n")
    assert metrics.cgroup_memory_limit(tmp_path) == 2 * 1024**3
    (tmp_path / "memory.max").write_text("max\n")
    assert metrics.cgroup_memory_limit(tmp_path) == 0


def test_memory_limit_from_cgroup_v1(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("536870912\n")
    assert metrics.cgroup_memory_limit(tmp_path) == 512 * 1024**2
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert metrics.cgroup_memory_limit(tmp_path) == 0  # v1's "no limit"


def test_no_cgroup_no_limit(tmp_path: Path) -> None:
    assert metrics.cgroup_memory_limit(tmp_path) == 0


def test_memory_limit_is_read_at_scrape_time() -> None:
    assert REGISTRY.get_sample_value("ef_tts_memory_limit_bytes") == float(
        metrics.cgroup_memory_limit()
    )
