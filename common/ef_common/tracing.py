"""OpenTelemetry tracing, configured only from the standard ``OTEL_*`` variables.

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf), ``console`` (one JSON span per
  line on stderr, so stdout stays JSON log lines), ``none`` (the default: no tracing at all,
  and no cost); a comma-separated list enables several.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``,
  ``..._TIMEOUT``, ``..._COMPRESSION``, ``..._CERTIFICATE``: see :mod:`ef_common.span_export`
  (default endpoint ``http://localhost:4318``).
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``),
  ``OTEL_SPAN_*_LIMIT``, ``OTEL_BSP_*``; ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
  set the resource; ``OTEL_SDK_DISABLED=true`` turns everything off.
- ``OTEL_PROPAGATORS`` (default ``tracecontext,baggage``): W3C trace context in and out.

Spans are made by :class:`ef_common.spans.LeanTracerProvider`, our implementation of the
OpenTelemetry API, and exported by :mod:`ef_common.span_export`: the SDK's span pipeline
costs eight times as much per span (bench/spans.py, docs/performance.md). Everything traces
through the standard API, so any OpenTelemetry instrumentation library works with it, and
tests may pass an SDK provider (``tracer_provider=``) to read spans in memory.

Requests are traced by our request middleware (one span per request, HTTP semantic
conventions); ``instrument_app(stock=True)`` uses ``opentelemetry-instrumentation-fastapi``
instead. Spans inside the services (cache, queue, engine call, database) come from
``trace.get_tracer(__name__)`` and nest under the request span.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from ef_common.span_export import BatchExporter, ConsoleExporter, OtlpHttpExporter, SpanExporter
from ef_common.spans import LeanTracerProvider

__all__ = [
    "RequestTracing",
    "configure_tracing",
    "exporters_from_env",
    "instrument_app",
    "shutdown_tracing",
    "tracing_enabled",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: LeanTracerProvider | None = None
_configured = False


def exporters_from_env() -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` asks for (empty when tracing is off)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [n for n in names if n not in {"otlp", "console", "none"}]
    if unknown:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unsupported exporter {unknown[0]!r} "
            "(use otlp, console or none)"
        )
    return [n for n in names if n != "none"]


def _exporter(name: str, resource: dict[str, Any]) -> SpanExporter:
    if name == "console":
        return ConsoleExporter(resource)
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported "
            "(point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port, usually 4318)"
        )
    return OtlpHttpExporter(resource)


def _resource(service: str) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our default name.
    env_attrs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in env_attrs:
        return Resource.create()
    return Resource.create({SERVICE_NAME: service})


def configure_tracing(service: str) -> LeanTracerProvider | None:
    """Install the global tracer provider that ``OTEL_*`` asks for; None when tracing is off.

    Called once per process (later calls return the first result).
    """
    global _provider, _configured
    with _lock:
        if _configured:
            return _provider
        _configured = True
        names = exporters_from_env()
        if not names:
            return None
        resource = dict(_resource(service).attributes)
        processor = BatchExporter([_exporter(name, resource) for name in names])
        provider = LeanTracerProvider(processor, resource)
        trace.set_tracer_provider(provider)
        atexit.register(provider.shutdown)  # the last spans of a short-lived process
        _provider = provider
        log.info(
            "tracing on",
            extra={
                "exporters": names,
                "otel_service": resource.get(SERVICE_NAME),
                "sampler": provider.sampler_name,
            },
        )
        return provider


def tracing_enabled() -> bool:
    return _provider is not None


def shutdown_tracing() -> None:
    """Flush and stop the exporters (call on shutdown so the last spans are not lost)."""
    if _provider is not None:
        _provider.shutdown()


def _disable_fastapi_native_tracing(app: Any) -> None:
    """Stop FastAPI's built-in telemetry (FastAPI >= 0.16x) from tracing requests a second time.

    Once a global tracer provider exists, FastAPI opens its own request span plus spans for
    dependency resolution and serialisation: three times the cost of our span, with the same
    information. ``FastAPI(telemetry={"tracing": False})`` is the public switch; the app is
    already built here, so the same setting is changed in place.
    """
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict) and "tracing" in config:
        config["tracing"] = False


#: ``lean`` (default): our request span; ``fastapi``: opentelemetry-instrumentation-fastapi.
INSTRUMENTATION_ENV = "EF_TRACING_INSTRUMENTATION"
INSTRUMENTATIONS = ("lean", "fastapi")


def stock_instrumentation_from_env() -> bool:
    """Does ``EF_TRACING_INSTRUMENTATION`` ask for the stock FastAPI instrumentation?"""
    value = os.environ.get(INSTRUMENTATION_ENV, "lean").strip().lower() or "lean"
    if value not in INSTRUMENTATIONS:
        raise ValueError(
            f"{INSTRUMENTATION_ENV}={value!r}: use one of {', '.join(INSTRUMENTATIONS)}"
        )
    return value == "fastapi"


@dataclass(frozen=True)
class RequestTracing:
    """What :func:`instrument_app` decided for an app."""

    #: requests are traced (by our middleware or the stock instrumentation)
    enabled: bool
    #: hand this to :class:`ef_common.asgi.RequestContextMiddleware` (None: it opens no span)
    tracer_provider: Any | None = None


def instrument_app(
    app: Any, *, service: str, tracer_provider: Any | None = None, stock: bool | None = None
) -> RequestTracing:
    """Turn request tracing on for the FastAPI ``app`` when ``OTEL_*`` asks for it.

    By default our request middleware (:class:`ef_common.asgi.RequestContextMiddleware`) opens
    one server span per request, continuing the caller's W3C trace context: pass it the
    returned ``tracer_provider``. ``stock=True`` (or ``EF_TRACING_INSTRUMENTATION=fastapi``
    when ``stock`` is None) uses ``opentelemetry-instrumentation-fastapi`` instead, which wraps
    the whole app itself and costs about four times as much per request (figures in
    docs/performance.md). With ``tracer_provider`` (tests: an in-memory exporter) that provider
    is used whatever the environment says; otherwise :func:`configure_tracing` decides.
    """
    provider = tracer_provider if tracer_provider is not None else configure_tracing(service)
    if provider is None:
        return RequestTracing(enabled=False)
    if stock is None:
        stock = stock_instrumentation_from_env()
    _disable_fastapi_native_tracing(app)
    if stock:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
        return RequestTracing(enabled=True)
    return RequestTracing(enabled=True, tracer_provider=provider)
