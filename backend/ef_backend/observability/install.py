"""``install()``: everything the backend needs to be observable, wired in one call.

``create_app`` calls it once its routes exist::

    install(app, settings, lambda: app.state.runtime)

It adds the request middleware (request id, access log, ``ef_http_*`` metrics), ``GET /metrics``
with the scrape-time collector and ``ef_build_info``, and OpenTelemetry tracing when ``OTEL_*``
asks for it (the FastAPI instrumentation then wraps the whole app, so the middleware runs inside
each request's span). Logging itself is configured by the process entry point
(``ef_common.logging.configure_logging``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ef_common.tracing import instrument_app
from fastapi import FastAPI

from ef_backend.core.config import Settings
from ef_backend.observability import metrics, multiprocess
from ef_backend.observability.collector import EchoForgeCollector
from ef_backend.observability.exposition import metrics_endpoint
from ef_backend.observability.middleware import HttpMetrics, observability_middleware

__all__ = ["SERVICE_NAME", "install"]

log = logging.getLogger(__name__)

#: ``service.name`` of the backend's traces and ``service`` of its logs.
SERVICE_NAME = "ef_backend"


def install(app: FastAPI, settings: Settings, runtime_getter: Callable[[], Any]) -> None:
    """Make ``app`` observable: middleware, ``/metrics``, collector, build info, tracing.

    ``runtime_getter`` returns the running ``Runtime`` (or None while starting); it is called at
    scrape time, never at import. Raises ``MultiprocessConfigError`` when ``EF_WORKERS > 1``
    without Prometheus multiprocess mode.
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
    traced = instrument_app(app, service=SERVICE_NAME)
    app.add_middleware(
        observability_middleware,
        observer=HttpMetrics(),
        trusted_proxies=settings.trusted_proxies,
    )
    log.debug(
        "observability installed",
        extra={"tracing": traced, "multiprocess": multiprocess.enabled()},
    )
