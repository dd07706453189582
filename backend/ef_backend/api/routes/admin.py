"""``/api/admin``: queue and cache statistics, every job (list, show, cancel, retry), cache purge.

The ``ef`` command (`ef_backend.cli`) and the admin web page call these routes.

Only clients whose address (see `core.security.client_address`) is in EF_ADMIN_CIDRS get in;
everyone else gets 403 before any handler runs. State-changing requests must not come from
another site's page (`core.browser`), and with EF_ADMIN_TOKEN set every request needs it.
Handlers are plain ``def`` (database and file work runs in the thread pool).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ef_backend.api.deps import AdminDep, JobsDep, SettingsDep, admin_only, rate_limit
from ef_backend.api.openapi_responses import errors
from ef_backend.api.routes.jobs import JobId, Offset
from ef_backend.api.schemas import (
    AdminLinksPublic,
    CacheHitRatioPublic,
    CachePurged,
    CacheStatsPublic,
    JobAdminPublic,
    JobsAdminPublic,
    QueueStatsPublic,
    RecentErrorPublic,
    RecentErrorsPublic,
    job_admin,
    job_public,
)
from ef_backend.core.recent_errors import install_recent_errors
from ef_backend.models import JobPublic, JobsPublic, JobStatus
from ef_backend.observability.exposition import scrape_registry

log = logging.getLogger(__name__)

# Rate limited first: refused requests cost a token too, so guessing is slow.
router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[Depends(rate_limit), Depends(admin_only)],
    responses=errors(401, d401="Admin token missing or wrong (only when EF_ADMIN_TOKEN is set)."),
)


@router.get(
    "/queue",
    response_model=QueueStatsPublic,
    summary="Queue statistics",
    description="Jobs by status, the age of the oldest queued job, workers and EF_QUEUE_MAX.",
    responses=errors(403, 429),
)
def queue_stats(admin: AdminDep) -> QueueStatsPublic:
    return QueueStatsPublic.model_validate(admin.queue_stats())


@router.get(
    "/jobs/failed",
    response_model=JobsPublic,
    summary="List failed jobs",
    description="Newest first, with the reason each one failed.",
    responses=errors(403, 422, 429),
)
def failed_jobs(
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Offset = 0,
) -> JobsPublic:
    found, count = jobs.list(limit=limit, offset=offset, status=JobStatus.failed)
    return JobsPublic(data=[job_public(j) for j in found], count=count, limit=limit, offset=offset)


@router.get(
    "/jobs",
    response_model=JobsAdminPublic,
    summary="List jobs of every client",
    description="Newest first; `status` filters. Shows the client, worker and lease of each job.",
    responses=errors(403, 422, 429),
)
def list_jobs(
    jobs: JobsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Offset = 0,
    status: JobStatus | None = None,
) -> JobsAdminPublic:
    found, count = jobs.list(limit=limit, offset=offset, status=status)
    return JobsAdminPublic(
        data=[job_admin(j) for j in found], count=count, limit=limit, offset=offset
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobAdminPublic,
    summary="Get any job",
    responses=errors(403, 404, 422, 429),
)
def get_job(job_id: JobId, jobs: JobsDep) -> JobAdminPublic:
    return job_admin(jobs.get(job_id))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobAdminPublic,
    summary="Cancel any queued job",
    description="Only a queued job can be cancelled; a running or finished one answers 409.",
    responses=errors(403, 404, 409, 422, 429),
)
def cancel_job(job_id: JobId, jobs: JobsDep) -> JobAdminPublic:
    job = jobs.cancel(job_id)
    log.info("admin cancelled job %s", job.id)
    return job_admin(job)


@router.post(
    "/jobs/{job_id}/retry",
    response_model=JobPublic,
    summary="Retry a failed or cancelled job",
    description="Puts the job back in the queue; a queued, running or succeeded job answers 409.",
    responses=errors(403, 404, 409, 422, 429),
)
def retry_job(job_id: JobId, jobs: JobsDep) -> JobPublic:
    job = jobs.retry(job_id)
    log.info("admin requeued job %s", job.id)
    return job_public(job)


@router.get(
    "/cache",
    response_model=CacheStatsPublic,
    summary="Audio cache statistics",
    description="Entries, bytes used, EF_CACHE_MAX_BYTES, hits and evictions.",
    responses=errors(403, 429),
)
def cache_stats(admin: AdminDep) -> CacheStatsPublic:
    return CacheStatsPublic.model_validate(admin.cache_stats())


@router.delete(
    "/cache",
    response_model=CachePurged,
    summary="Purge the audio cache",
    description="Deletes every cached audio file and its metadata; jobs keep their records.",
    responses=errors(403, 429, 507),
)
def purge_cache(admin: AdminDep) -> CachePurged:
    removed = admin.purge_cache()
    log.info("admin purged the audio cache: %d entries", removed)
    return CachePurged(removed=removed)


@router.get(
    "/cache/hit-ratio",
    response_model=CacheHitRatioPublic,
    summary="Audio cache hit ratio",
    description="Lookups that found audio, since the process (all its workers) started.",
    responses=errors(403, 429),
)
def cache_hit_ratio() -> CacheHitRatioPublic:
    registry = scrape_registry()
    name = "ef_audio_cache_requests_total"
    hits = int(registry.get_sample_value(name, {"result": "hit"}) or 0)
    misses = int(registry.get_sample_value(name, {"result": "miss"}) or 0)
    total = hits + misses
    return CacheHitRatioPublic(hits=hits, misses=misses, ratio=hits / total if total else None)


@router.get(
    "/links",
    response_model=AdminLinksPublic,
    summary="Monitoring links",
    description="EF_GRAFANA_URL, EF_PROMETHEUS_URL, EF_ALERTMANAGER_URL, EF_RUNBOOKS_URL.",
    responses=errors(403, 429),
)
def links(settings: SettingsDep) -> AdminLinksPublic:
    return AdminLinksPublic(
        grafana=settings.grafana_url or None,
        prometheus=settings.prometheus_url or None,
        alertmanager=settings.alertmanager_url or None,
        runbooks=settings.runbooks_url or None,
    )


@router.get(
    "/errors",
    response_model=RecentErrorsPublic,
    summary="Recent warnings and errors",
    description="The newest log records at WARNING or above of the worker that answers.",
    responses=errors(403, 422, 429),
)
def recent_errors(limit: Annotated[int, Query(ge=1, le=100)] = 50) -> RecentErrorsPublic:
    entries = install_recent_errors().newest(limit)
    return RecentErrorsPublic(
        data=[RecentErrorPublic.model_validate(e, from_attributes=True) for e in entries],
        count=len(entries),
    )
