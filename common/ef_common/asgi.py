"""The request middleware both services share: request id, access log and a metrics hook.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no extra task and no body wrapping per
request. Tracing is not done here: ``opentelemetry-instrumentation-fastapi`` wraps the whole app
(:func:`ef_common.tracing.instrument_app`), so this middleware runs inside the request's server
span and the access log, the metrics and their exemplars see its trace id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ef_common.context import (
    current_request,
    new_request_id,
    reset_request,
    start_request,
    valid_request_id,
)
from ef_common.logging import ACCESS_LOGGER, write_access_log

__all__ = [
    "KNOWN_METHODS",
    "UNMATCHED_ROUTE",
    "HttpObserver",
    "RequestContextMiddleware",
    "RequestRecord",
    "route_template",
]

#: The ``route`` label of every request no route matched (404s of unknown paths).
UNMATCHED_ROUTE = "<unmatched>"
#: Methods kept as they are in labels; anything else becomes ``OTHER``.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)

_REQUEST_ID_HEADER = b"x-request-id"
_access_log = logging.getLogger(ACCESS_LOGGER)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered HTTP request, as the metrics and the access log need it."""

    method: str
    #: route template (``/api/v1/jobs/{job_id}``), never the raw path
    route: str
    status: int
    duration_s: float
    #: wall-clock time the response ended (seconds since the epoch)
    time: float
    path: str
    request_id: str
    client_ip: str | None
    #: the API key's configured name, never the key
    client: str | None
    #: the request's trace and span id (hex), None when it was not traced
    trace_id: str | None
    span_id: str | None


class HttpObserver(Protocol):
    """Told about every HTTP request (the backend records ``ef_http_*``).

    Both calls run inside the request's span, so a histogram's exemplar links to its trace.
    """

    def request_started(self) -> None: ...

    def request_ended(self, request: RequestRecord) -> None: ...


def route_template(scope: Scope, root_path: str = "", status: int = 200) -> str:
    """The route template that answered (``/api/v1/jobs/{job_id}``), never the raw path.

    A mounted app (the static frontend) gives its mount's template (``/{path}``), a plain
    Starlette route (FastAPI's ``/openapi.json``) its own path. Unknown
    paths, redirects of unknown paths and 404s from a catch-all mount all map to
    :data:`UNMATCHED_ROUTE`, so clients cannot grow label cardinality.
    """
    route = scope.get("route")
    if route is None:
        endpoint = scope.get("endpoint")
        if endpoint is None or status == 404:
            return UNMATCHED_ROUTE
        return _mount_template(scope.get("app"), endpoint)
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str) or (status == 404 and not hasattr(route, "endpoint")):
        return UNMATCHED_ROUTE
    if hasattr(route, "routes") or (hasattr(route, "app") and not hasattr(route, "endpoint")):
        return path_format  # a mount answered itself: its own path_format is already absolute
    prefix: str = scope.get("root_path", "")[len(root_path) :]
    return prefix + path_format


def _mount_template(app: Any, endpoint: Any) -> str:
    """The template of the mount or plain Starlette route (of ``app``) that serves
    ``endpoint``, e.g. ``/{path}``: only FastAPI's own routes put themselves in the scope."""
    for candidate in getattr(app, "routes", ()):
        if endpoint in (getattr(candidate, "app", None), getattr(candidate, "endpoint", None)):
            path_format = getattr(candidate, "path_format", None)
            if isinstance(path_format, str):
                return path_format
    return UNMATCHED_ROUTE


def _request_id(scope: Scope) -> str:
    """A client's ``X-Request-ID`` when it is short and printable, else a fresh one."""
    for key, value in scope["headers"]:
        if key == _REQUEST_ID_HEADER:
            candidate = bytes(value).decode("latin-1")
            if valid_request_id(candidate):
                return candidate
            break
    return new_request_id()


class RequestContextMiddleware:
    """Sets the request id, tells the observer, writes the access log.

    The response always says which request id the logs use (``X-Request-ID``). ``client_ip``
    resolves the address the access log shows (default: the TCP peer) unless the app already
    called :func:`ef_common.context.bind_client`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        observer: HttpObserver | None = None,
        access_log: bool = True,
        client_ip: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.observer = observer
        self.access_log = access_log
        self.client_ip = client_ip or _peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _request_id(scope)
        rid_header = (_REQUEST_ID_HEADER, rid.encode("latin-1"))
        token = start_request(rid)
        root_path = scope.get("root_path", "")
        status = 500
        if self.observer is not None:
            self.observer.request_started()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - start
            try:
                self._finish(scope, root_path, status, duration)
            finally:
                reset_request(token)

    def _finish(self, scope: Scope, root_path: str, status: int, duration: float) -> None:
        logging_on = self.access_log and _access_log.isEnabledFor(logging.INFO)
        if self.observer is None and not logging_on:
            return

        request = current_request()
        assert request is not None  # set by __call__ until after this returns
        span = trace.get_current_span().get_span_context()
        method = scope["method"]
        record = RequestRecord(
            method=method if method in KNOWN_METHODS else "OTHER",
            route=route_template(scope, root_path, status),
            status=status,
            duration_s=duration,
            time=time.time(),
            path=scope["path"],
            request_id=request.request_id,
            client_ip=request.client_ip or self.client_ip(scope),
            client=request.client_name,
            trace_id=format(span.trace_id, "032x") if span.is_valid else None,
            span_id=format(span.span_id, "016x") if span.is_valid else None,
        )
        if self.observer is not None:
            self.observer.request_ended(record)
        if logging_on:
            write_access_log(record)


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None
