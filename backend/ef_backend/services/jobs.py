"""`JobService`: the jobs a client (or the admin) looks at, cancels, retries or fetches audio of."""

from __future__ import annotations

import logging

from ef_backend.core.errors import JobConflict
from ef_backend.models import Job, JobStatus
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.cache import AudioCache
from ef_backend.services.events import JobEvents
from ef_backend.services.job_wait import job_error
from ef_backend.services.queue import JobQueue
from ef_backend.services.speech import SpeechAudio

__all__ = ["JobService"]

log = logging.getLogger(__name__)


class JobService:
    """Reads and changes jobs in the queue; blocking (routes run it in the thread pool)."""

    def __init__(self, *, queue: JobQueue, cache: AudioCache, events: JobEvents) -> None:
        self._queue = queue
        self._cache = cache
        self._events = events

    # ``owner``: the caller's API key name; another key's job is "not found". None (keys off,
    # or the admin API) sees every job.

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        return self._queue.get(job_id, owner=owner)

    def list(
        self,
        *,
        limit: int,
        offset: int,
        status: JobStatus | None = None,
        owner: str | None = None,
    ) -> tuple[list[Job], int]:
        return self._queue.list(limit=limit, offset=offset, status=status, owner=owner)

    def queue_position(self, job: Job) -> int:
        """1 for the next queued job a worker claims."""
        return self._queue.position(job)

    def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        job = self._queue.cancel(job_id, owner=owner)
        metrics.tts_jobs_total.labels("cancelled").inc()
        self._events.changed(job_id)
        log.info("job cancelled", extra={"job_id": job_id})
        return job

    def retry(self, job_id: str) -> Job:
        job = self._queue.retry(job_id)
        self._events.work_queued()
        log.info("job queued again", extra={"job_id": job_id})
        return job

    def audio(self, job_id: str, *, owner: str | None = None) -> SpeechAudio:
        """The audio of a succeeded job (JobConflict before that, or once evicted).

        A job that failed because its audio could not be stored (a full disk) answers its
        `StorageError` (507): its audio will never exist, "later" would be the wrong advice.
        """
        job = self._queue.get(job_id, owner=owner)
        if job.status is JobStatus.failed and job.error_reason == "storage":
            raise job_error(job)
        if job.status is not JobStatus.succeeded:
            raise JobConflict(
                f"Job {job_id} is {job.status.value}; its audio exists once it has succeeded.",
                job_id=job_id,
                job_status=job.status.value,
            )
        stored = self._cache.get(job.cache_key, record=False)
        if stored is None:
            raise JobConflict(
                f"The audio of job {job_id} has been evicted from the cache; "
                "submit the request again.",
                job_id=job_id,
                job_status=job.status.value,
            )
        return SpeechAudio(stored, audio.MEDIA_TYPES[job.format], True, job_id, job.cache_key)
