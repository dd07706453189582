"""OpenTelemetry tracing, configured only from the standard ``OTEL_*`` variables.

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP/protobuf), ``console`` (one JSON span per
  line on stderr, so stdout stays JSON log lines), ``none`` (the default: no tracing at all,
  and no cost); a comma-separated list enables several.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``,
  ``..._TIMEOUT``: read by the OTLP exporter itself (default ``http://localhost:4318``).
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: read by the SDK (default
  ``parentbased_always_on``); ``OTEL_SERVICE_NAME`` overrides the service name;
  ``OTEL_SDK_DISABLED=true`` turns everything off.
- ``OTEL_PROPAGATORS`` (default ``tracecontext,baggage``): W3C trace context in and out.

Requests are traced by a lean server-span middleware (one span per request, HTTP semantic
conventions); ``instrument_app(stock=True)`` uses ``opentelemetry-instrumentation-fastapi``
instead. Spans inside the services (cache, queue, engine call, database) come from
``trace.get_tracer(__name__)`` and nest under the request span.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

__all__ = [
    "configure_tracing",
    "exporters_from_env",
    "instrument_app",
    "shutdown_tracing",
    "tracing_enabled",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_provider: TracerProvider | None = None
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


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr, formatter=_one_line)
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    if protocol != "http/protobuf":
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is supported "
            "(point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port, usually 4318)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource(service: str) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our default name.
    env_attrs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in env_attrs:
        return Resource.create()
    return Resource.create({SERVICE_NAME: service})


def configure_tracing(service: str) -> TracerProvider | None:
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
        provider = TracerProvider(resource=_resource(service))
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        trace.set_tracer_provider(provider)
        _provider = provider
        log.info("tracing on", extra={"exporters": names, "otel_service": service})
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


def instrument_app(
    app: Any, *, service: str, tracer_provider: Any | None = None, stock: bool | None = None
) -> bool:
    """Trace every request of the FastAPI ``app``; returns whether tracing is on.

    By default a lean pure-ASGI middleware (:class:`ef_common.asgi.ServerSpanMiddleware`)
    opens one server span per request, continuing the caller's W3C trace context. ``stock=True``
    (or ``EF_TRACING_INSTRUMENTATION=fastapi`` when ``stock`` is None) uses
    ``opentelemetry-instrumentation-fastapi`` instead, which costs about four times as much
    per request (figures in docs/performance.md). With ``tracer_provider`` (tests: an in-memory
    exporter) that provider is used whatever the environment says; otherwise
    :func:`configure_tracing` decides from ``OTEL_*``.

    Call it after adding the app's other middleware: the span must enclose them, so that the
    access log and the metric exemplars of the request carry its trace id.
    """
    provider = tracer_provider if tracer_provider is not None else configure_tracing(service)
    if provider is None:
        return False
    if stock is None:
        stock = stock_instrumentation_from_env()
    _disable_fastapi_native_tracing(app)
    if stock:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
        return True
    from ef_common.asgi import ServerSpanMiddleware

    app.add_middleware(ServerSpanMiddleware, tracer_provider=provider)
    return True
