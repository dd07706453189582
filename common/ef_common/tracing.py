"""OpenTelemetry tracing on the SDK, configured only from the standard ``OTEL_*`` variables.

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` (one JSON span per line on stderr, so stdout
  stays JSON log lines) or ``none`` (the default: no provider, no instrumentation, no cost); a
  comma-separated list enables several. ``OTEL_SDK_DISABLED=true`` turns everything off.
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL``): ``http/protobuf`` (default,
  port 4318) or ``grpc`` (port 4317). Every other variable is read by the SDK and its exporters
  as they document it: ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``..._HEADERS``,
  ``..._TIMEOUT``, ``..._COMPRESSION``, ``..._CERTIFICATE``, ``OTEL_TRACES_SAMPLER[_ARG]``
  (default ``parentbased_always_on``), ``OTEL_BSP_*``, ``OTEL_SPAN_*_LIMIT``,
  ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_PROPAGATORS``.

Requests are traced by ``opentelemetry-instrumentation-fastapi`` (:func:`instrument_app`), HTTP
calls by ``opentelemetry-instrumentation-httpx`` (:func:`instrument_httpx_client`); both
propagate W3C trace context. Spans inside the services come from ``trace.get_tracer(__name__)``
and nest under the request span. The HTTP attributes follow the stable semantic conventions
(``OTEL_SEMCONV_STABILITY_OPT_IN=http`` unless set otherwise).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = [
    "configure_tracing",
    "exporters_from_env",
    "instrument_app",
    "instrument_httpx_client",
    "tracing_enabled",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_configured = False

#: Never traced: scrapes and health probes come every few seconds and say nothing about a user.
EXCLUDED_PATHS = ("/metrics", "/health/live", "/health/ready")
_PROTOCOLS = ("http/protobuf", "grpc")


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


def _otlp_exporter() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return HttpSpanExporter()
    raise ValueError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use one of {', '.join(_PROTOCOLS)}"
    )


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    return _otlp_exporter()


def _resource(service: str) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over our default name.
    env_attrs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in env_attrs:
        return Resource.create()
    return Resource.create({SERVICE_NAME: service})


def configure_tracing(service: str) -> TracerProvider | None:
    """Install the global tracer provider that ``OTEL_*`` asks for; None when tracing is off.

    Called once per process; later calls change nothing. A provider set before (tests: one
    with an in-memory exporter) is kept.
    """
    global _configured
    with _lock:
        if _configured or tracing_enabled():
            return None
        _configured = True
        names = exporters_from_env()
        if not names:
            return None
        provider = TracerProvider(resource=_resource(service))
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        trace.set_tracer_provider(provider)  # flushed by the SDK at exit
        log.info(
            "tracing on",
            extra={"exporters": names, "otel_service": provider.resource.attributes[SERVICE_NAME]},
        )
        return provider


def tracing_enabled() -> bool:
    """Is a real tracer provider installed (rather than the API's no-op default)?"""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _hide_query(span: Any, scope: dict[str, Any]) -> None:
    """ef_tts takes the spoken text in the query string: keep it out of every span."""
    if scope.get("query_string") and span.is_recording():
        span.set_attribute("url.query", "REDACTED")


def instrument_app(app: Any, *, service: str, excluded: Iterable[str] = EXCLUDED_PATHS) -> bool:
    """Trace the FastAPI ``app``'s requests when tracing is on; returns whether it is.

    One server span per request, continuing the caller's W3C trace context, without the
    per-message ``http send``/``http receive`` spans; ``excluded`` paths are not traced.
    """
    configure_tracing(service)
    if not tracing_enabled():
        return False
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    _disable_fastapi_native_tracing(app)
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=",".join(f"{path}$" for path in excluded),
        exclude_spans=["receive", "send"],
        server_request_hook=_hide_query,
    )
    return True


def _strip_query(span: Any, request: Any) -> None:
    """A GET fallback to an old engine carries the text in the URL: record the URL without it."""
    url = getattr(request, "url", None)
    if span.is_recording() and url is not None and getattr(url, "query", b""):
        span.set_attribute("url.full", str(url).split("?", 1)[0])


async def _strip_query_async(span: Any, request: Any) -> None:
    _strip_query(span, request)


def instrument_httpx_client(client: Any) -> None:
    """Trace the calls of this ``httpx`` client (and send W3C trace context) when tracing is on."""
    if not tracing_enabled():
        return
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    import httpx
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    hook = _strip_query_async if isinstance(client, httpx.AsyncClient) else _strip_query
    HTTPXClientInstrumentor.instrument_client(client, request_hook=hook)


def _disable_fastapi_native_tracing(app: Any) -> None:
    """Stop FastAPI's built-in telemetry (recent FastAPI) from tracing requests a second time.

    ``FastAPI(telemetry={"tracing": False})`` is the public switch; the app is already built
    here, so the same setting is changed in place.
    """
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict) and "tracing" in config:
        config["tracing"] = False
