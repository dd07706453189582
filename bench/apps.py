"""The backend under each instrumentation configuration, for bench/instrumentation.py and
bench/scrape.py.

uvicorn loads ``bench.apps:create`` as a factory; ``BENCH_CONFIG`` picks the configuration:

  off        no request instrumentation: ``install()`` skipped (no middleware, no ``ef_http_*``,
             no access log, no tracing)
  metrics    what ``install()`` adds, with the access log and tracing off
  all        everything on: metrics, JSON access log, tracing with the default sampler (every
             request traced) exported over OTLP
  all-10pct  as ``all`` with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``ARG=0.1``

``BENCH_EXTRA_ROUTES=N`` adds N trivial routes, ``GET /api/bench/rNN/{item_id}``, so that the
app has as many route templates as a larger one would (bench/scrape.py).

The log level and ``OTEL_*`` variables come from the environment the benchmark sets.
"""

from __future__ import annotations

import os
from typing import Any

CONFIGS = ("off", "metrics", "all", "all-10pct")
EXTRA_PREFIX = "/api/bench"


def create() -> Any:
    config = os.environ.get("BENCH_CONFIG", "off")
    if config not in CONFIGS:
        raise SystemExit(f"BENCH_CONFIG must be one of {', '.join(CONFIGS)}, not {config!r}")
    if config == "off":
        import ef_backend.observability.install as install_module

        patched: Any = install_module  # replaced before main imports it
        patched.install = lambda *a, **k: None
    from ef_backend.main import create_app

    app = create_app()
    _add_routes(app, int(os.environ.get("BENCH_EXTRA_ROUTES", "0")))
    return app


def extra_route(number: int) -> str:
    """The template of synthetic route ``number``."""
    return f"{EXTRA_PREFIX}/r{number:02d}/{{item_id}}"


def _add_routes(app: Any, count: int) -> None:
    """``count`` routes on an APIRouter, included like the app's own: behind the same
    middleware, and before the frontend's catch-all mount (which would shadow them)."""
    if count <= 0:
        return
    from fastapi import APIRouter
    from starlette.routing import Mount

    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    router = APIRouter(tags=["bench"])
    for number in range(count):
        router.add_api_route(extra_route(number), item, methods=["GET"], name=f"bench_{number}")
    app.include_router(router)
    routes = app.router.routes
    catch_all = [r for r in routes if isinstance(r, Mount) and r.path == ""]
    routes[:] = [r for r in routes if r not in catch_all] + catch_all
