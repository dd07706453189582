"""Health endpoints for people, Prometheus probes and container health checks.

``/health/live``: the process answers. ``/health/ready``: it can do work (database answers,
engine reachable, audio cache writable with EF_MIN_FREE_BYTES free). ``/health``: the full picture
(database, queue depth, engine, and the Wyoming listener when enabled: degraded, not failed, while
it cannot listen, since HTTP still works). ``/health/tts``: the engine in detail. Each check
reports its status and how long it took; any failed check makes the answer 503. None is rate
limited or needs a key, so every probe is cheap (no writes, no files created; the engine probe is
cached) and its public error is terse: the details (engine URL, exception text) go to the log.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ef_backend.api.deps import HealthDep, SettingsDep
from ef_backend.api.openapi_responses import errors
from ef_backend.api.schemas import (
    CheckResult,
    CheckStatus,
    EngineHealthPublic,
    HealthPublic,
    Liveness,
)
from ef_backend.core.config import Settings
from ef_backend.services.health import EngineHealth, HealthService
from ef_backend.wyoming import WyomingListener

log = logging.getLogger(__name__)

router = APIRouter(prefix="/health", tags=["health"])

_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"model": HealthPublic, "description": "A check failed; the body says which."}
}


ProbeResult = tuple[CheckStatus, str | None, dict[str, Any]]


async def _timed(probe: Callable[[], Awaitable[ProbeResult]]) -> CheckResult:
    """Run one check, timing it; an exception is a failed check, never a 500."""
    started = time.perf_counter()
    try:
        status, error, detail = await probe()
    except Exception:
        log.exception("health check failed")
        status, error, detail = "fail", "check failed; see the server log", {}
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return CheckResult(status=status, duration_ms=duration_ms, error=error, detail=detail)


async def _database(probes: HealthService) -> ProbeResult:
    ok, error = await asyncio.to_thread(probes.database)
    if not ok:
        log.warning("health: database check failed: %s", error)
    return ("ok" if ok else "fail"), None if ok else "database unavailable", {}


def _storage(probes: HealthService, settings: Settings) -> ProbeResult:
    ok, error = probes.cache()
    if not ok:
        return "fail", error, {}
    free = shutil.disk_usage(settings.cache_dir).free
    detail = {"free_bytes": free, "min_free_bytes": settings.min_free_bytes}
    if free < settings.min_free_bytes:
        return "fail", "less free space than EF_MIN_FREE_BYTES", detail
    return "ok", None, detail


async def _cache(probes: HealthService, settings: Settings) -> ProbeResult:
    return await asyncio.to_thread(_storage, probes, settings)


def _engine_error(health: EngineHealth) -> str | None:
    """The public reason the engine check failed (its full text is logged by the probe)."""
    if not health.reachable:
        return "engine unreachable"
    if not health.model_loaded:
        return "engine model not loaded"
    return "engine sample synthesis failed" if health.error else None


async def _queue(probes: HealthService, settings: Settings) -> ProbeResult:
    depth = await asyncio.to_thread(probes.queued_jobs)
    detail = {"depth": depth, "max": settings.queue_max}
    if depth >= settings.queue_max:
        return "warn", "queue full: new work gets 503 until it drains", detail
    return "ok", None, detail


async def _engine(probes: HealthService, *, require_model: bool) -> ProbeResult:
    health = await probes.engine()
    # Ready needs the engine reachable; healthy also needs its model and a good sample.
    ok = health.reachable and (not require_model or (health.model_loaded and not health.error))
    detail = {
        "engine": health.engine,
        "model": health.model,
        "reachable": health.reachable,
        "model_loaded": health.model_loaded,
        "latency_ms": _ms(health.latency_s),
    }
    return ("ok" if ok else "fail"), _engine_error(health) if not ok else None, detail


async def _wyoming(listener: WyomingListener) -> ProbeResult:
    state = listener.health()
    detail = {
        "address": state.address,
        "connections": state.connections,
        "zeroconf": state.announced,
    }
    if not state.listening:
        return "warn", state.error or "not listening", detail
    return "ok", None, detail


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _answer(checks: dict[str, CheckResult], settings: Settings) -> JSONResponse:
    statuses = {c.status for c in checks.values()}
    overall = "fail" if "fail" in statuses else "degraded" if "warn" in statuses else "ok"
    body = HealthPublic(
        status=overall, checks=checks, version=settings.version, commit=settings.commit
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if overall == "fail" else 200)


@router.get(
    "",
    response_model=HealthPublic,
    summary="Overall health",
    description=(
        "API, database, queue depth, engine and the Wyoming listener (when enabled); 503 when "
        "the database or engine fails."
    ),
    responses={**_UNHEALTHY, **errors()},
)
async def health(request: Request, probes: HealthDep, settings: SettingsDep) -> JSONResponse:
    checks = {
        "api": CheckResult(status="ok", duration_ms=0.0, detail={"version": settings.version}),
        "database": await _timed(lambda: _database(probes)),
        "queue": await _timed(lambda: _queue(probes, settings)),
        "engine": await _timed(lambda: _engine(probes, require_model=True)),
    }
    listener: WyomingListener | None = request.app.state.wyoming
    if listener is not None:
        checks["wyoming"] = await _timed(lambda: _wyoming(listener))
    return _answer(checks, settings)


@router.get(
    "/ready",
    response_model=HealthPublic,
    summary="Readiness",
    description="Database writable, engine reachable, audio cache writable; else 503.",
    responses={**_UNHEALTHY, **errors()},
)
async def ready(probes: HealthDep, settings: SettingsDep) -> JSONResponse:
    checks = {
        "database": await _timed(lambda: _database(probes)),
        "engine": await _timed(lambda: _engine(probes, require_model=False)),
        "cache": await _timed(lambda: _cache(probes, settings)),
    }
    return _answer(checks, settings)


@router.get(
    "/live",
    response_model=Liveness,
    summary="Liveness",
    description="200 whenever the process answers; checks nothing else.",
    responses=errors(),
)
async def live() -> Liveness:
    return Liveness()


@router.get(
    "/tts",
    response_model=EngineHealthPublic,
    summary="Engine health",
    description=(
        "Engine reachable, model loaded and the latency of a short sample synthesis. The probe "
        "is cached for a few seconds so that health checks cannot overload the engine."
    ),
    responses={
        503: {
            "model": EngineHealthPublic,
            "description": "Engine unreachable or model not loaded.",
        },
        **errors(),
    },
)
async def engine(probes: HealthDep) -> JSONResponse:
    started = time.perf_counter()
    health: EngineHealth = await probes.engine()
    ok = health.reachable and health.model_loaded and not health.error
    body = EngineHealthPublic(
        status="ok" if ok else "fail",
        reachable=health.reachable,
        model_loaded=health.model_loaded,
        latency_ms=_ms(health.latency_s),
        engine=health.engine,
        model=health.model,
        error=_engine_error(health),
        checked_at=health.checked_at,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
