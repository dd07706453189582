"""The persistent job queue: enqueue, claim, lease, finish, cancel, retry, requeue.

Every state change is one conditional UPDATE (``... WHERE status = 'running' AND worker_id = :me``)
so that it is right with several processes on one database: a worker that lost its lease cannot
overwrite the job's new owner, and two claimers never get the same job. Identical requests join
one active job through the partial unique index on ``job.cache_key``.

These functions block (database I/O); async callers run them in a thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, case, delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ef_backend.core.db import SessionFactory
from ef_backend.core.errors import JobConflict, JobNotFound, QueueFull
from ef_backend.models import ACTIVE_STATUSES, AudioFormat, Job, JobStatus, utcnow
from ef_backend.observability import metrics

log = logging.getLogger(__name__)

__all__ = ["JobQueue", "NewJob"]

_ENQUEUE_ATTEMPTS = 5
_FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


@dataclass(frozen=True)
class NewJob:
    """Everything a job needs; ``text`` is already normalised."""

    text: str
    voice: str
    speed: float
    format: AudioFormat
    cache_key: str
    engine: str
    model: str
    client: str
    sentence_keys: Sequence[str]
    trace_parent: str | None = None


def _aware(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite come without tzinfo in some paths; they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class JobQueue:
    """Jobs in the database; ``max_queued`` bounds the backlog, ``lease_s`` a worker's silence."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        max_queued: int,
        lease_s: float,
        concurrency: int = 1,
        max_queued_per_client: int | None = None,
    ) -> None:
        self._sessions = sessions
        self.max_queued = max_queued
        #: One API key's share of the backlog (None: no per-key bound, as with keys off).
        self.max_queued_per_client = max_queued_per_client
        self.lease_s = lease_s
        self.concurrency = concurrency

    # -- enqueue -----------------------------------------------------------------------------

    def _active(self, session: Session, cache_key: str, client: str) -> Job | None:
        return session.exec(
            select(Job).where(
                col(Job.cache_key) == cache_key,
                col(Job.client) == client,
                col(Job.status).in_(list(ACTIVE_STATUSES)),
            )
        ).first()

    def retry_after(self, queued: int) -> float:
        """A hint for a client turned away: the backlog over the workers, 2 s per job."""
        return max(1.0, min(120.0, 2.0 * queued / max(1, self.concurrency)))

    def enqueue(self, new: NewJob) -> tuple[Job, bool]:
        """Queue ``new``, or join the active job with the same key; (job, created)."""
        for _ in range(_ENQUEUE_ATTEMPTS):
            with self._sessions() as session:
                existing = self._active(session, new.cache_key, new.client)
                if existing is not None:
                    return existing, False
                queued = self.count(JobStatus.queued, session=session)
                if queued >= self.max_queued:
                    metrics.tts_queue_rejected_total.inc()
                    raise QueueFull(
                        f"The queue is full ({queued} jobs waiting, "
                        f"EF_QUEUE_MAX={self.max_queued}); try again later.",
                        retry_after=self.retry_after(queued),
                    )
                self._check_share(session, new.client)
                job = Job(
                    text=new.text,
                    voice=new.voice,
                    speed=new.speed,
                    format=new.format,
                    cache_key=new.cache_key,
                    engine=new.engine,
                    model=new.model,
                    client=new.client,
                    trace_parent=new.trace_parent,
                    sentences_total=len(new.sentence_keys),
                    sentence_keys=json.dumps(list(new.sentence_keys)),
                )
                session.add(job)
                try:
                    session.commit()
                except IntegrityError:
                    # Another request (maybe another process) queued the same key just now.
                    session.rollback()
                    continue
                return job, True
        metrics.tts_queue_rejected_total.inc()
        raise QueueFull("The queue is too busy to accept the job; try again.", retry_after=1.0)

    # -- worker side -------------------------------------------------------------------------

    def claim(self, worker_id: str) -> Job | None:
        """Take the oldest queued job atomically (one UPDATE ... RETURNING), or None."""
        now = utcnow()
        oldest = (
            select(Job.id)
            .where(col(Job.status) == JobStatus.queued)
            .order_by(col(Job.created_at), col(Job.id))
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(Job)
            .where(col(Job.id) == oldest, col(Job.status) == JobStatus.queued)
            .values(
                status=JobStatus.running,
                worker_id=worker_id,
                lease_until=now + timedelta(seconds=self.lease_s),
                started_at=now,
                attempts=Job.attempts + 1,
                error=None,  # e.g. "Waiting for the speech engine": stale once a worker has it
            )
            .returning(Job)
        )
        with self._sessions() as session:
            row = session.execute(statement).scalars().first()
            session.commit()
            return row

    def _owned(self, job_id: str, worker_id: str) -> list[ColumnElement[bool]]:
        return [
            col(Job.id) == job_id,
            col(Job.status) == JobStatus.running,
            col(Job.worker_id) == worker_id,
        ]

    def _update_owned(self, job_id: str, owner: str, /, **values: object) -> bool:
        with self._sessions() as session:
            result = session.execute(
                update(Job).where(*self._owned(job_id, owner)).values(**values)
            )
            session.commit()
            return bool(getattr(result, "rowcount", 0))

    def renew(self, job_id: str, worker_id: str) -> bool:
        """Extend the lease; False if the job is no longer this worker's."""
        until = utcnow() + timedelta(seconds=self.lease_s)
        return self._update_owned(job_id, worker_id, lease_until=until)

    def progress(self, job_id: str, worker_id: str, sentences_done: int) -> bool:
        until = utcnow() + timedelta(seconds=self.lease_s)
        return self._update_owned(
            job_id, worker_id, sentences_done=sentences_done, lease_until=until
        )

    def set_sentences(self, job_id: str, worker_id: str, sentence_keys: list[str]) -> bool:
        return self._update_owned(
            job_id,
            worker_id,
            sentence_keys=json.dumps(sentence_keys),
            sentences_total=len(sentence_keys),
        )

    def note_retry(self, job_id: str, worker_id: str, error: str) -> bool:
        """Count one more attempt after a transient failure (the job stays with its worker)."""
        until = utcnow() + timedelta(seconds=self.lease_s)
        return self._update_owned(
            job_id,
            worker_id,
            attempts=Job.attempts + 1,
            error=error,
            lease_until=until,
        )

    def complete(self, job_id: str, worker_id: str, *, audio_seconds: float) -> bool:
        return self._update_owned(
            job_id,
            worker_id,
            status=JobStatus.succeeded,
            sentences_done=Job.sentences_total,
            audio_seconds=audio_seconds,
            error=None,
            error_reason=None,
            lease_until=None,
            finished_at=utcnow(),
        )

    def fail(self, job_id: str, worker_id: str, *, reason: str, error: str) -> bool:
        return self._update_owned(
            job_id,
            worker_id,
            status=JobStatus.failed,
            error=error,
            error_reason=reason,
            lease_until=None,
            finished_at=utcnow(),
        )

    def release(self, job_id: str, worker_id: str, *, error: str | None = None) -> bool:
        """Give a job back unfinished (shutdown, engine down): queued again, this attempt not
        counted; ``error`` tells a client polling the job why it waits."""
        values: dict[str, object] = {} if error is None else {"error": error}
        return self._update_owned(
            job_id,
            worker_id,
            **values,
            status=JobStatus.queued,
            worker_id=None,
            lease_until=None,
            started_at=None,
            attempts=case((col(Job.attempts) > 0, col(Job.attempts) - 1), else_=0),
        )

    def requeue_expired(self) -> int:
        """Running jobs whose lease ran out (their process died) go back to the queue."""
        now = utcnow()
        with self._sessions() as session:
            result = session.execute(
                update(Job)
                .where(
                    col(Job.status) == JobStatus.running,
                    or_(col(Job.lease_until).is_(None), col(Job.lease_until) < now),
                )
                .values(status=JobStatus.queued, worker_id=None, lease_until=None, started_at=None)
            )
            session.commit()
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("requeued jobs whose lease expired", extra={"jobs": count})
        return count

    def requeue_orphans(self, is_dead: Callable[[str], bool]) -> int:
        """Running jobs whose worker is known to be dead go back to the queue at once.

        ``is_dead(worker_id)`` decides (see `WorkerPool.is_dead`); jobs of workers that may
        still live keep their lease and are left to `requeue_expired`.
        """
        with self._sessions() as session:
            running = session.exec(
                select(Job.id, Job.worker_id).where(col(Job.status) == JobStatus.running)
            ).all()
        count = 0
        for job_id, worker_id in running:
            if worker_id is None or not is_dead(worker_id):
                continue
            with self._sessions() as session:
                result = session.execute(
                    update(Job)
                    .where(*self._owned(job_id, worker_id))
                    .values(
                        status=JobStatus.queued, worker_id=None, lease_until=None, started_at=None
                    )
                )
                session.commit()
            count += int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("requeued jobs of dead workers", extra={"jobs": count})
        return count

    # -- client side -------------------------------------------------------------------------

    def _check_share(self, session: Session, client: str) -> None:
        """One API key may not fill the queue for everyone (EF_QUEUE_KEY_SHARE)."""
        bound = self.max_queued_per_client
        if bound is None:
            return
        mine = int(
            session.exec(
                select(func.count())
                .select_from(Job)
                .where(col(Job.status) == JobStatus.queued, col(Job.client) == client)
            ).one()
        )
        if mine >= bound:
            raise QueueFull(
                f"API key {client!r} already has {mine} jobs waiting, its share of the queue "
                f"(EF_QUEUE_KEY_SHARE of EF_QUEUE_MAX={self.max_queued}: {bound}); "
                "try again when some have run.",
                retry_after=self.retry_after(mine),
            )

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job; with ``owner`` (an API key name) another key's job is not found either."""
        with self._sessions() as session:
            job = session.get(Job, job_id)
            if job is None or (owner is not None and job.client != owner):
                raise JobNotFound(f"Job {job_id} not found.", job_id=job_id)
            return job

    def cancel(self, job_id: str, *, owner: str | None = None) -> Job:
        """Cancel a queued job; a running or finished one cannot be."""
        self.get(job_id, owner=owner)
        with self._sessions() as session:
            result = session.execute(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.status) == JobStatus.queued)
                .values(status=JobStatus.cancelled, finished_at=utcnow())
            )
            session.commit()
        job = self.get(job_id)
        if not getattr(result, "rowcount", 0):
            raise JobConflict(
                f"Job {job_id} is {job.status.value}; only a queued job can be cancelled.",
                job_id=job_id,
                job_status=job.status.value,
            )
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again (attempts start over)."""
        job = self.get(job_id)
        if job.status not in (JobStatus.failed, JobStatus.cancelled):
            raise JobConflict(
                f"Job {job_id} is {job.status.value}; "
                "only a failed or cancelled job can be retried.",
                job_id=job_id,
                job_status=job.status.value,
            )
        with self._sessions() as session:
            try:
                result = session.execute(
                    update(Job)
                    .where(
                        col(Job.id) == job_id,
                        col(Job.status).in_([JobStatus.failed, JobStatus.cancelled]),
                    )
                    .values(
                        status=JobStatus.queued,
                        attempts=0,
                        sentences_done=0,
                        error=None,
                        error_reason=None,
                        worker_id=None,
                        lease_until=None,
                        started_at=None,
                        finished_at=None,
                    )
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise JobConflict(
                    f"Job {job_id} cannot be retried: an identical job is already active.",
                    job_id=job_id,
                    job_status=job.status.value,
                ) from None
        if not getattr(result, "rowcount", 0):
            job = self.get(job_id)
            raise JobConflict(
                f"Job {job_id} is {job.status.value}; "
                "only a failed or cancelled job can be retried.",
                job_id=job_id,
                job_status=job.status.value,
            )
        return self.get(job_id)

    def list(
        self,
        *,
        limit: int,
        offset: int,
        status: JobStatus | None = None,
        owner: str | None = None,
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and the total count (only ``owner``'s, if given)."""
        with self._sessions() as session:
            query = select(Job)
            counter = select(func.count()).select_from(Job)
            if status is not None:
                query = query.where(col(Job.status) == status)
                counter = counter.where(col(Job.status) == status)
            if owner is not None:
                query = query.where(col(Job.client) == owner)
                counter = counter.where(col(Job.client) == owner)
            jobs = session.exec(
                query.order_by(col(Job.created_at).desc(), col(Job.id)).offset(offset).limit(limit)
            ).all()
            total = session.exec(counter).one()
            return list(jobs), int(total)

    def delete_finished(self, older_than: datetime) -> int:
        """Delete succeeded, failed and cancelled jobs (their text with them) that ended before
        ``older_than``; their audio stays in the cache under its own LRU rule."""
        with self._sessions() as session:
            result = session.execute(
                delete(Job).where(
                    col(Job.status).in_(list(_FINISHED)),
                    func.coalesce(col(Job.finished_at), col(Job.created_at)) < older_than,
                )
            )
            session.commit()
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.info("deleted finished jobs past their retention", extra={"jobs": count})
        return count

    def count(self, status: JobStatus, *, session: Session | None = None) -> int:
        query = select(func.count()).select_from(Job).where(col(Job.status) == status)
        if session is not None:
            return int(session.exec(query).one())
        with self._sessions() as own:
            return int(own.exec(query).one())

    def position(self, job: Job) -> int:
        """1 for the next queued job a worker claims (claim order: created_at, then id)."""
        ahead = (col(Job.created_at) < job.created_at) | (
            (col(Job.created_at) == job.created_at) & (col(Job.id) < job.id)
        )
        query = select(func.count()).select_from(Job).where(col(Job.status) == JobStatus.queued)
        with self._sessions() as session:
            return int(session.exec(query.where(ahead)).one()) + 1

    def stats(self) -> dict[str, object]:
        """Counts by status and the age of the oldest queued job (one grouped query each)."""
        with self._sessions() as session:
            rows = session.exec(select(Job.status, func.count()).group_by(col(Job.status))).all()
            oldest = session.exec(
                select(func.min(Job.created_at)).where(col(Job.status) == JobStatus.queued)
            ).one()
        counts = {status.value: 0 for status in JobStatus}
        for status, number in rows:
            key = status.value if isinstance(status, JobStatus) else str(status)
            counts[key] = int(number)
        oldest_at = _aware(oldest) if isinstance(oldest, datetime) else None
        age = max(0.0, (utcnow() - oldest_at).total_seconds()) if oldest_at else 0.0
        return {"counts": counts, "oldest_queued_age_s": age}
