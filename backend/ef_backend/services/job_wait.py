"""Waiting for a queued job: in-process wake-ups plus database polling, so that a job finished by
another process (another uvicorn worker) is seen too."""

from __future__ import annotations

import asyncio
import time

from opentelemetry import trace

from ef_backend.core.errors import (
    EchoForgeError,
    EngineRejected,
    EngineUnavailable,
    JobConflict,
    StorageError,
    SyncTimeout,
    SynthesisFailed,
)
from ef_backend.models import Job, JobStatus
from ef_backend.services.events import JobEvents
from ef_backend.services.queue import JobQueue
from ef_backend.services.worker import WorkerPool

__all__ = ["POLL_S", "JobWaiter", "job_error"]

tracer = trace.get_tracer(__name__)

#: How often a waiter re-reads its job from the database (work done by another process).
POLL_S = 0.25
_TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def job_error(job: Job) -> EchoForgeError:
    """The domain error that tells a waiting client why its job did not succeed."""
    message = job.error or "synthesis failed"
    if job.status is JobStatus.cancelled:
        return JobConflict(f"Job {job.id} was cancelled.", job_id=job.id, job_status="cancelled")
    if job.error_reason == "rejected":
        return EngineRejected(message, job_id=job.id)
    if job.error_reason == "storage":
        return StorageError(message, job_id=job.id)
    if job.error_reason in ("unreachable", "timeout"):
        return EngineUnavailable(message, reason=job.error_reason, job_id=job.id)
    return SynthesisFailed(message, job_id=job.id, reason=job.error_reason or "engine_error")


class JobWaiter:
    """Waits for jobs of ``queue``; ``workers`` tells when the engine is known to be down."""

    def __init__(self, *, queue: JobQueue, events: JobEvents, workers: WorkerPool) -> None:
        self._queue = queue
        self._events = events
        self._workers = workers

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float,
        sentences: int | None = None,
        engine_down_fails: bool = True,
    ) -> Job:
        """Until the job ends (or has ``sentences`` done); SyncTimeout after ``timeout`` s.

        A queued job whose engine is down raises EngineUnavailable at once, unless
        ``engine_down_fails`` is False: a stream whose first audio is sent cannot answer an
        error status any more (it could only be cut), so it waits the engine's restart out.
        """
        deadline = time.monotonic() + timeout
        with tracer.start_as_current_span("queue.wait") as span:
            span.set_attribute("ef.job_id", job_id)
            while True:
                event = self._events.watch(job_id)
                job = await asyncio.to_thread(self._queue.get, job_id)
                if job.status in _TERMINAL:
                    self._events.changed(job_id)  # drop the event (the job may end elsewhere)
                    return job
                if sentences is not None and job.sentences_done >= sentences:
                    return job
                if job.status is JobStatus.queued and engine_down_fails:
                    # The engine was found down after this job was queued (so the job waits for
                    # it): say so now instead of at the timeout.
                    why = self._workers.engine_down_since(job.created_at.timestamp())
                    if why is not None:
                        raise EngineUnavailable(
                            f"The speech engine is down; job {job_id} stays queued and will be "
                            f"spoken when it is back (GET /api/v1/jobs/{job_id}). {why}",
                            job_id=job_id,
                        )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SyncTimeout(
                        f"Job {job_id} is still {job.status.value} after {timeout:g} s; "
                        f"fetch GET /api/v1/jobs/{job_id} until it has succeeded.",
                        job_id=job_id,
                        retry_after=5.0,
                    )
                await self._events.wait(event, min(POLL_S, remaining))
