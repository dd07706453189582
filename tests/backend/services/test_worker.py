"""Workers against real engines: retries, permanent failures, lease expiry, graceful stop.

The crash-recovery tests (lease expiry, kill -9, stop and resume, two processes on one
database) run on SQLite and on a real PostgreSQL (``database_url``)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ef_backend.models import Job, JobStatus
from ef_backend.services import runtime as runtime_module
from ef_backend.services.runtime import Runtime
from ef_backend.services.speech import SpeechRequest
from ef_backend.services.worker import WAITING_FOR_ENGINE

from tests.backend.services.conftest import ServiceFactory
from tests.backend.services.helpers import listening, metric, synth_calls, wait_until
from tests.utils.jobs import new_job
from tests.utils.procs import Server, free_port, start_ef_tts, start_server

pytestmark = pytest.mark.server


def start_piper(port: int, log_dir: Path) -> Server:
    """A private ef_tts (Piper) on ``port``, for tests that stop and restart the engine."""
    server = start_ef_tts("ef_tts-piper-private", log_dir, {"EF_TTS_ENGINE": "piper"}, port=port)
    return server.wait_ready("/health", timeout=120)


@pytest.fixture
def private_engines(tmp_path: Path) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


async def voice_of(service: Runtime) -> dict[str, str]:
    """Engine, model and default voice: what a job for this engine is keyed by."""
    info = await service.engine.identity()
    return {
        "engine": info.engine,
        "model": info.model,
        "voice": await service.speech.resolve_voice(None),
    }


async def finished(service: Runtime, job_id: str, timeout: float = 60.0) -> Job:
    def done() -> bool:
        return service.jobs.get(job_id).status in (
            JobStatus.succeeded,
            JobStatus.failed,
            JobStatus.cancelled,
        )

    await wait_until(done, timeout=timeout)
    return service.jobs.get(job_id)


async def test_engine_stopped_midway_keeps_the_job_until_it_is_back(
    service_factory: ServiceFactory, private_engines: list[Server], tmp_path: Path
) -> None:
    """An engine restart is not the job's fault: the job waits in the queue, no attempt used."""
    port = free_port()
    private_engines.append(start_piper(port, tmp_path / "logs"))
    service = await service_factory(
        tts_url=f"http://127.0.0.1:{port}", job_retry_backoff_s=0.1, job_max_attempts=2
    )
    await service.speech.voices()  # the engine's identity and voices are known from now on
    await service.engine.identity()
    private_engines.pop().stop()  # the engine goes down
    retried = metric("ef_tts_jobs_total", outcome="retried")
    unreachable = metric("ef_tts_failures_total", reason="unreachable")
    job = await service.speech.submit(SpeechRequest(text="The engine went away. It came back."))
    await wait_until(
        lambda: metric("ef_tts_failures_total", reason="unreachable") >= unreachable + 3,
        timeout=60,
    )
    await wait_until(lambda: service.jobs.get(job.id).status is JobStatus.queued, timeout=60)
    waiting = service.jobs.get(job.id)  # back in the queue, paused (at least 5 s) before a retry
    assert (waiting.error or "").startswith(WAITING_FOR_ENGINE), waiting.error
    assert "unreachable" in (waiting.error or "")
    assert waiting.attempts <= 1, "waiting for the engine uses up no attempt"
    private_engines.append(start_piper(port, tmp_path / "logs"))  # and comes back
    done = await finished(service, job.id, timeout=90)
    assert done.status is JobStatus.succeeded, done.error
    assert done.attempts == 1 and done.error is None and done.error_reason is None
    assert metric("ef_tts_jobs_total", outcome="retried") == retried
    assert service.jobs.audio(job.id).data[:4] == b"RIFF"


@pytest.mark.parametrize("engine_state", ["unreachable", "model_failed"])
async def test_an_engine_that_stays_down_loses_no_job(
    service_factory: ServiceFactory,
    private_engines: list[Server],
    tmp_path: Path,
    engine_state: str,
) -> None:
    """Closed port, or an ef_tts whose model failed to load (503): jobs wait, never fail."""
    if engine_state == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
        reason = "unreachable"
    else:
        broken = start_ef_tts(
            "ef_tts-broken-model",
            tmp_path / "logs",
            {"EF_TTS_ENGINE": "piper", "EF_TTS_MODEL_PATH": str(tmp_path / "missing.onnx")},
        )
        private_engines.append(broken.wait_ready("/health/live", timeout=60))
        url, reason = broken.url, "engine_error"
    service = await service_factory(tts_url=url, job_retry_backoff_s=0.05, job_max_attempts=2)
    failed = metric("ef_tts_jobs_total", outcome="failed")
    down = metric("ef_tts_failures_total", reason=reason)
    job, _ = service.queue.enqueue(new_job("Nobody will say this until the engine is back."))
    service.events.work_queued()
    await wait_until(lambda: metric("ef_tts_failures_total", reason=reason) >= down + 3, timeout=60)
    await wait_until(lambda: service.jobs.get(job.id).status is JobStatus.queued, timeout=60)
    waiting = service.jobs.get(job.id)  # back in the queue, paused (at least 5 s) before a retry
    assert (waiting.error or "").startswith(WAITING_FOR_ENGINE), waiting.error
    assert waiting.error_reason is None and waiting.attempts <= 1
    assert metric("ef_tts_jobs_total", outcome="failed") == failed
    assert service.jobs.list(limit=10, offset=0, status=JobStatus.failed)[1] == 0
    # A client may still give up on it: a waiting job is queued, so it can be cancelled.
    assert service.queue.cancel(job.id).status is JobStatus.cancelled


async def test_engine_errors_other_than_down_are_retried_then_fail(
    service_factory: ServiceFactory, private_engines: list[Server], tmp_path: Path
) -> None:
    """An engine that answers garbage (not a WAV) fails the job after the attempts, reason kept."""
    port = free_port()
    garbage = start_server(
        "not-an-engine",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        port=port,
        log_dir=tmp_path / "logs",
    )
    private_engines.append(garbage.wait_ready("/", timeout=30))
    service = await service_factory(
        tts_url=garbage.url, job_retry_backoff_s=0.05, job_max_attempts=3
    )
    retried = metric("ef_tts_jobs_total", outcome="retried")
    job, _ = service.queue.enqueue(new_job("Say this to a web server."))
    service.events.work_queued()
    done = await finished(service, job.id)
    assert done.status is JobStatus.failed
    assert done.error_reason == "engine_error" and done.attempts == 3
    assert metric("ef_tts_jobs_total", outcome="retried") == retried + 2
    failed_jobs, count = service.jobs.list(limit=10, offset=0, status=JobStatus.failed)
    assert count == 1 and failed_jobs[0].id == job.id


DROPPER = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    conn.close()  # read the request, then hang up: what an engine that crashes on it looks like
"""


async def test_an_engine_that_drops_the_call_fails_the_job_after_its_attempts(
    service_factory: ServiceFactory, private_engines: list[Server], tmp_path: Path
) -> None:
    """A connection dropped mid-request may be this very input crashing the engine: it counts
    as an attempt (never "engine down"), so a poison job cannot loop forever."""
    port = free_port()
    dropper = start_server(
        "engine-that-hangs-up",
        [sys.executable, "-c", DROPPER, str(port)],
        port=port,
        log_dir=tmp_path / "logs",
    )
    private_engines.append(dropper)
    await wait_until(lambda: listening(port), timeout=30)
    service = await service_factory(
        tts_url=dropper.url, job_retry_backoff_s=0.05, job_max_attempts=3
    )
    job, _ = service.queue.enqueue(new_job("This text crashes the engine every time."))
    service.events.work_queued()
    done = await finished(service, job.id)
    assert done.status is JobStatus.failed
    assert done.error_reason == "unreachable" and done.attempts == 3
    assert service.workers.engine_down() is None, "a dropped call does not pause the workers"


async def test_an_engine_refusal_fails_at_once(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    service = await service_factory(tts_url=piper_tts.url, job_retry_backoff_s=0.05)
    keyed = {**await voice_of(service), "voice": "ghost"}
    rejected = metric("ef_tts_failures_total", reason="rejected")
    outcomes = {o: metric("ef_tts_jobs_total", outcome=o) for o in ("rejected", "failed")}
    job, _ = service.queue.enqueue(new_job("Say this in a voice that does not exist.", **keyed))
    service.events.work_queued()
    done = await finished(service, job.id)
    assert done.status is JobStatus.failed
    assert done.error_reason == "rejected" and done.attempts == 1
    assert metric("ef_tts_failures_total", reason="rejected") == rejected + 1
    # The client's fault: its own outcome, which the availability SLO does not count as failed.
    assert metric("ef_tts_jobs_total", outcome="rejected") == outcomes["rejected"] + 1
    assert metric("ef_tts_jobs_total", outcome="failed") == outcomes["failed"]


async def test_a_timeout_is_retried_then_fails_with_reason_timeout(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    keyed = await voice_of(await service_factory(tts_url=piper_tts.url, start=False))
    service = await service_factory(
        tts_url=piper_tts.url,
        tts_timeout_s=0.001,
        job_retry_backoff_s=0.05,
        job_max_attempts=2,
    )
    job, _ = service.queue.enqueue(new_job("This takes more than a millisecond.", **keyed))
    service.events.work_queued()
    done = await finished(service, job.id)
    assert (done.status, done.error_reason, done.attempts) == (JobStatus.failed, "timeout", 2)


async def test_a_job_of_a_dead_worker_is_requeued_when_its_lease_expires(
    service_factory: ServiceFactory, piper_tts: Server, database_url: str
) -> None:
    service = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, job_lease_s=0.6, start=False
    )
    engine = await voice_of(service)
    job, _ = service.queue.enqueue(new_job("A worker died holding me.", **engine))
    claimed = service.queue.claim("crashed-process:0")
    assert claimed is not None and claimed.id == job.id
    await service.start()  # the lease is still valid: the job stays with the dead worker ...
    assert service.jobs.get(job.id).worker_id == "crashed-process:0"
    done = await finished(service, job.id)  # ... until it expires and the requeue loop acts
    assert done.status is JobStatus.succeeded
    assert done.worker_id != "crashed-process:0" and done.attempts == 2


async def test_expired_jobs_are_requeued_at_start(
    service_factory: ServiceFactory, piper_tts: Server, database_url: str
) -> None:
    service = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, job_lease_s=0.2, start=False
    )
    engine = await voice_of(service)
    jobs = [
        service.queue.enqueue(new_job(f"Left running number {n}.", **engine))[0] for n in range(3)
    ]
    for _ in jobs:
        service.queue.claim("killed-with-signal-9:0")
    await asyncio.sleep(0.3)
    await service.start()
    for job in jobs:
        assert (await finished(service, job.id)).status is JobStatus.succeeded


async def test_stop_releases_a_running_job_and_a_new_process_resumes_it(
    service_factory: ServiceFactory,
    piper_tts: Server,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    monkeypatch.setattr(runtime_module, "STOP_GRACE_S", 0.0)
    text = " ".join(f"This is sentence number {n} of a long announcement." for n in range(12))
    first = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, tts_concurrency=1
    )
    job = await first.speech.submit(SpeechRequest(text=text))
    await wait_until(lambda: first.jobs.get(job.id).sentences_done >= 2)
    await first.stop()
    released = first.jobs.get(job.id)
    if released.status is JobStatus.succeeded:
        pytest.fail("the job finished before stop(): make the text longer")
    assert released.status is JobStatus.queued and released.worker_id is None
    assert released.attempts == 0
    calls = synth_calls()
    second = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, data_dir=first.settings.data_dir
    )
    done = await finished(second, job.id)
    assert done.status is JobStatus.succeeded and done.attempts == 1
    assert done.sentences_done == done.sentences_total == 12
    # Sentences finished before the stop came from the cache: only the rest was synthesised.
    assert synth_calls() - calls <= 12 - released.sentences_done


async def test_a_restart_after_kill_9_requeues_at_once_despite_a_long_lease(
    service_factory: ServiceFactory, piper_tts: Server, database_url: str
) -> None:
    service = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, job_lease_s=600, start=False
    )
    keyed = await voice_of(service)
    job, _ = service.queue.enqueue(new_job("The process holding me was killed.", **keyed))
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    assert service.queue.claim(f"{socket.gethostname()}:{killed.pid}:deadbeef:0") is not None
    await service.start()
    assert service.jobs.get(job.id).worker_id != f"{socket.gethostname()}:{killed.pid}:deadbeef:0"
    done = await finished(service, job.id)
    assert done.status is JobStatus.succeeded and done.attempts == 2


async def test_a_waiter_sees_a_job_finished_by_another_process(
    service_factory: ServiceFactory, piper_tts: Server, database_url: str
) -> None:
    """Two services on one database: no in-process signal crosses, the database poll does."""
    waiter = await service_factory(database_url=database_url, tts_url=piper_tts.url, start=False)
    worker = await service_factory(
        database_url=database_url, tts_url=piper_tts.url, data_dir=waiter.settings.data_dir
    )
    assert waiter.events is not worker.events
    result = await waiter.speech.synthesize(SpeechRequest(text="Finished somewhere else entirely."))
    assert not result.cache_hit and result.job_id is not None
    job = waiter.jobs.get(result.job_id)
    assert job.status is JobStatus.succeeded
    assert job.worker_id is not None and job.worker_id.startswith(
        f"{socket.gethostname()}:{os.getpid()}:{worker.workers._token}:"
    )
