"""Faults injected into a running stack: the engine killed under a deep queue, the database
locked by another writer. Every job finishes exactly once; nothing is lost or stuck.

(``kill -9`` of the backend mid-queue is in test_queue.py; misbehaving engines in
tests/backend/services/test_engine_faults.py and test_worker.py; a replica dying in
test_replicas.py.)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import (
    client_for,
    start_piper_engine,
    unique_text,
    wait_job,
)
from tests.backend.conftest import BackendFactory
from tests.utils.poll import poll_until
from tests.utils.procs import Server, free_port
from tests.utils.prometheus import metric_value

pytestmark = [pytest.mark.server, pytest.mark.slow]

JOBS = 200


def test_engine_killed_with_200_jobs_queued_finishes_each_once(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """ef_tts is killed (SIGKILL) while 200 jobs wait: a synchronous request gets 503 (its job
    stays queued), the queued jobs stay queued, and once ef_tts is back each job succeeds, once,
    with no attempt used up by the outage."""
    port = free_port()
    engine = start_piper_engine(port, session_tmp / "logs")
    try:
        server = backend_factory(
            EF_TTS_URL=engine.url, EF_QUEUE_MAX=str(JOBS + 10), EF_SYNC_TIMEOUT_S="60"
        )
        with client_for(server) as client:
            assert client.get("/api/v1/voices").status_code == 200  # identity known
            ids = []
            for n in range(JOBS):
                created = client.post("/api/v1/jobs", json={"text": f"Queued job {n}."})
                assert created.status_code == 202, created.text
                ids.append(created.json()["id"])
            engine.kill()  # SIGKILL: no goodbye
            engine.stop()  # (only closes its log now)
            sync = client.post("/api/v1/speech", json={"text": unique_text("While it is down")})
            assert sync.status_code == 503, sync.text
            error = sync.json()["error"]
            assert error["code"] == "engine_unavailable"
            if "job_id" in error:  # queued before the engine was seen down: it waits too
                ids.append(str(error["job_id"]))
            stats = client.get("/api/admin/queue").json()
            assert stats["counts"]["failed"] == 0
            assert stats["counts"]["queued"] + stats["counts"]["running"] > 0

            engine = start_piper_engine(port, session_tmp / "logs")
            for job_id in ids:
                done = wait_job(client, job_id, timeout=600)
                assert done["status"] == "succeeded", done
            listed = client.get("/api/v1/jobs", params={"limit": 1, "status": "succeeded"})
            assert listed.json()["count"] == len(ids)
            stats = client.get("/api/admin/queue").json()
            assert stats["counts"]["failed"] == 0 and stats["counts"]["running"] == 0
            # Exactly once: one success per job, counted by the workers themselves.
            succeeded = metric_value(
                client.get("/metrics").text, "ef_tts_jobs_total", {"outcome": "succeeded"}
            )
            assert succeeded == len(ids), succeeded
    finally:
        engine.stop()


def test_a_database_locked_by_another_writer_makes_requests_wait_not_fail(
    backend_factory: BackendFactory, session_tmp: Path, piper_tts: Server
) -> None:
    """Another process holds the SQLite write lock for 3 s: new jobs wait for it (busy timeout)
    and are all accepted and spoken; cached audio is served meanwhile (a hit writes nothing)."""
    data_dir = session_tmp / "locked-db"
    server = backend_factory(data_dir)
    with client_for(server) as client:
        cached = {"text": unique_text("Cached before the lock")}
        assert client.post("/api/v1/speech", json=cached).status_code == 200
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            other = sqlite3.connect(data_dir / "db.sqlite", timeout=30)
            other.execute("BEGIN EXCLUSIVE")
            other.execute("UPDATE job SET text = text WHERE 0")
            locked.set()
            release.wait(10)
            other.commit()
            other.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        assert locked.wait(10)
        try:
            hit = client.post("/api/v1/speech", json=cached)
            assert hit.status_code == 200 and hit.headers["x-ef-cache"] == "hit"
            texts = [unique_text(f"Queued behind a lock {n}") for n in range(5)]
            with ThreadPoolExecutor(5) as pool:
                futures = [
                    pool.submit(client.post, "/api/v1/jobs", json={"text": text}) for text in texts
                ]
                time.sleep(3)
                release.set()
                created = [future.result(timeout=60) for future in futures]
        finally:
            release.set()
            holder.join(15)
        assert [r.status_code for r in created] == [202] * 5, [r.text for r in created]
        for response in created:
            assert wait_job(client, response.json()["id"], timeout=120)["status"] == "succeeded"


def test_a_stream_under_way_waits_out_an_engine_restart(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """ef_tts is killed after a stream's first audio was sent: the status line is out, so an
    error could only cut the stream. It waits for the engine instead, and once ef_tts is back
    the job resumes where it stopped and the stream ends whole: the same audio as the job's."""
    port = free_port()
    engine = start_piper_engine(port, session_tmp / "logs")
    sentences = [f"Sentence {n} of a story that outlives its engine." for n in range(12)]
    text = unique_text(" ".join(sentences))
    first_audio = threading.Event()
    result: dict[str, object] = {}

    def listen(base: str) -> None:
        chunks = []
        body = {"text": text, "format": "pcm", "stream": True}
        with httpx.Client(base_url=base, timeout=120) as client:
            try:
                with client.stream("POST", "/api/v1/speech", json=body) as response:
                    result["status"] = response.status_code
                    result["job_id"] = response.headers.get("x-ef-job-id")
                    for chunk in response.iter_raw():
                        chunks.append(chunk)
                        first_audio.set()
            except httpx.HTTPError as exc:
                result["error"] = repr(exc)
            finally:
                first_audio.set()
        result["audio"] = b"".join(chunks)

    try:
        server = backend_factory(EF_TTS_URL=engine.url, EF_TTS_CONCURRENCY="1")
        with client_for(server) as client:
            assert client.get("/api/v1/voices").status_code == 200  # identity known
            listener = threading.Thread(target=listen, args=(server.url,))
            listener.start()
            assert first_audio.wait(120), "no first audio"
            engine.kill()
            engine.stop()
            job_id = str(result["job_id"])

            def handed_back() -> bool:
                job = client.get(f"/api/v1/jobs/{job_id}").json()
                return bool(job["status"] == "queued" and job["sentences_done"] < len(sentences))

            poll_until(handed_back, timeout=60, what="the job back in the queue, unfinished")
            engine = start_piper_engine(port, session_tmp / "logs")
            listener.join(300)
            assert not listener.is_alive()
            assert "error" not in result, result.get("error")
            assert result["status"] == 200
            job = wait_job(client, job_id, timeout=120)  # the stream ends before it is stored
            assert job["status"] == "succeeded" and job["error"] is None, job
            whole = client.get(f"/api/v1/jobs/{job_id}/audio")
            assert whole.status_code == 200
            assert result["audio"] == whole.content
    finally:
        engine.stop()
