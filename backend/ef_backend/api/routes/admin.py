"""``/api/admin``: queue and cache statistics, every job (list, show, cancel, retry), cache purge.

The ``ef`` command (`ef_backend.cli`) and the admin web page call these routes.

Only clients whose address (see `core.security.client_address`) is in EF_ADMIN_CIDRS get in;
everyone else gets 403 before any handler runs. Handlers are plain ``def`` (database and
file work runs in the thread pool).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ef_backend.api.deps import SpeechDep, admin_only, rate_limit
from ef_backend.api.responses import errors
from ef_backend.api.routes.jobs import JobId
from ef_backend.api.schemas import (
    CachePurged,
    CacheStatsPublic,
    JobAdminPublic,
    JobsAdminPublic,
    QueueStatsPublic,
    job_admin,
    job_public,
)
from ef_backend.models import JobPublic, JobsPublic, JobStatus

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/admin", tags=["admin"], dependencies=[Depends(admin_only), Depends(rate_limit)]
)


@router.get(
    "/queue",
    response_model=QueueStatsPublic,
    summary="Queue statistics",
    description="Jobs by status, the age of the oldest queued job, workers and EF_QUEUE_MAX.",
    responses=errors(403, 429),
)
def queue_stats(speech: SpeechDep) -> QueueStatsPublic:
    return QueueStatsPublic.model_validate(speech.queue_stats())


@router.get(
    "/jobs/failed",
    response_model=JobsPublic,
    summary="List failed jobs",
    description="Newest first, with the reason each one failed.",
    responses=errors(403, 422, 429),
)
def failed_jobs(
    speech: SpeechDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobsPublic:
    jobs, count = speech.failed_jobs(limit=limit, offset=offset)
    return JobsPublic(data=[job_public(j) for j in jobs], count=count, limit=limit, offset=offset)


@router.get(
    "/jobs",
    response_model=JobsAdminPublic,
    summary="List jobs of every client",
    description="Newest first; `status` filters. Shows the client, worker and lease of each job.",
    responses=errors(403, 422, 429),
)
def list_jobs(
    speech: SpeechDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: JobStatus | None = None,
) -> JobsAdminPublic:
    jobs, count = speech.list_jobs(limit=limit, offset=offset, status=status)
    return JobsAdminPublic(
        data=[job_admin(j) for j in jobs], count=count, limit=limit, offset=offset
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobAdminPublic,
    summary="Get any job",
    responses=errors(403, 404, 422, 429),
)
def get_job(job_id: JobId, speech: SpeechDep) -> JobAdminPublic:
    return job_admin(speech.get_job(job_id))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobAdminPublic,
    summary="Cancel any queued job",
    description="Only a queued job can be cancelled; a running or finished one answers 409.",
    responses=errors(403, 404, 409, 422, 429),
)
def cancel_job(job_id: JobId, speech: SpeechDep) -> JobAdminPublic:
    job = speech.cancel_job(job_id)
    log.info("admin cancelled job %s", job.id)
    return job_admin(job)


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobPublic,
    summary="Retry a failed or cancelled job",
    description="Puts the job back in the queue; a queued, running or succeeded job answers 409.",
    responses=errors(403, 404, 409, 422, 429),
)
def retry_job(job_id: JobId, speech: SpeechDep) -> JobPublic:
    job = speech.retry_job(job_id)
    log.info("admin requeued job %s", job.id)
    return job_public(job)


@router.get(
    "/cache",
    response_model=CacheStatsPublic,
    summary="Audio cache statistics",
    description="Entries, bytes used, EF_CACHE_MAX_BYTES, hits and evictions.",
    responses=errors(403, 429),
)
def cache_stats(speech: SpeechDep) -> CacheStatsPublic:
    return CacheStatsPublic.model_validate(speech.cache_stats())


@router.delete(
    "/cache",
    response_model=CachePurged,
    summary="Purge the audio cache",
    description="Deletes every cached audio file and its metadata; jobs keep their records.",
    responses=errors(403, 429),
)
def purge_cache(speech: SpeechDep) -> CachePurged:
    removed = speech.purge_cache()
    log.info("admin purged the audio cache: %d entries", removed)
    return CachePurged(removed=removed)
