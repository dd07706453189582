"""The backend's request middleware and the prometheus-client HTTP observer.

The request id, the access log and the route template come from
:class:`ef_common.asgi.RequestContextMiddleware`; the backend adds its client-address rule and
an observer that records ``ef_http_*``: :class:`~ef_backend.observability.http_metrics.HttpMetrics`
in one process, :class:`PrometheusHttpObserver` in multiprocess mode (label children cached per
(method, route, status), so a request costs a dict lookup rather than a ``labels()`` call).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from ef_common.asgi import HttpObserver, RequestContextMiddleware
from ef_common.request_batch import RequestRecord
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Scope

from ef_backend.core.security import client_address
from ef_backend.observability import metrics

__all__ = ["PrometheusHttpObserver", "observability_middleware"]


class PrometheusHttpObserver:
    """Records ``ef_http_requests_total``, ``..._duration_seconds`` and ``..._in_progress``."""

    def __init__(
        self,
        requests_total: Counter = metrics.http_requests_total,
        duration: Histogram = metrics.http_request_duration_seconds,
        in_progress: Gauge = metrics.http_requests_in_progress,
        *,
        exemplars: bool = True,
    ) -> None:
        self._requests_total = requests_total
        self._duration = duration
        self._in_progress = in_progress
        self._exemplars = exemplars
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def request_started(self) -> None:
        self._in_progress.inc()

    def request_ended(self) -> None:
        self._in_progress.dec()

    def record(self, requests: Sequence[RequestRecord]) -> None:
        for request in requests:
            method, route = request.method, request.route
            key = (method, route, request.status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._requests_total.labels(method, route, str(request.status))
                self._counters[key] = counter
            counter.inc()
            histogram = self._histograms.get((method, route))
            if histogram is None:
                histogram = self._histograms[(method, route)] = self._duration.labels(method, route)
            # The request's own trace (the batch runs after it ended); {} means "none".
            exemplar = request.exemplar() if self._exemplars else None
            histogram.observe(request.duration_s, exemplar or {})


def observability_middleware(
    app: ASGIApp,
    *,
    observer: HttpObserver | None = None,
    access_log: bool = True,
    trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    tracer_provider: Any | None = None,
) -> RequestContextMiddleware:
    """The backend's request middleware (for ``app.add_middleware``): request id, request span
    (with ``tracer_provider``), access log, ``ef_http_*`` through ``observer``, and the client
    address by the backend's proxy rule."""
    proxies = tuple(trusted_proxies)

    def client_ip(scope: Scope) -> str | None:
        # The same rule as the rate limiter and admin check (X-Forwarded-For from proxies).
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if not proxies:
            return peer
        forwarded = None
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                forwarded = bytes(value).decode("latin-1")
                break
        return client_address(peer, forwarded, proxies)

    return RequestContextMiddleware(
        app,
        observer=observer,
        access_log=access_log,
        client_ip=client_ip,
        tracer_provider=tracer_provider,
    )
