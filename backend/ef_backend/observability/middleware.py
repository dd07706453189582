"""The backend's request middleware and its ``ef_http_*`` metrics.

The request id, the access log and the route template come from
:class:`ef_common.asgi.RequestContextMiddleware`; the backend adds its client-address rule and
:class:`HttpMetrics`, which records on the prometheus-client objects declared in ``metrics.py``
(so one process and multiprocess mode are one code path).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from ef_common.asgi import HttpObserver, RequestContextMiddleware, RequestRecord
from starlette.types import ASGIApp, Scope

from ef_backend.core.security import request_client_address
from ef_backend.observability import metrics

__all__ = ["HttpMetrics", "observability_middleware"]


class HttpMetrics:
    """``ef_http_requests_total``, ``..._duration_seconds`` (exemplar: the request's trace) and
    ``..._in_progress``.

    The labelled children are kept per (method, route[, status]): a dict lookup per request
    instead of ``labels()``, which validates and locks; the keys are bounded like the labels.
    """

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def request_started(self) -> None:
        metrics.http_requests_in_progress.inc()

    def request_ended(self, request: RequestRecord) -> None:
        metrics.http_requests_in_progress.dec()
        method, route, status = request.method, request.route, request.status
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = metrics.http_requests_total.labels(method, route, str(status))
            self._counters[(method, route, status)] = counter
        counter.inc()
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = metrics.http_request_duration_seconds.labels(method, route)
            self._histograms[(method, route)] = histogram
        histogram.observe(request.duration_s)


def observability_middleware(
    app: ASGIApp,
    *,
    observer: HttpObserver | None = None,
    access_log: bool = True,
    trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
) -> RequestContextMiddleware:
    """The backend's request middleware (for ``app.add_middleware``): request id, access log,
    ``ef_http_*`` through ``observer``, and the client address by the backend's proxy rule."""
    proxies = tuple(trusted_proxies)

    def client_ip(scope: Scope) -> str | None:
        # The very rule (and function) of the rate limiter and the admin check.
        return request_client_address(scope, proxies)

    return RequestContextMiddleware(
        app, observer=observer, access_log=access_log, client_ip=client_ip
    )
