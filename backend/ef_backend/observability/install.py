"""``install()``: everything the backend needs to be observable, wired in one call.

``create_app`` calls it last, after adding its own middleware, so that our middleware is the
outermost and sees every response (429s and CORS preflights included)::

    install(app, settings, lambda: app.state.runtime)

It adds the request middleware (request id, access log, ``ef_http_*`` metrics), ``GET /metrics``
with the scrape-time collector and ``ef_build_info``, and OpenTelemetry tracing when ``OTEL_*``
asks for it. Logging itself is configured by the process entry point
(``ef_common.logging.configure_logging``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ef_common.asgi import HttpObserver
from ef_common.tracing import instrument_app
from fastapi import FastAPI
from prometheus_client import REGISTRY

from ef_backend.core.config import Settings
from ef_backend.observability import metrics, multiprocess
from ef_backend.observability.collector import EchoForgeCollector
from ef_backend.observability.exposition import metrics_endpoint
from ef_backend.observability.http_metrics import HttpMetrics
from ef_backend.observability.middleware import PrometheusHttpObserver, observability_middleware

__all__ = ["SERVICE_NAME", "install"]

log = logging.getLogger(__name__)

#: ``service.name`` of the backend's traces and ``service`` of its logs.
SERVICE_NAME = "ef_backend"


_http_metrics: HttpMetrics | None = None


def _http_observer() -> HttpObserver:
    """Multiprocess: the prometheus-client objects (shared files); else the lock-free store."""
    global _http_metrics
    if multiprocess.enabled():
        return PrometheusHttpObserver()
    if _http_metrics is None:
        _http_metrics = HttpMetrics()
        REGISTRY.register(_http_metrics)
    return _http_metrics


def install(
    app: FastAPI,
    settings: Settings,
    runtime_getter: Callable[[], Any],
    *,
    tracer_provider: Any | None = None,
) -> None:
    """Make ``app`` observable: middleware, ``/metrics``, collector, build info, tracing.

    ``runtime_getter`` returns the running ``Runtime`` (or None while starting); it is
    called at scrape time, never at import. ``tracer_provider`` is for tests (an in-memory
    exporter); in production ``OTEL_*`` decides. Raises ``MultiprocessConfigError`` when
    ``EF_WORKERS > 1`` without Prometheus multiprocess mode.
    """
    multiprocess.check(settings)
    metrics.init_label_values()

    app.add_api_route(
        "/metrics",
        metrics_endpoint(EchoForgeCollector(settings, runtime_getter)),
        methods=["GET"],
        include_in_schema=False,
        name="metrics",
    )
    tracing = instrument_app(app, service=SERVICE_NAME, tracer_provider=tracer_provider)
    app.add_middleware(
        observability_middleware,
        observer=_http_observer(),
        trusted_proxies=settings.trusted_proxies,
        tracer_provider=tracing.tracer_provider,
    )
    log.debug(
        "observability installed",
        extra={"tracing": tracing.enabled, "multiprocess": multiprocess.enabled()},
    )
