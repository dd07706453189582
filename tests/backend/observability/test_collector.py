"""The scrape-time collector reads the real queue, cache and database of a Runtime.

The service is built for real (migrated SQLite in a temp dir, its queue and cache); it is not
started, because these gauges must be right without workers too. Jobs and cache entries are
written through the service's own queue and cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ef_backend.core.config import Settings
from ef_backend.core.db import migrate
from ef_backend.models import AudioFormat
from ef_backend.observability.collector import EchoForgeCollector, sqlite_path
from ef_backend.services.runtime import Runtime
from prometheus_client import CollectorRegistry, generate_latest

from tests.backend.observability.support import samples, value
from tests.utils.jobs import new_job


@pytest.fixture
def service(tmp_path: Path) -> Runtime:
    settings = Settings(
        data_dir=tmp_path / "data",
        queue_max=70,
        cache_max_bytes=10_000_000,
        version="9.9.9",
        commit="abc1234",
    )
    migrate(settings)
    svc = Runtime(settings=settings)
    yield svc
    svc.db_engine.dispose()


def scrape(svc: Runtime | None, settings: Settings) -> str:
    registry = CollectorRegistry()
    registry.register(EchoForgeCollector(settings, lambda: svc))
    return generate_latest(registry).decode()


def db_files_size(settings: Settings) -> int:
    path = sqlite_path(settings.db_url)
    assert path is not None
    total = 0
    for candidate in (path, Path(f"{path}-wal")):
        if candidate.exists():
            total += os.stat(candidate).st_size
    return total


def test_queue_depth_and_oldest_age_follow_the_queue(service: Runtime) -> None:
    settings = service.settings
    empty = scrape(service, settings)
    assert value(empty, "ef_tts_queue_depth") == 0
    assert value(empty, "ef_tts_queue_max") == 70
    assert value(empty, "ef_tts_queue_oldest_age_seconds") == 0
    for i in range(3):
        service.queue.enqueue(new_job(f"waiting job {i}"))
    busy = scrape(service, settings)
    assert value(busy, "ef_tts_queue_depth") == 3
    assert value(busy, "ef_tts_queue_oldest_age_seconds") >= 0
    job = service.queue.claim("worker-1")
    assert job is not None
    assert value(scrape(service, settings), "ef_tts_queue_depth") == 2


def test_cache_gauges_follow_the_cache(service: Runtime) -> None:
    settings = service.settings
    before = scrape(service, settings)
    assert value(before, "ef_audio_cache_entries") == 0
    assert value(before, "ef_audio_cache_size_bytes") == 0
    assert value(before, "ef_audio_cache_max_bytes") == 10_000_000
    service.cache.put("a" * 64, AudioFormat.wav, b"R" * 1000, duration_s=0.1)
    service.cache.put("b" * 64, AudioFormat.wav, b"R" * 2500, duration_s=0.2)
    after = scrape(service, settings)
    assert value(after, "ef_audio_cache_entries") == 2
    assert value(after, "ef_audio_cache_size_bytes") == 3500


def test_a_scrape_writes_nothing_the_hits_stay_pending_for_the_flusher(service: Runtime) -> None:
    service.cache.put("c" * 64, AudioFormat.wav, b"R" * 1000, duration_s=0.1)
    assert service.cache.get("c" * 64) is not None  # a hit: recency and count kept in memory
    scraped = scrape(service, service.settings)
    assert value(scraped, "ef_audio_cache_entries") == 1
    assert service.admin.cache_stats(flush=False)["hits"] == 0
    assert service.cache.flush() == 1  # still pending after the scrape: the flusher writes it
    assert service.admin.cache_stats()["hits"] == 1


def test_db_size_is_file_plus_wal_and_grows_with_writes(service: Runtime) -> None:
    settings = service.settings
    before = value(scrape(service, settings), "ef_db_size_bytes")
    assert before == db_files_size(settings) > 0
    for i in range(40):
        service.queue.enqueue(new_job(f"a job that makes the database grow, number {i} " * 20))
    after = value(scrape(service, settings), "ef_db_size_bytes")
    assert after > before
    assert after == db_files_size(settings)


def test_db_up_reflects_a_real_probe(service: Runtime) -> None:
    settings = service.settings
    assert value(scrape(service, settings), "ef_db_up") == 1
    # Corrupt the database file: the SELECT 1 probe fails and the gauge says so.
    path = sqlite_path(settings.db_url)
    assert path is not None
    service.db_engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    assert value(scrape(service, settings), "ef_db_up") == 0


def test_without_a_service_only_build_and_probe_state_are_reported(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "empty", version="1.2.3", commit="deadbee")
    text = scrape(None, settings)
    found = {name for name, _ in samples(text)}
    assert found == {"ef_build_info", "ef_db_size_bytes", "ef_db_up", "ef_audio_cache_writable"}
    assert value(text, "ef_build_info", version="1.2.3", commit="deadbee") == 1
    assert value(text, "ef_db_up") == 0
    assert value(text, "ef_audio_cache_writable") == 0  # no service yet: not ready either


def test_build_info_labels(service: Runtime) -> None:
    text = scrape(service, service.settings)
    assert value(text, "ef_build_info", version="9.9.9", commit="abc1234") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////data/db.sqlite", Path("/data/db.sqlite")),
        ("sqlite+pysqlite:///rel/db.sqlite?timeout=5", Path("rel/db.sqlite")),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://ef@db/ef", None),
    ],
)
def test_sqlite_path(url: str, expected: Path | None) -> None:
    assert sqlite_path(url) == expected
