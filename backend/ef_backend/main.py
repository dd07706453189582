"""`create_app()`: the FastAPI application of ef_backend.

The lifespan applies the migrations, builds and starts the `Runtime` (the services, queue workers
and the engine probe) and the Wyoming listener on its speech service (EF_WYOMING_ENABLED), and
stops both gracefully on shutdown. Routes come first; the static frontend is
mounted at ``/`` last, so it never shadows the API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ef_common.logging import configure_logging
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ef_backend.api.docs import install_docs
from ef_backend.api.frontend import FrontendFiles
from ef_backend.api.guards import RequestGuards
from ef_backend.api.openapi_responses import install_guard_docs
from ef_backend.api.routes import admin, health, jobs, limits, openai, pages, speech, voices
from ef_backend.core.config import Settings, get_settings
from ef_backend.core.db import migrate
from ef_backend.core.errors import install_error_handlers
from ef_backend.core.ratelimit import RateLimiter
from ef_backend.core.recent_errors import install_recent_errors
from ef_backend.observability.install import SERVICE_NAME, install
from ef_backend.services.runtime import Runtime
from ef_backend.wyoming import WyomingListener

log = logging.getLogger(__name__)

TAGS = [
    {"name": "speech", "description": "Say a text and get the audio back (cached, queued)."},
    {"name": "jobs", "description": "Queue synthesis and fetch the audio later."},
    {"name": "voices", "description": "The voices the engine offers."},
    {"name": "openai", "description": "OpenAI-compatible endpoints for existing clients."},
    {"name": "health", "description": "Liveness, readiness and the state of each dependency."},
    {"name": "admin", "description": "Queue and cache administration (EF_ADMIN_CIDRS only)."},
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    await run_in_threadpool(migrate, settings)
    runtime = Runtime(settings=settings)
    await runtime.start()
    app.state.runtime = runtime
    if settings.wyoming_enabled:
        app.state.wyoming = WyomingListener(settings, runtime.speech)
        await app.state.wyoming.start()
    log.info("ef_backend started", extra={"tts_url": settings.tts_url, "version": settings.version})
    try:
        yield
    finally:
        if app.state.wyoming is not None:
            await app.state.wyoming.stop()
            app.state.wyoming = None
        await runtime.stop()
        app.state.runtime = None
        log.info("ef_backend stopped")


def _mount_frontend(app: FastAPI, settings: Settings) -> None:
    directory = settings.frontend_dir
    if not directory.is_dir():
        log.warning("EF_FRONTEND_DIR %s is not a directory; no web UI at /", directory)
        return
    app.mount("/", FrontendFiles(directory=directory, html=True), name="frontend")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: the environment's ``EF_*``)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, service=SERVICE_NAME)
    install_recent_errors()  # for the admin page's recent errors
    app = FastAPI(
        title="EchoForge",
        summary="Self-hosted text-to-speech: speech API, job queue, audio cache.",
        description=(
            "Errors are JSON `{error: {code, message}}` (OpenAI's shape under `/v1`). "
            "With EF_API_KEYS set, speech, jobs and `/v1` need `Authorization: Bearer <key>`."
        ),
        version=settings.version,
        openapi_tags=TAGS,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = None
    app.state.wyoming = None
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    install_error_handlers(app)
    for module in (speech, jobs, voices, limits, openai, admin, health, pages):
        app.include_router(module.router)
    install_docs(app)
    install_guard_docs(app)
    app.add_middleware(
        RequestGuards,
        allowed_hosts=settings.allowed_hosts,
        max_body_bytes=settings.max_body_bytes,
    )
    install(app, settings, lambda: app.state.runtime)
    _mount_frontend(app, settings)
    return app
