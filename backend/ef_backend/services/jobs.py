"""`JobService`: the jobs a client (or the admin) looks at, cancels, retries or fetches audio of."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from ef_backend.core.errors import JobConflict
from ef_backend.models import AudioFormat, Job, JobStatus
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.cache import AudioCache
from ef_backend.services.events import JobEvents
from ef_backend.services.job_wait import job_error
from ef_backend.services.queue import JobQueue
from ef_backend.services.speech import SpeechAudio

__all__ = ["JobService"]

log = logging.getLogger(__name__)

#: Succeeded jobs whose audio `known_audio` answers without the database (a few hundred bytes
#: each). A succeeded job never changes, and only the retention deletes it: at a time known in
#: advance (``finished_at`` + EF_JOB_RETENTION_DAYS), whichever process does it.
KNOWN_AUDIO_MAX = 4096


@dataclass(frozen=True)
class _Succeeded:
    client: str
    cache_key: str
    format: AudioFormat
    until: float


class JobService:
    """Reads and changes jobs in the queue; blocking (routes run it in the thread pool)."""

    def __init__(
        self, *, queue: JobQueue, cache: AudioCache, events: JobEvents, retention: timedelta
    ) -> None:
        self._retention = retention
        self._queue = queue
        self._cache = cache
        self._events = events
        # Written by `audio` in worker threads, read by `known_audio` on the event loop.
        self._succeeded: OrderedDict[str, _Succeeded] = OrderedDict()
        self._succeeded_lock = threading.Lock()

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
        self._remember(job)
        return SpeechAudio(stored, audio.MEDIA_TYPES[job.format], True, job_id, job.cache_key)

    def known_audio(self, job_id: str, *, owner: str | None = None) -> SpeechAudio | None:
        """The audio of a job `audio` answered before, from memory and one ``stat`` (no
        database, so it runs on the event loop); None: ask `audio`. A player fetches one job's
        audio again and again (``Range`` requests)."""
        known = self._succeeded.get(job_id)
        if known is None or (owner is not None and known.client != owner):
            return None
        if known.until <= time.time():  # the retention may have deleted it: ask the database
            with self._succeeded_lock:
                self._succeeded.pop(job_id, None)
            return None
        stored = self._cache.get_known(known.cache_key, record=False)
        if stored is None:
            return None
        return SpeechAudio(stored, audio.MEDIA_TYPES[known.format], True, job_id, known.cache_key)

    def _remember(self, job: Job) -> None:
        if job.finished_at is None:
            return
        until = (job.finished_at + self._retention).timestamp()
        with self._succeeded_lock:
            self._succeeded[job.id] = _Succeeded(job.client, job.cache_key, job.format, until)
            self._succeeded.move_to_end(job.id)
            while len(self._succeeded) > KNOWN_AUDIO_MAX:
                self._succeeded.popitem(last=False)
