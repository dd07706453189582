"""``/health`` (ready: model loaded), ``/health/live`` (process up) and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ef_tts import __version__
from ef_tts.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(runtime: RuntimeDep) -> JSONResponse:
    """200 ``ok`` once the model serves; 503 ``loading`` or ``failed`` (with ``error``).

    ``status`` is the service's (ok, loading, failed: what probes read); ``model_state`` says the
    same of the model in its own words (loaded, loading, failed).
    """
    status = runtime.status()
    body: dict[str, object] = {
        "status": status.state,
        "engine": status.engine,
        "model": status.model,
        "model_state": "loaded" if status.state == "ok" else status.state,
        "device": status.device,
        "version": __version__,
        "load_seconds": round(status.load_seconds, 3) if status.load_seconds is not None else None,
    }
    if status.state == "ok":
        body["voices"] = len(runtime.engine.voices())
        return JSONResponse(body)
    if status.error:
        body["error"] = status.error
    return JSONResponse(body, status_code=503)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers; says nothing about the model."""
    return {"status": "ok"}


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus exposition of the default registry (``ef_tts_*`` plus process metrics)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
