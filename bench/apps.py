"""The ASGI apps the benchmark serves, one per instrumentation configuration.

``BENCH_CONFIG`` picks the configuration; uvicorn loads ``bench.apps:create`` as a factory.
``BENCH_APP=real`` serves ef_backend's own ``create_app`` (endpoint ``/health/live``);
``BENCH_APP=minimal`` a bare FastAPI app with the same trivial endpoint, for when the backend
cannot start here.

Configurations:
  off            no instrumentation at all (uvicorn's access log off too)
  metrics        ours: request id + ef_http_* metrics; access log and tracing off
  logs           ours: metrics and the JSON access log; tracing off
  all            ours, everything on: metrics, JSON access log, tracing (OTLP, default sampler:
                 every request traced)
  all-10pct      as "all" with OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.1
  instrumentator prometheus-fastapi-instrumentator instead of ours
"""

from __future__ import annotations

import os
from typing import Any, cast

from fastapi import FastAPI

CONFIGS = ("off", "metrics", "logs", "all", "all-10pct", "instrumentator")


def _minimal() -> FastAPI:
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _base_app(instrumented: bool) -> FastAPI:
    """The app under test, with or without our ``install()``."""
    kind = os.environ.get("BENCH_APP", "minimal")
    if kind == "real":
        import ef_backend.observability.install as setup

        if not instrumented:
            patched: Any = setup  # replaced before main imports it: create_app skips install()
            patched.install = lambda *a, **k: None
        from ef_backend.main import create_app

        return cast(FastAPI, create_app())
    app = _minimal()
    if instrumented:
        from ef_backend.core.config import Settings
        from ef_backend.observability.install import install

        install(app, Settings(), lambda: None)
    return app


def create() -> Any:
    config = os.environ.get("BENCH_CONFIG", "off")
    if config not in CONFIGS:
        raise SystemExit(f"BENCH_CONFIG must be one of {', '.join(CONFIGS)}, not {config!r}")
    from ef_common.logging import configure_logging

    level = os.environ.get("EF_LOG_LEVEL", "WARNING")
    configure_logging(level, service="bench")
    if config == "off":
        return _base_app(instrumented=False)
    if config == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        app = _base_app(instrumented=False)
        Instrumentator().instrument(app).expose(app)
        return app
    return _base_app(instrumented=True)
