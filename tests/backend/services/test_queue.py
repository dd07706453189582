"""The job queue on a real SQLite file and a real PostgreSQL database (every test runs on both):
dedupe, backpressure, atomic claims (SKIP LOCKED on PostgreSQL), leases, state rules."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ef_backend.core import db
from ef_backend.core.config import Settings
from ef_backend.core.errors import JobConflict, JobNotFound, QueueFull
from ef_backend.models import JobStatus
from ef_backend.services.cache import AudioCache
from ef_backend.services.engine import EngineClient
from ef_backend.services.events import JobEvents
from ef_backend.services.queue import JobQueue, NewJob
from ef_backend.services.worker import WorkerPool, WorkerSettings
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from tests.backend.services.conftest import SettingsFactory
from tests.utils.jobs import new_job as job_of


def new_job(n: int, *, voice: str = "joe") -> NewJob:
    return job_of(f"Job number {n}.", voice=voice)


@pytest.fixture
def settings(make_settings: SettingsFactory, database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
def queue(sessions: db.SessionFactory) -> JobQueue:
    return JobQueue(sessions, max_queued=100, lease_s=30.0, concurrency=2)


def test_identical_requests_join_one_active_job(queue: JobQueue) -> None:
    first, created = queue.enqueue(new_job(1))
    again, created_again = queue.enqueue(new_job(1))
    other, created_other = queue.enqueue(new_job(2))
    assert created and not created_again and created_other
    assert again.id == first.id != other.id
    assert first.status is JobStatus.queued and first.sentences_total == 1
    claimed = queue.claim("w")
    assert claimed is not None and claimed.id == first.id
    assert queue.enqueue(new_job(1))[0].id == first.id  # a running job is joined too
    queue.complete(first.id, "w", audio_seconds=1.0)
    fresh, created_fresh = queue.enqueue(new_job(1))  # a finished one is not
    assert created_fresh and fresh.id != first.id


def test_concurrent_identical_enqueues_across_engines_make_one_job(settings: Settings) -> None:
    db.migrate(settings)
    engines = [db.make_engine(settings) for _ in range(2)]
    queues = [JobQueue(db.session_factory(e), max_queued=100, lease_s=30.0) for e in engines]
    barrier = threading.Barrier(8)

    def enqueue(i: int) -> tuple[str, bool]:
        barrier.wait()
        job, created = queues[i % 2].enqueue(new_job(7))
        return job.id, created

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(enqueue, range(8)))
    finally:
        for engine in engines:
            engine.dispose()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_backpressure_past_the_queue_max(sessions: db.SessionFactory) -> None:
    queue = JobQueue(sessions, max_queued=3, lease_s=30.0, concurrency=1)
    for n in range(3):
        queue.enqueue(new_job(n))
    rejected = REGISTRY.get_sample_value("ef_tts_queue_rejected_total") or 0.0
    with pytest.raises(QueueFull) as caught:
        queue.enqueue(new_job(99))
    # Counted: EFQueueFull alerts on it (a full, flat queue has no growth to alert on).
    assert REGISTRY.get_sample_value("ef_tts_queue_rejected_total") == rejected + 1
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert "EF_QUEUE_MAX=3" in caught.value.message
    assert queue.enqueue(new_job(1))[1] is False  # joining an existing job is still fine
    assert queue.claim("w") is not None
    assert queue.enqueue(new_job(99))[1] is True  # room again once one is running


def test_two_engines_and_many_threads_never_claim_the_same_job(
    settings: Settings, migrated: Engine
) -> None:
    queue = JobQueue(db.session_factory(migrated), max_queued=1000, lease_s=30.0)
    ids = {queue.enqueue(new_job(n))[0].id for n in range(60)}
    engines = [db.make_engine(settings) for _ in range(2)]
    queues = [JobQueue(db.session_factory(e), max_queued=1000, lease_s=30.0) for e in engines]
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def claimer(index: int) -> None:
        worker = f"worker-{index}"
        start.wait()
        while (job := queues[index % 2].claim(worker)) is not None:
            with lock:
                claims.append((job.id, worker))

    try:
        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for engine in engines:
            engine.dispose()
    counts = Counter(job_id for job_id, _ in claims)
    assert set(counts) == ids
    assert max(counts.values()) == 1
    assert len({worker for _, worker in claims}) > 1  # the work really was shared
    for job_id, worker in claims:
        job = queue.get(job_id)
        assert job.status is JobStatus.running and job.worker_id == worker and job.attempts == 1


def test_claim_takes_the_oldest_first(queue: JobQueue) -> None:
    ids = [queue.enqueue(new_job(n))[0].id for n in range(3)]
    claimed = [queue.claim("w") for _ in range(4)]
    assert [job.id if job else None for job in claimed] == [*ids, None]


def test_expired_lease_goes_back_to_the_queue(sessions: db.SessionFactory) -> None:
    queue = JobQueue(sessions, max_queued=10, lease_s=0.3)
    job, _ = queue.enqueue(new_job(1))
    assert queue.claim("dead-worker") is not None
    assert queue.requeue_expired() == 0  # lease still valid
    time.sleep(0.4)
    assert queue.requeue_expired() == 1
    requeued = queue.get(job.id)
    assert requeued.status is JobStatus.queued and requeued.worker_id is None
    again = queue.claim("new-worker")
    assert again is not None and again.id == job.id and again.attempts == 2
    # The dead worker wakes up: it no longer owns the job and can change nothing.
    assert not queue.renew(job.id, "dead-worker")
    assert not queue.progress(job.id, "dead-worker", 1)
    assert not queue.complete(job.id, "dead-worker", audio_seconds=1.0)
    assert not queue.fail(job.id, "dead-worker", reason="timeout", error="late")
    assert queue.get(job.id).worker_id == "new-worker"


def test_renewal_keeps_a_live_job(sessions: db.SessionFactory) -> None:
    queue = JobQueue(sessions, max_queued=10, lease_s=0.3)
    job, _ = queue.enqueue(new_job(1))
    queue.claim("w")
    for _ in range(4):
        time.sleep(0.15)
        assert queue.renew(job.id, "w")
        assert queue.requeue_expired() == 0
    assert queue.get(job.id).status is JobStatus.running


def test_progress_complete_and_fail(queue: JobQueue) -> None:
    job, _ = queue.enqueue(new_job(1))
    queue.claim("w")
    assert queue.progress(job.id, "w", 1)
    assert queue.get(job.id).sentences_done == 1
    assert queue.complete(job.id, "w", audio_seconds=2.5)
    done = queue.get(job.id)
    assert done.status is JobStatus.succeeded and done.audio_seconds == 2.5
    assert done.finished_at is not None and done.lease_until is None
    other, _ = queue.enqueue(new_job(2))
    queue.claim("w")
    assert queue.note_retry(other.id, "w", "engine down")
    assert queue.get(other.id).attempts == 2
    assert queue.fail(other.id, "w", reason="unreachable", error="engine down")
    failed = queue.get(other.id)
    assert (failed.status, failed.error_reason, failed.error) == (
        JobStatus.failed,
        "unreachable",
        "engine down",
    )


def test_release_puts_a_job_back_without_counting_the_attempt(queue: JobQueue) -> None:
    job, _ = queue.enqueue(new_job(1))
    queue.claim("w")
    assert queue.release(job.id, "w")
    released = queue.get(job.id)
    assert released.status is JobStatus.queued and released.attempts == 0
    assert released.worker_id is None and released.started_at is None


def test_only_a_queued_job_can_be_cancelled(queue: JobQueue) -> None:
    job, _ = queue.enqueue(new_job(1))
    assert queue.cancel(job.id).status is JobStatus.cancelled
    with pytest.raises(JobConflict, match="is cancelled; only a queued job can be cancelled"):
        queue.cancel(job.id)
    running, _ = queue.enqueue(new_job(2))
    queue.claim("w")
    with pytest.raises(JobConflict, match="is running"):
        queue.cancel(running.id)
    with pytest.raises(JobNotFound, match="not found"):
        queue.cancel("0" * 32)


def test_retry_requeues_failed_and_cancelled_jobs_only(queue: JobQueue) -> None:
    job, _ = queue.enqueue(new_job(1))
    with pytest.raises(JobConflict, match="is queued; only a failed or cancelled"):
        queue.retry(job.id)
    queue.claim("w")
    queue.note_retry(job.id, "w", "boom")
    queue.fail(job.id, "w", reason="engine_error", error="boom")
    retried = queue.retry(job.id)
    assert retried.status is JobStatus.queued and retried.attempts == 0
    assert retried.error is None and retried.error_reason is None
    # A retry that would duplicate an active job with the same key is refused.
    cancelled, _ = queue.enqueue(new_job(2))
    queue.cancel(cancelled.id)
    duplicate, _ = queue.enqueue(new_job(2))
    with pytest.raises(JobConflict, match="identical job is already active"):
        queue.retry(cancelled.id)
    assert queue.get(duplicate.id).status is JobStatus.queued


def test_list_pages_newest_first_and_stats(queue: JobQueue) -> None:
    ids = [queue.enqueue(new_job(n))[0].id for n in range(5)]
    queue.claim("w")
    page, total = queue.list(limit=2, offset=0)
    assert total == 5 and [j.id for j in page] == ids[:-3:-1]
    queued, total_queued = queue.list(limit=10, offset=0, status=JobStatus.queued)
    assert total_queued == 4 and ids[0] not in {j.id for j in queued}
    stats = queue.stats()
    assert stats["counts"] == {
        "queued": 4,
        "running": 1,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    age = stats["oldest_queued_age_s"]
    assert isinstance(age, float) and 0 <= age < 60


def test_jobs_of_dead_workers_on_this_host_are_requeued_at_once(
    queue: JobQueue, sessions: db.SessionFactory, tmp_path: Path
) -> None:
    pool = WorkerPool(
        queue=queue,
        cache=AudioCache(tmp_path / "cache", sessions, max_bytes=1000),
        client=EngineClient("http://127.0.0.1:9"),
        events=JobEvents(),
        settings=WorkerSettings(concurrency=1, max_attempts=3, retry_backoff_s=0.1, lease_s=30),
    )
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    host, me = socket.gethostname(), os.getpid()
    owners = {
        "dead-pid": f"{host}:{exited.pid}:cafe0001:0",
        "earlier-life-of-this-pid": f"{host}:{me}:cafe0002:0",
        "this-process": f"{host}:{me}:{pool._token}:0",
        "other-host": f"elsewhere:{exited.pid}:cafe0003:0",
        "alive-process": f"{host}:{os.getppid()}:cafe0004:0",
        "not-ours": "some-other-scheme",
    }
    jobs = {}
    for n, (name, owner) in enumerate(owners.items()):
        jobs[name] = queue.enqueue(new_job(100 + n))[0].id
        claimed = queue.claim(owner)
        assert claimed is not None and claimed.id == jobs[name]
    assert queue.requeue_orphans(pool.is_dead) == 2
    status = {name: queue.get(job_id).status for name, job_id in jobs.items()}
    assert status == {
        "dead-pid": JobStatus.queued,
        "earlier-life-of-this-pid": JobStatus.queued,
        "this-process": JobStatus.running,
        "other-host": JobStatus.running,
        "alive-process": JobStatus.running,
        "not-ours": JobStatus.running,
    }
