"""``create_app``: the FastAPI app of ef_tts; the model starts loading with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ef_common.asgi import RequestContextMiddleware
from ef_common.tracing import instrument_app
from fastapi import FastAPI

from ef_tts import __version__
from ef_tts.api import coqui_api, health, openai_api
from ef_tts.api.errors import install_error_handlers
from ef_tts.config import Settings, get_settings
from ef_tts.runtime import EngineRuntime


def create_app(settings: Settings | None = None, runtime: EngineRuntime | None = None) -> FastAPI:
    """Build the app; the lifespan loads the model in the background and releases it on exit."""
    settings = settings or get_settings()
    runtime = runtime or EngineRuntime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start_loading()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(title="EchoForge ef_tts", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(coqui_api.router)
    app.include_router(openai_api.router)
    app.include_router(health.router)
    # Request id (accepted or generated, echoed) and JSON access log, as in the backend; the
    # request span when OTEL_* turns tracing on.
    instrument_app(app, service="ef_tts")
    app.add_middleware(RequestContextMiddleware)
    return app
