"""A tiny OTLP/HTTP trace receiver for tests: parses every ``ExportTraceServiceRequest``.

The services export with the real OTLP HTTP exporter (protobuf over ``POST /v1/traces``); this
receiver decodes the protobuf with the OpenTelemetry proto classes and keeps the spans in memory,
so tests can assert on what really went over the wire.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.utils.procs import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass
class OtlpReceiver:
    """Listens on 127.0.0.1; ``endpoint`` is what OTEL_EXPORTER_OTLP_ENDPOINT should say."""

    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    #: statuses to answer with, in turn, before accepting (to test retries and rejections)
    failures: list[int] = field(default_factory=list)
    #: the headers and the decoded body of every accepted request
    headers: list[dict[str, str]] = field(default_factory=list)
    messages: list[ExportTraceServiceRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connections: list[socket.socket] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real collectors

            def setup(self) -> None:
                super().setup()
                receiver._connections.append(self.connection)

            def _refuse(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self._refuse(404)
                    return
                with receiver._lock:
                    failure = receiver.failures.pop(0) if receiver.failures else None
                if failure is not None:
                    self._refuse(failure)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.headers.append(dict(self.headers.items()))
                    receiver.messages.append(request)
                receiver._add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up on kept-alive clients (as a restarting collector does)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status_code=span.status.code,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """Poll until ``predicate(spans)`` holds; fail with what arrived otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.snapshot()
            if predicate(spans):
                return spans
            time.sleep(0.1)
        names = sorted({(s.service, s.name) for s in self.snapshot()})
        raise AssertionError(f"spans never matched after {timeout}s; received {names}")
