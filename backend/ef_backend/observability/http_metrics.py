"""``ef_http_*`` for a single process, kept in plain dicts and exposed at scrape time.

The request path is the hottest code in the service: prometheus-client takes a lock and goes
through several method calls per increment (five per request), which costs about as much as all
the rest of our middleware. Here a request costs two dict lookups, a ``bisect`` and a few integer
additions. It is safe because only the event-loop thread records (the middleware runs there)
and the scrape copies the dicts with single C-level calls.

With several workers (multiprocess mode) the prometheus-client objects declared in
``metrics.py`` are used instead, because only they write the shared files; both produce the same
families (a test checks it).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from prometheus_client.core import (
    CounterMetricFamily,
    Exemplar,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ef_backend.observability import metrics

__all__ = ["HttpMetrics"]


class _Histogram:
    __slots__ = ("counts", "exemplars", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.exemplars: list[Exemplar | None] = [None] * size
        self.sum = 0.0


class HttpMetrics(Collector):
    """Collector and :class:`ef_common.asgi.HttpObserver` at once."""

    def __init__(self, buckets: Sequence[float] = metrics.HTTP_BUCKETS) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._counts: dict[tuple[str, str, int], int] = {}
        self._histograms: dict[tuple[str, str], _Histogram] = {}
        self._in_progress = 0

    # -- observer (event-loop thread) -------------------------------------------------------

    def request_started(self) -> None:
        self._in_progress += 1

    def request_finished(self, method: str, route: str, status: int, duration_s: float) -> None:
        self._in_progress -= 1
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        hkey = (method, route)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = _Histogram(len(self._les))
        index = bisect_left(self._bounds, duration_s)
        histogram.counts[index] += 1
        histogram.sum += duration_s
        ctx = trace.get_current_span().get_span_context()
        if ctx.trace_flags.sampled and ctx.is_valid:
            histogram.exemplars[index] = Exemplar(
                {"trace_id": format(ctx.trace_id, "032x")}, duration_s, time.time()
            )

    # -- collector (scrape thread) ----------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        requests, duration, in_progress = self._families()
        for (method, route, status), count in list(self._counts.items()):
            requests.add_metric([method, route, str(status)], count)
        for (method, route), histogram in list(self._histograms.items()):
            counts = list(histogram.counts)
            exemplars = list(histogram.exemplars)
            buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
            cumulative = 0
            for le, count, exemplar in zip(self._les, counts, exemplars, strict=True):
                cumulative += count
                if exemplar is None:
                    buckets.append((le, cumulative))
                else:
                    buckets.append((le, cumulative, exemplar))
            duration.add_metric([method, route], buckets, histogram.sum)
        in_progress.add_metric([], self._in_progress)
        return [requests, duration, in_progress]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(
                "ef_http_requests",
                metrics.HTTP_REQUESTS_HELP,
                labels=["method", "route", "status"],
            ),
            HistogramMetricFamily(
                "ef_http_request_duration_seconds",
                metrics.HTTP_DURATION_HELP,
                labels=["method", "route"],
            ),
            GaugeMetricFamily("ef_http_requests_in_progress", metrics.HTTP_IN_PROGRESS_HELP),
        )
