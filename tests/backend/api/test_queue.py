"""The queue under stress: backpressure (503 + Retry-After, nothing lost) and crash recovery
(``kill -9`` with jobs queued and running, restart on the same data, every job succeeds once)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import (
    client_for,
    decode,
    error_of,
    long_text,
    start_piper_engine,
    unique_text,
    wait_job,
)
from tests.backend.conftest import BackendFactory
from tests.utils.procs import free_port
from tests.utils.prometheus import metric_value

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_backpressure_rejects_with_retry_after_and_loses_nothing(
    backend_factory: BackendFactory,
) -> None:
    server = backend_factory(EF_TTS_CONCURRENCY="1", EF_QUEUE_MAX="2")
    accepted: list[str] = []
    rejected = None
    with client_for(server) as client:
        for _ in range(8):
            response = client.post("/api/v1/jobs", json={"text": long_text(4)})
            if response.status_code == 202:
                accepted.append(response.json()["id"])
                continue
            rejected = response
            break
        assert rejected is not None, "the queue never pushed back"
        assert rejected.status_code == 503, rejected.text
        assert int(rejected.headers["retry-after"]) >= 1
        error = error_of(rejected)
        assert error["code"] == "queue_full"
        assert "EF_QUEUE_MAX" in str(error["message"])
        # The synchronous API pushes back the same way while the queue is full.
        sync = client.post("/api/v1/speech", json={"text": long_text(1)})
        assert sync.status_code == 503
        assert "retry-after" in sync.headers
        # One running plus EF_QUEUE_MAX queued were taken; all of them finish.
        assert len(accepted) >= 2
        for job_id in accepted:
            job = wait_job(client, job_id, timeout=180)
            assert job["attempts"] == 1
        stats = client.get("/api/admin/queue").json()
        assert stats["counts"]["succeeded"] == len(accepted)


def _status(server_url: str, job_id: str) -> str:
    return str(httpx.get(f"{server_url}/api/v1/jobs/{job_id}", timeout=10).json()["status"])


def test_kill_9_loses_no_job_and_finishes_each_once(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    data_dir = session_tmp / "crash-recovery"
    settings = {"EF_TTS_CONCURRENCY": "1", "EF_JOB_LEASE_S": "2"}
    first = backend_factory(data_dir, **settings)
    with client_for(first) as client:
        ids = [
            client.post("/api/v1/jobs", json={"text": long_text(6)}).json()["id"] for _ in range(4)
        ]
        wait_job(client, ids[0], until=("running",))
        states = {job_id: _status(first.url, job_id) for job_id in ids}
    assert "running" in states.values() and "queued" in states.values(), states
    first.kill(signal.SIGKILL)

    second = backend_factory(data_dir, **settings)
    with client_for(second) as client:
        for job_id in ids:
            job = wait_job(client, job_id, timeout=240)
            assert job["sentences_done"] == job["sentences_total"] == 6
            audio = client.get(f"/api/v1/jobs/{job_id}/audio")
            assert audio.status_code == 200
            assert decode(audio.content, "wav").duration_s > 5
        listed = client.get("/api/v1/jobs", params={"limit": 200}).json()
        assert listed["count"] == len(ids)
        assert sorted(j["id"] for j in listed["data"]) == sorted(ids)
        assert {j["status"] for j in listed["data"]} == {"succeeded"}
        # Nothing runs twice after the fact: a little later every job is still succeeded, once.
        time.sleep(1)
        stats = client.get("/api/admin/queue").json()
        assert stats["counts"]["succeeded"] == len(ids)
        assert stats["counts"].get("running", 0) == stats["counts"].get("queued", 0) == 0
        finished_here = metric_value(
            client.get("/metrics").text, "ef_tts_jobs_total", {"outcome": "succeeded"}
        )
    # The restarted process finished exactly the jobs the first one had not (one may have
    # finished in the instant between reading the states and the kill).
    left = sum(1 for state in states.values() if state != "succeeded")
    assert left - 1 <= finished_here <= left, (states, finished_here)


def test_an_engine_restart_loses_no_job(backend_factory: BackendFactory, session_tmp: Path) -> None:
    """The engine stops under queued and waiting work and comes back: the waiting request gets
    503 with Retry-After at once (its job stays queued), and every job is spoken once, with no
    attempt used up and nothing in the failed list."""
    port = free_port()
    engine = start_piper_engine(port, session_tmp / "logs")
    try:
        server = backend_factory(EF_TTS_URL=engine.url, EF_SYNC_TIMEOUT_S="60")
        with client_for(server) as client:
            assert client.get("/api/v1/voices").status_code == 200  # identity known
            engine.stop()
            jobs = []
            for n in range(3):
                created = client.post("/api/v1/jobs", json={"text": unique_text(f"Queued {n}")})
                assert created.status_code == 202, created.text
                jobs.append(created.json()["id"])
            started = time.monotonic()
            sync = client.post("/api/v1/speech", json={"text": unique_text("Waiting here")})
            assert sync.status_code == 503, sync.text
            assert time.monotonic() - started < 55, "answered before EF_SYNC_TIMEOUT_S"
            assert int(sync.headers["retry-after"]) >= 1
            assert error_of(sync)["code"] == "engine_unavailable"
            if "job_id" in error_of(sync):  # the job was queued before the engine was seen down
                jobs.append(str(error_of(sync)["job_id"]))
            waiting = client.get(f"/api/v1/jobs/{jobs[0]}").json()
            assert waiting["status"] in ("queued", "running"), waiting
            assert str(waiting["error"]).startswith("Waiting for the speech engine"), waiting

            engine = start_piper_engine(port, session_tmp / "logs")
            for job_id in jobs:
                done = wait_job(client, job_id, timeout=120)
                assert done["status"] == "succeeded", done
                assert done["attempts"] == 1 and done["error"] is None, done
            assert client.get("/api/admin/jobs/failed").json()["count"] == 0
    finally:
        engine.stop()


def test_cached_audio_is_served_after_a_restart_with_the_engine_down(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """The backend remembers its engine's identity and voices on disk (engine.json): restarted
    while the engine is down, it still serves what is cached and lists the last known voices."""
    port = free_port()
    data = session_tmp / "restart-engine-down"
    engine = start_piper_engine(port, session_tmp / "logs")
    text = unique_text("Remembered across a restart")
    try:
        first = backend_factory(data, EF_TTS_URL=engine.url)
        with client_for(first) as client:
            spoken = client.post("/api/v1/speech", json={"text": text, "format": "mp3"})
            assert spoken.status_code == 200 and spoken.headers["x-ef-cache"] == "miss"
            voices = client.get("/api/v1/voices").json()["data"]
        first.stop()
        # A restart with the engine up and no request: the start-up probe refreshes the
        # identity and must keep the voices it has not asked for.
        idle = backend_factory(data, EF_TTS_URL=engine.url)
        with client_for(idle) as client:
            assert client.get("/health").status_code == 200
        idle.stop()
    finally:
        engine.stop()
    assert (data / "engine.json").exists()

    second = backend_factory(data, ready_path="/health/live", EF_TTS_URL=engine.url)
    with client_for(second) as client:
        again = client.post("/api/v1/speech", json={"text": text, "format": "mp3"})
        assert again.status_code == 200, again.text
        assert again.headers["x-ef-cache"] == "hit"
        assert again.content == spoken.content
        assert client.get("/api/v1/voices").json()["data"] == voices
        new = client.post("/api/v1/speech", json={"text": unique_text("Not cached")})
        assert new.status_code == 503, new.text
        assert error_of(new)["code"] == "engine_unavailable"
        assert client.get("/health/ready").status_code == 503
