"""``ef_http_*`` for a single process, kept in plain dicts and exposed at scrape time.

prometheus-client takes a lock and goes through several method calls per increment (five per
request). Here a request costs two dict lookups, a ``bisect`` and a few integer additions, done
for a batch of finished requests after each event-loop turn (:mod:`ef_common.request_batch`).
One lock per batch keeps two batches from updating the dicts at once; the scrape first flushes
what is pending (so every finished request is counted) and copies the dicts with single
C-level calls.

With several workers (multiprocess mode) the prometheus-client objects declared in
``metrics.py`` are used instead, because only they write the shared files; both produce the same
families (a test checks it).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from ef_common.request_batch import RequestRecord, flush_pending
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
        # The series the SLO and the 5xx alert read exist from the start, at 0.
        self._counts: dict[tuple[str, str, int], int] = {
            (method, route, int(status)): 0
            for method, route, status in metrics.initial_http_series()
        }
        self._histograms: dict[tuple[str, str], _Histogram] = {}
        self._in_progress = 0
        self._lock = threading.Lock()

    # -- observer ----------------------------------------------------------------------------

    def request_started(self) -> None:
        self._in_progress += 1

    def request_ended(self) -> None:
        self._in_progress -= 1

    def record(self, requests: Sequence[RequestRecord]) -> None:
        counts = self._counts
        histograms = self._histograms
        bounds = self._bounds
        with self._lock:
            for request in requests:
                method = request.method
                route = request.route
                duration = request.duration_s
                key = (method, route, request.status)
                counts[key] = counts.get(key, 0) + 1
                histogram = histograms.get((method, route))
                if histogram is None:
                    histogram = histograms[(method, route)] = _Histogram(len(self._les))
                index = bisect_left(bounds, duration)
                histogram.counts[index] += 1
                histogram.sum += duration
                labels = request.exemplar()
                if labels is not None:
                    histogram.exemplars[index] = Exemplar(labels, duration, request.time)

    # -- collector (scrape thread) ----------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        flush_pending()  # requests that ended in the current event-loop turn count too
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
