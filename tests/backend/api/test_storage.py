"""Storage faults told apart from engine faults, on real backends.

A full or read-only cache cannot be made here without root's mount rights, so the cache's shard
directories are replaced by plain files: every write and delete below them then fails with an
``OSError``, as on a read-only file system (root ignores permission bits, so chmod would not do).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.backend.api.helpers import client_for, decode, error_of, unique_text, wait_job
from tests.backend.conftest import BackendFactory

pytestmark = pytest.mark.server


def _block_writes(cache: Path) -> None:
    """Every shard name a file: nothing can be written below the cache any more (the shards
    already there are moved aside)."""
    for n in range(256):
        shard = cache / f"{n:02x}"
        if shard.exists():
            shard.rename(cache / f"aside-{n:02x}")
        shard.write_text("not a directory")


def test_audio_made_but_not_stored_is_still_answered(
    backend_factory: BackendFactory, tmp_path: Path
) -> None:
    data = tmp_path / "unstorable"
    server = backend_factory(data)
    with client_for(server) as client:
        before = client.post("/api/v1/speech", json={"text": unique_text("Stored first")})
        assert before.status_code == 200, before.text
        _block_writes(data / "audio-cache")

        spoken = client.post("/api/v1/speech", json={"text": unique_text("Made, not stored")})
        assert spoken.status_code == 200, spoken.text
        assert spoken.headers["x-ef-cache"] == "miss"
        assert spoken.headers["x-ef-stored"] == "no"
        assert decode(spoken.content).duration_s > 0.3
        # The job says why it could not be kept: storage, not the engine.
        job = client.get(f"/api/v1/jobs/{spoken.headers['x-ef-job-id']}").json()
        assert job["status"] == "failed" and job["error_reason"] == "storage", job
        assert "could not be stored" in job["error"]

        streamed = client.post(
            "/api/v1/speech",
            json={"text": unique_text("Streamed, not stored"), "stream": True, "format": "wav"},
        )
        assert streamed.status_code == 200, streamed.text
        assert decode(streamed.content).duration_s > 0.3

        queued = client.post("/api/v1/jobs", json={"text": unique_text("Queued, not stored")})
        failed = wait_job(client, queued.json()["id"], until=("failed",))
        assert failed["error_reason"] == "storage"


def test_a_purge_that_cannot_delete_answers_507_and_keeps_the_rows(
    backend_factory: BackendFactory, tmp_path: Path
) -> None:
    data = tmp_path / "undeletable"
    server = backend_factory(data)
    cache = data / "audio-cache"
    with client_for(server) as client:
        for n in range(3):
            assert client.post("/api/v1/speech", json={"text": unique_text(f"Kept {n}")}).is_success
        entries = client.get("/api/admin/cache").json()["entries"]
        assert entries >= 3
        shards = sorted(p for p in cache.iterdir() if p.is_dir())
        for shard in shards:
            shard.rename(shard.with_name(shard.name + ".aside"))
            shard.write_text("not a directory")
        try:
            purge = client.delete("/api/admin/cache")
            assert purge.status_code == 507, purge.text
            error = error_of(purge)
            assert error["code"] == "storage_error"
            assert str(error["message"]).startswith("Cannot delete cached audio")
            assert str(error["message"]).endswith("Is the audio cache read-only?")
            assert client.get("/api/admin/cache").json()["entries"] == entries  # still counted
        finally:
            for shard in shards:
                shard.unlink()
                shard.with_name(shard.name + ".aside").rename(shard)
        assert client.delete("/api/admin/cache").json()["removed"] == entries


def test_readiness_checks_free_space(backend_factory: BackendFactory) -> None:
    server = backend_factory(ready_path="/health/live", EF_MIN_FREE_BYTES=str(10**18))
    with client_for(server) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        cache = ready.json()["checks"]["cache"]
        assert cache["status"] == "fail"
        assert cache["error"] == "less free space than EF_MIN_FREE_BYTES"
        assert cache["detail"]["min_free_bytes"] == 10**18


def test_health_probes_neither_write_nor_wait_for_the_write_lock(
    backend_factory: BackendFactory, tmp_path: Path
) -> None:
    """Another writer holds SQLite's write lock: readiness still answers at once."""
    data = tmp_path / "locked"
    server = backend_factory(data)
    cache = data / "audio-cache"
    writer = sqlite3.connect(data / "db.sqlite", timeout=1)
    try:
        writer.execute("BEGIN IMMEDIATE")
        mtime = cache.stat().st_mtime_ns
        with client_for(server) as client:
            # (The old write probe waited out SQLite's 15 s busy timeout, then failed.)
            ready = client.get("/health/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["database"]["status"] == "ok"
        assert cache.stat().st_mtime_ns == mtime  # no probe file created and removed
    finally:
        writer.rollback()
        writer.close()
