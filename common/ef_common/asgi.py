"""Request id, request span, HTTP metrics hook and access log in one pure ASGI middleware.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no extra task and no body wrapping per
request, and one layer for all four (one ``send`` wrapper, one route lookup). While a request
is answered the middleware only does what must happen then (request id, span, timing); counting
it and writing its access-log line happen in a batch after the event-loop turn
(:mod:`ef_common.request_batch`), which keeps the cost of always-on instrumentation low (see
``docs/performance.md``). Both services use it; the backend passes an observer that records the
``ef_http_*`` metrics, and :func:`ef_common.tracing.instrument_app` gives the tracer provider
when tracing is on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ef_common.context import (
    RequestContext,
    current_request,
    new_request_id,
    reset_request,
    start_request,
    valid_request_id,
)
from ef_common.logging import ACCESS_LOGGER, write_access_log
from ef_common.request_batch import LoopBatch, RequestRecord
from ef_common.spans import LeanSpan, LeanTracer

__all__ = [
    "KNOWN_METHODS",
    "UNMATCHED_ROUTE",
    "HttpObserver",
    "RequestContextMiddleware",
    "route_template",
    "span_method",
]

#: The ``route`` label of every request no route matched (404s of unknown paths).
UNMATCHED_ROUTE = "<unmatched>"
#: Methods kept as they are in labels; anything else becomes ``OTHER``.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

_REQUEST_ID_HEADER = b"x-request-id"
_access_log = logging.getLogger(ACCESS_LOGGER)


class HttpObserver(Protocol):
    """Receives every HTTP request's outcome (the backend records Prometheus metrics).

    ``request_started`` and ``request_ended`` are called while the request is answered (the
    in-progress gauge); ``record`` gets the finished requests in a batch, after the event-loop
    turn in which they ended.
    """

    def request_started(self) -> None: ...

    def request_ended(self) -> None: ...

    def record(self, requests: Sequence[RequestRecord]) -> None: ...


def _remember(owner: Any, attribute: str, value: Any) -> None:
    # Cached on the route object itself (routes define __eq__, so they cannot be dict keys,
    # and ids are reused once an app is gone).
    with contextlib.suppress(AttributeError, TypeError):
        setattr(owner, attribute, value)


def route_template(scope: Scope, root_path: str = "", status: int = 200) -> str:
    """The route template that answered (``/api/v1/jobs/{job_id}``), never the raw path.

    A mounted app (the static frontend) gives its mount's template (``/{path}``). Unknown
    paths, redirects of unknown paths and 404s from a catch-all mount all map to
    :data:`UNMATCHED_ROUTE`, so clients cannot grow label cardinality.
    """
    route = scope.get("route")
    if route is None:
        endpoint = scope.get("endpoint")
        if endpoint is None or status == 404:
            return UNMATCHED_ROUTE
        mounted: str | None = getattr(endpoint, "_ef_mount_template", None)
        if mounted is None:
            mounted = _mount_template(scope.get("app"), endpoint)
            _remember(endpoint, "_ef_mount_template", mounted)
        return mounted
    prefix = scope.get("root_path", "")[len(root_path) :]
    templates: dict[str, str] | None = getattr(route, "_ef_templates", None)
    if templates is None:
        templates = {}
        _remember(route, "_ef_templates", templates)
    template = templates.get(prefix)
    if template is None:
        path_format = getattr(route, "path_format", None)
        if not isinstance(path_format, str):
            return UNMATCHED_ROUTE
        if hasattr(route, "routes") or (hasattr(route, "app") and not hasattr(route, "endpoint")):
            # A mount answered itself: its own path_format is already absolute.
            template = path_format
        else:
            template = prefix + path_format
        templates[prefix] = template
    if status == 404 and not hasattr(route, "endpoint"):
        return UNMATCHED_ROUTE
    return template


def _mount_template(app: Any, endpoint: Any) -> str:
    """The template of the mount (of ``app``) that serves ``endpoint``, e.g. ``/{path}``."""
    for candidate in getattr(app, "routes", ()):
        if getattr(candidate, "app", None) is endpoint:
            path_format = getattr(candidate, "path_format", None)
            if isinstance(path_format, str):
                return path_format
    return UNMATCHED_ROUTE


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class RequestContextMiddleware:
    """Sets the request id, traces the request, feeds metrics and writes the access log.

    A client's ``X-Request-ID`` is kept when it is short and printable, otherwise replaced by a
    fresh one (the response always says which id the logs use). ``client_ip`` resolves the
    address the access log shows (default: the TCP peer) unless the app already called
    :func:`ef_common.context.bind_client`.

    With ``tracer_provider`` every request gets one OpenTelemetry server span, continuing the
    caller's W3C trace context. It is named ``{method} {route}`` and carries the stable HTTP
    semantic-convention attributes (``http.request.method``, ``http.route``,
    ``http.response.status_code``, ``url.path``, ``url.scheme``); the query string is not
    recorded (ef_tts takes the spoken text there). 5xx responses and exceptions mark it as an
    error. Its trace id goes with the request's record, so the exemplars and the access-log line
    link to it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        observer: HttpObserver | None = None,
        access_log: bool = True,
        client_ip: Callable[[Scope], str | None] | None = None,
        tracer_provider: Any | None = None,
    ) -> None:
        self.app = app
        self.observer = observer
        self.access_log = access_log
        self.client_ip = client_ip
        self._finished: LoopBatch[_Finished] = LoopBatch(self._process)
        self._tracer = None
        if tracer_provider is not None:
            self._tracer = tracer_provider.get_tracer("ef_common.asgi")
            self._propagator = propagate.get_global_textmap()
            self._fields = frozenset(f.encode() for f in self._propagator.fields)
            self._empty = Context()  # no traceparent: a new trace, whatever the caller's context

    def _start_span(self, scope: Scope, method: str) -> tuple[trace.Span, Token[Context]]:
        carrier: dict[str, str] | None = None
        for key, value in scope["headers"]:
            if key in self._fields:
                if carrier is None:
                    carrier = {}
                carrier[key.decode("latin-1")] = bytes(value).decode("latin-1")
        parent = self._propagator.extract(carrier) if carrier else self._empty
        attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        tracer = self._tracer
        if type(tracer) is LeanTracer:  # ours: the parent is at hand, skip the generic checks
            parent_span = None
            if carrier:
                parent_span = trace.get_current_span(parent).get_span_context()
                if not parent_span.is_valid:
                    parent_span = None
            span = tracer.start_request_span(method, parent_span, attributes)
        else:
            assert tracer is not None
            span = tracer.start_span(method, context=parent, kind=_SERVER, attributes=attributes)
        return span, _attach(_set_span(span, parent))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = _perf_counter()
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "OTHER"
        span = span_token = None
        if self._tracer is not None:
            span, span_token = self._start_span(scope, span_method(method))
        incoming = _header(scope, _REQUEST_ID_HEADER)
        rid = None
        if incoming is not None:
            candidate = incoming.decode("latin-1")
            if valid_request_id(candidate):
                rid = candidate
        if rid is None:
            rid = new_request_id()
        rid_header = (_REQUEST_ID_HEADER, rid.encode("latin-1"))
        token = start_request(rid)
        request = current_request()
        assert request is not None  # start_request just set it
        root_path = scope.get("root_path", "")
        status = 500
        observer = self.observer
        if observer is not None:
            observer.request_started()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                message["headers"] = [*headers, rid_header] if headers else [rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            if span is not None and span.is_recording():
                span.record_exception(exc)
            raise
        finally:
            duration = _perf_counter() - start
            if observer is not None:
                observer.request_ended()
            reset_request(token)
            lean: LeanSpan | None = None
            trace_id = span_id = 0
            sampled = False
            if span is not None and span_token is not None:
                _detach(span_token)
                if type(span) is LeanSpan:  # ours: finished in the batch (below)
                    lean = span
                    trace_id, span_id, sampled = span.trace_id, span.span_id, True
                else:
                    route = route_template(scope, root_path, status)
                    self._end_span(span, method, route, status)
                    context = span.get_span_context()
                    if context.is_valid:
                        trace_id, span_id = context.trace_id, context.span_id
                        sampled = context.trace_flags.sampled
            if (
                lean is not None
                or observer is not None
                or (self.access_log and _access_log.isEnabledFor(logging.INFO))
            ):
                self._finished.add(
                    (
                        method,
                        status,
                        start,
                        duration,
                        scope,
                        root_path,
                        request,
                        trace_id,
                        span_id,
                        sampled,
                        lean,
                    )
                )

    @staticmethod
    def _end_span(span: trace.Span, method: str, route: str, status: int) -> None:
        if span.is_recording():
            name, attributes = _final_name_and_attributes(method, route, status)
            span.update_name(name)
            span.set_attributes(attributes)
            if status >= 500:
                span.set_status(_ERROR)
        span.end()

    def _process(self, finished: list[_Finished]) -> None:
        """After the event-loop turn: name and end the request spans, then hand the requests
        to the metrics and the access log."""
        client_ip = self._client_ip
        wall = time.time() - _perf_counter()  # perf_counter() + wall = time.time()
        records = []
        for (
            method,
            status,
            start,
            duration,
            scope,
            root_path,
            request,
            trace_id,
            span_id,
            sampled,
            lean,
        ) in finished:
            route = route_template(scope, root_path, status)
            if lean is not None:
                name, attributes = _final_name_and_attributes(method, route, status)
                lean.end_request(
                    name,
                    attributes,
                    status >= 500,
                    end_time=lean.start_time + int(duration * 1e9),
                )
            records.append(
                RequestRecord(
                    method,
                    route,
                    status,
                    duration,
                    start + duration + wall,
                    scope["path"],
                    request.request_id,
                    request.client_ip or client_ip(scope),
                    request.client_name,
                    trace_id,
                    span_id,
                    sampled,
                )
            )
        if self.observer is not None:
            self.observer.record(records)
        if self.access_log:
            write_access_log(records)

    def _client_ip(self, scope: Scope) -> str | None:
        if self.client_ip is not None:
            return self.client_ip(scope)
        client = scope.get("client")
        return str(client[0]) if client else None


def _final_name_and_attributes(method: str, route: str, status: int) -> tuple[str, dict[str, Any]]:
    """The request span's name and the attributes known only at its end."""
    return f"{span_method(method)} {route}", {
        "http.route": route,
        "http.response.status_code": status,
    }


def span_method(method: str) -> str:
    """The request method as span names and attributes write it (unknown: ``_OTHER``)."""
    return "_OTHER" if method == "OTHER" else method


#: What the request path hands to the batch: method, status, start and duration (perf_counter
#: seconds), scope, root path at the start, request context, trace id, span id, sampled, and
#: our request span to finish (turned into RequestRecords in the batch).
_Finished = tuple[
    str, int, float, float, Scope, str, RequestContext, int, int, bool, LeanSpan | None
]
_perf_counter = time.perf_counter

_SERVER = trace.SpanKind.SERVER
_ERROR = trace.StatusCode.ERROR
_attach = otel_context.attach
_detach = otel_context.detach
_set_span = trace.set_span_in_context
