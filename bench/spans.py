"""CPU per span: the OpenTelemetry SDK's span pipeline against ours, side by side in one run.

Each pipeline makes a server span the way our request middleware does (five attributes, made
current, renamed, ended), queues it and encodes it to OTLP protobuf on its export thread; the
bytes are thrown away instead of POSTed, so only the in-process cost is compared. CPU time is
the whole process's (export threads included), median of the rounds, pipelines interleaved.

    .venv/bin/python bench/spans.py --spans 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "common"))

from ef_common.span_export import BatchExporter, OtlpHttpExporter  # noqa: E402
from ef_common.spans import LeanTracerProvider  # noqa: E402
from opentelemetry import context, trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

RESOURCE = {"service.name": "bench"}


class _SdkEncodeOnly(SpanExporter):
    """The SDK OTLP exporter's encoding step, without the HTTP request."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


class _LeanEncodeOnly(OtlpHttpExporter):
    """Our OTLP exporter with the HTTP request left out (the body is still built)."""

    def _post(self, body: bytes, timeout_s: float) -> tuple[bool, str] | None:
        return None


def _sdk() -> tuple[Any, Callable[[], None]]:
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(BatchSpanProcessor(_SdkEncodeOnly()))
    return provider, provider.shutdown


def _lean() -> tuple[Any, Callable[[], None]]:
    provider = LeanTracerProvider(BatchExporter([_LeanEncodeOnly(RESOURCE)]), RESOURCE)
    return provider, provider.shutdown


PIPELINES = {"opentelemetry-sdk": _sdk, "ef_common": _lean}


def _run(make: Callable[[], tuple[Any, Callable[[], None]]], spans: int) -> float:
    """CPU µs per span, export thread included."""
    provider, shutdown = make()
    tracer = provider.get_tracer("bench")
    parent = context.Context()
    started = time.process_time()
    for n in range(spans):
        span = tracer.start_span(
            "GET",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "url.path": "/api/v1/speech",
                "url.scheme": "http",
            },
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        span.update_name("GET /api/v1/speech")
        span.set_attributes({"http.route": "/api/v1/speech", "http.response.status_code": 200})
        context.detach(token)
        span.end()
        if n % 64 == 0:
            time.sleep(0)  # let the export thread run, as a server's event loop would
    shutdown()  # exports what is still queued
    return (time.process_time() - started) / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for _ in range(args.rounds):
        for name, make in PIPELINES.items():
            results[name].append(_run(make, args.spans))
    sdk = statistics.median(results["opentelemetry-sdk"])
    print(f"\n{args.spans} spans x {args.rounds} rounds, median CPU per span\n")
    print("| pipeline | CPU us/span | vs SDK |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.1f} | {median / sdk:.2f} |")


if __name__ == "__main__":
    main()
