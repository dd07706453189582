"""``GET /metrics``: OpenMetrics when the scraper asks and there can be exemplars, else text.

Prometheus asks for OpenMetrics (``Accept: application/openmetrics-text``); only that format
carries exemplars, so with tracing on the latency histograms link each bucket to a trace id.
Without tracing (or in multiprocess mode, which keeps no exemplars) there are none, and the
answer is the classic text format, which Prometheus also accepts and stores as the same series:
prometheus-client's OpenMetrics encoder costs about 1.7x as much per sample (it escapes every
sample name character by character), the larger part of a scrape of a 50-route backend
(docs/performance.md). Plain ``curl`` always gets the classic text format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from ef_common.tracing import tracing_enabled
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ef_backend.observability import multiprocess

__all__ = ["metrics_endpoint", "scrape_registry"]


def scrape_registry() -> CollectorRegistry:
    """The registry a scrape reads: this process's, or every worker's in multiprocess mode."""
    return multiprocess.registry() if multiprocess.enabled() else REGISTRY


class _Scrape(Collector):
    """What one scrape exposes: the process (or workers') registry plus the app's own collector.

    The app's collector is not registered globally: each app (tests build many in one process)
    reports its own database, cache and queue.
    """

    def __init__(self, *sources: Collector) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()


def metrics_endpoint(collector: Collector) -> Callable[[Request], Awaitable[Response]]:
    """Build the endpoint; ``collector`` adds the scrape-time gauges of this app."""

    def render(accept: str) -> tuple[bytes, str]:
        exemplars = tracing_enabled() and not multiprocess.enabled()
        encoder, content_type = choose_encoder(accept if exemplars else "")
        return encoder(_Scrape(scrape_registry(), collector)), content_type

    async def metrics(request: Request) -> Response:
        # Collectors stat files and query the database: keep that off the event loop.
        body, content_type = await run_in_threadpool(render, request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    return metrics
