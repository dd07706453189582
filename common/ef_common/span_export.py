"""Getting finished spans out of the process: a batching thread, OTLP/HTTP and the console.

:class:`BatchExporter` is the span processor of :class:`ef_common.spans.LeanTracerProvider`:
ending a span appends it to a deque (no lock on the request path); a daemon thread wakes every
``OTEL_BSP_SCHEDULE_DELAY`` ms, or as soon as ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans wait,
and hands them to the exporters. When more than ``OTEL_BSP_MAX_QUEUE_SIZE`` spans wait (the
collector is down or slow), new spans are dropped and counted, never queued without bound;
the drop is logged once per export round.

:class:`OtlpHttpExporter` sends OTLP/HTTP protobuf to ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``; default ``http://localhost:4318``), with
``..._HEADERS``, ``..._TIMEOUT`` (milliseconds, as the OpenTelemetry specification says),
``..._COMPRESSION`` (``gzip`` or ``none``) and ``..._CERTIFICATE`` / ``..._CLIENT_KEY`` /
``..._CLIENT_CERTIFICATE`` for TLS. 429, 502, 503 and 504 answers and connection errors are
retried with backoff until the timeout; anything else drops the batch with a warning. Header
values (credentials, usually) are never logged.
"""

from __future__ import annotations

import collections
import gzip
import http.client
import json
import logging
import os
import ssl
import sys
import threading
import time
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from ef_common import otlp_proto
from ef_common.spans import LeanSpan, Scope, env_int

__all__ = ["BatchExporter", "ConsoleExporter", "OtlpHttpExporter", "SpanExporter"]

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

_live: weakref.WeakSet[BatchExporter] = weakref.WeakSet()


def _restart_after_fork() -> None:
    # A forked child (uvicorn or gunicorn workers) has neither the thread nor a usable lock.
    for exporter in list(_live):
        if not exporter.stopped:
            exporter._start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_after_fork)


class SpanExporter(Protocol):
    """Sends finished spans somewhere, in two steps, both in the export thread.

    ``prepare`` turns one span into what will be sent (protobuf bytes, a JSON line); ``export``
    sends a batch of prepared items. Preparing the spans of a batch one after the other, off
    the request path, costs less than encoding each span as it ends did (the encoder stays in
    the CPU's caches; docs/performance.md).
    """

    def prepare(self, span: LeanSpan) -> Any: ...

    def export(self, items: Sequence[Any]) -> bool: ...

    def shutdown(self) -> None: ...


def _env(*names: str, default: str = "") -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return default


def _env_count(name: str, default: int) -> int:
    return env_int((name,), default, minimum=1) or default


class BatchExporter:
    """Batches finished spans and exports them from a background thread."""

    def __init__(
        self,
        exporters: Sequence[SpanExporter],
        *,
        max_queue_size: int | None = None,
        max_batch_size: int | None = None,
        schedule_delay_s: float | None = None,
    ) -> None:
        self.exporters = list(exporters)
        self.max_queue_size = max_queue_size or _env_count("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.max_batch_size = max_batch_size or _env_count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        if self.max_batch_size > self.max_queue_size:
            raise ValueError(
                f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({self.max_batch_size}) must not exceed "
                f"OTEL_BSP_MAX_QUEUE_SIZE ({self.max_queue_size})"
            )
        self.schedule_delay_s = (
            schedule_delay_s
            if schedule_delay_s is not None
            else _env_count("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000.0
        )
        #: spans dropped because the queue was full (since start)
        self.dropped = 0
        self._reported_drops = 0
        self.stopped = False
        self._start()
        _live.add(self)

    def _start(self) -> None:
        """(Re)create the queue and the thread: also in a forked child, where neither survives."""
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ef-span-export", daemon=True)
        self._thread.start()

    def on_end(self, span: LeanSpan) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) == self.max_batch_size:
            self._wake.set()

    def _run(self) -> None:
        while not self.stopped:
            batch_full = self._wake.wait(self.schedule_delay_s)
            self._wake.clear()
            if self.stopped:
                break
            try:
                # Woken by a full batch: send full batches only (the rest goes, oldest first,
                # with the next one); on the timer: everything, so no span waits for long.
                self._drain(full_only=batch_full)
            except Exception:  # never let the thread die: later spans would pile up
                log.exception("span export failed")

    def _drain(self, *, full_only: bool = False) -> bool:
        ok = True
        least = self.max_batch_size if full_only else 1
        with self._export_lock:
            queue = self._queue
            while len(queue) >= least:
                count = min(len(queue), self.max_batch_size)
                spans = [queue.popleft() for _ in range(count)]
                for exporter in self.exporters:
                    prepare = exporter.prepare
                    ok = exporter.export([prepare(span) for span in spans]) and ok
            dropped = self.dropped
            if dropped != self._reported_drops:
                log.warning(
                    "span queue full: dropped %d spans (OTEL_BSP_MAX_QUEUE_SIZE=%d)",
                    dropped - self._reported_drops,
                    self.max_queue_size,
                    extra={"spans_dropped_total": dropped},
                )
                self._reported_drops = dropped
        return ok

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Export what is queued now, in the caller's thread."""
        return self._drain()

    def shutdown(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._wake.set()
        self._thread.join(timeout=self.schedule_delay_s + 1.0)
        self._drain()
        for exporter in self.exporters:
            exporter.shutdown()


def _headers_from_env(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` with URL-encoded values (the OTLP exporter format)."""
    headers: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # The value may be a credential: name the variable, never echo it.
            raise ValueError("OTEL_EXPORTER_OTLP_HEADERS: each entry must be key=value")
        headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


def _traces_url() -> str:
    url = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not url:
        base = _env("OTEL_EXPORTER_OTLP_ENDPOINT", default="http://localhost:4318")
        url = base.rstrip("/") + "/v1/traces"
    return url


def _scope_body(scope: Scope) -> bytes:
    """The encoded ``InstrumentationScope`` of a tracer, made once and kept on the scope."""
    encoded = scope.otlp
    if encoded is None:
        encoded = scope.otlp = otlp_proto.encode_scope(scope.name, scope.version, scope.attributes)
    return encoded


def encode_request(resource: bytes, items: Sequence[tuple[bytes, bytes]]) -> bytes:
    """One ``ExportTraceServiceRequest`` from (scope, span) bodies, grouped by scope."""
    grouped: dict[bytes, list[bytes]] = {}
    for scope, span in items:
        spans = grouped.get(scope)
        if spans is None:
            spans = grouped[scope] = []
        spans.append(span)
    return otlp_proto.encode_request(resource, grouped.items())


class OtlpHttpExporter:
    """OTLP over HTTP with protobuf bodies, configured from ``OTEL_EXPORTER_OTLP_*``."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.url = _traces_url()
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_ENDPOINT: {self.url!r} is not an http(s) URL "
                "(for example http://otel-collector:4318)"
            )
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._path = parsed.path or "/"
        if parsed.query:
            self._path += "?" + parsed.query
        timeout_ms = _env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        try:
            self.timeout_s = float(timeout_ms) / 1000.0 if timeout_ms else 10.0
        except ValueError as exc:
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout_ms!r}: milliseconds, a number"
            ) from exc
        if self.timeout_s <= 0:
            raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout_ms!r}: must be positive")
        compression = (
            _env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION").lower()
            or "none"
        )
        if compression not in {"gzip", "none"}:
            raise ValueError(f"OTEL_EXPORTER_OTLP_COMPRESSION={compression!r}: use gzip or none")
        self.gzip = compression == "gzip"
        self.headers = {"Content-Type": "application/x-protobuf", "User-Agent": "echoforge"}
        self.headers.update(
            _headers_from_env(
                _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
            )
        )
        if self.gzip:
            self.headers["Content-Encoding"] = "gzip"
        self._ssl = self._ssl_context() if self._https else None
        self._resource = otlp_proto.encode_resource(resource)
        self._conn: http.client.HTTPConnection | None = None

    @staticmethod
    def _ssl_context() -> ssl.SSLContext:
        ca = _env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
        context = ssl.create_default_context(cafile=ca or None)
        cert = _env(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
        )
        key = _env("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY")
        if cert:
            context.load_cert_chain(cert, key or None)
        return context

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._ssl is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout_s, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        self._conn.timeout = timeout_s
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def prepare(self, span: LeanSpan) -> tuple[bytes, bytes]:
        return _scope_body(span.scope), otlp_proto.encode_span(span)

    def export(self, items: Sequence[tuple[bytes, bytes]]) -> bool:
        body = encode_request(self._resource, items)
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
        deadline = time.monotonic() + self.timeout_s
        backoff = 1.0
        while True:
            left = deadline - time.monotonic()
            problem = self._post(body, max(left, 0.1))
            if problem is None:
                return True
            retryable, reason = problem
            left = deadline - time.monotonic()
            if not retryable or left <= backoff:
                log.warning("could not export %d spans to %s: %s", len(items), self.url, reason)
                return False
            time.sleep(backoff)
            backoff *= 2

    def _post(self, body: bytes, timeout_s: float) -> tuple[bool, str] | None:
        """None when the collector took the spans, else (retryable?, why not)."""
        for attempt in range(2):
            reused = self._conn is not None
            try:
                conn = self._connection(timeout_s)
                conn.request("POST", self._path, body=body, headers=self.headers)
                response = conn.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                # A kept-alive connection the collector closed while idle: once more, new.
                if attempt or not reused:
                    return True, f"{type(exc).__name__}: {exc}"
        if response.will_close:
            self._close()
        if 200 <= response.status < 300:
            return None
        reason = f"HTTP {response.status} {response.reason}"
        return response.status in RETRYABLE_STATUSES, reason

    def shutdown(self) -> None:
        self._close()


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    when = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ids(trace_id: int, span_id: int, state: str) -> dict[str, str]:
    return {"trace_id": f"0x{trace_id:032x}", "span_id": f"0x{span_id:016x}", "trace_state": state}


class ConsoleExporter:
    """One JSON object per span per line (the SDK's console layout), on stderr by default.

    stderr, because stdout carries the JSON log lines.
    """

    def __init__(self, resource: Mapping[str, Any], out: TextIO | None = None) -> None:
        self._resource = {"attributes": dict(resource), "schema_url": ""}
        self._out = out

    def prepare(self, span: LeanSpan) -> str:
        return json.dumps(self.as_dict(span), default=str) + "\n"

    def export(self, items: Sequence[str]) -> bool:
        out = self._out if self._out is not None else sys.stderr
        out.write("".join(items))
        out.flush()
        return True

    def as_dict(self, span: LeanSpan) -> dict[str, Any]:
        status: dict[str, Any] = {"status_code": span.status_code.name}
        if span.status_description:
            status["description"] = span.status_description
        return {
            "name": span.name,
            "context": _ids(span.trace_id, span.span_id, span.trace_state.to_header()),
            "kind": str(span.kind),
            "parent_id": f"0x{span.parent_id:016x}" if span.parent_id else None,
            "start_time": _iso(span.start_time),
            "end_time": _iso(span.end_time),
            "status": status,
            "attributes": dict(span.attributes),
            "events": [
                {"name": name, "timestamp": _iso(when), "attributes": attributes}
                for name, when, attributes in span.events
            ],
            "links": [
                {
                    "context": _ids(link.context.trace_id, link.context.span_id, ""),
                    "attributes": dict(link.attributes or {}),
                }
                for link in span.links
            ],
            "resource": self._resource,
            "scope": {"name": span.scope.name, "version": span.scope.version},
        }

    def shutdown(self) -> None:
        return None
