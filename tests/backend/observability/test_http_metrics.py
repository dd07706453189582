"""The lock-free single-process HTTP metrics match prometheus-client's, sample for sample."""

from __future__ import annotations

import random

from ef_backend.observability import metrics
from ef_backend.observability.http_metrics import HttpMetrics
from ef_backend.observability.middleware import PrometheusHttpObserver
from ef_common.request_batch import RequestRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.backend.observability.support import samples


def reference() -> tuple[CollectorRegistry, PrometheusHttpObserver]:
    """The same three metrics as prometheus-client objects, on a registry of their own."""
    registry = CollectorRegistry()
    requests = Counter(
        "ef_http_requests_total",
        metrics.HTTP_REQUESTS_HELP,
        ["method", "route", "status"],
        registry=registry,
    )
    for series in metrics.initial_http_series():  # as init_label_values() does at start-up
        requests.labels(*series)
    observer = PrometheusHttpObserver(
        requests,
        Histogram(
            "ef_http_request_duration_seconds",
            metrics.HTTP_DURATION_HELP,
            ["method", "route"],
            buckets=metrics.HTTP_BUCKETS,
            registry=registry,
        ),
        Gauge("ef_http_requests_in_progress", metrics.HTTP_IN_PROGRESS_HELP, registry=registry),
    )
    return registry, observer


def test_same_exposition_as_prometheus_client() -> None:
    ours = HttpMetrics()
    ours_registry = CollectorRegistry()
    ours_registry.register(ours)
    ref_registry, ref = reference()
    rng = random.Random(7)
    routes = ["/api/v1/speech", "/api/v1/jobs/{job_id}", "<unmatched>"]
    # Durations on and around every bucket bound, where "le" semantics matter.
    durations = [b for b in metrics.HTTP_BUCKETS] + [b * 1.0001 for b in metrics.HTTP_BUCKETS]
    durations += [rng.uniform(0, 90) for _ in range(300)] + [0.0]
    records = []
    for number, duration in enumerate(durations):
        records.append(
            RequestRecord(
                method=rng.choice(["GET", "POST", "OTHER"]),
                route=rng.choice(routes),
                status=rng.choice([200, 404, 503]),
                duration_s=duration,
                time=1_790_000_000.0 + number,
                path="/x",
                request_id=None,
                client_ip=None,
                client=None,
                trace_id=number + 1,
                span_id=number + 1,
                sampled=number % 2 == 0,
            )
        )
    for observer in (ours, ref):
        start = 0
        for size in [1, 7, 50, len(records)]:  # batches of several sizes, as event-loop turns give
            batch = records[start : start + size]
            start += size
            for _ in batch:
                observer.request_started()
            for _ in batch:
                observer.request_ended()
            observer.record(batch)
    ours.request_started()
    ref.request_started()  # one still in flight
    ours_text = generate_latest(ours_registry).decode()
    ref_text = generate_latest(ref_registry).decode()
    assert samples(ours_text) == samples(ref_text)
    help_lines = sorted(line for line in ours_text.splitlines() if line.startswith("#"))
    assert help_lines == sorted(line for line in ref_text.splitlines() if line.startswith("#"))


def test_the_slo_status_series_exist_at_zero_from_the_start() -> None:
    """The first 503 of a speech route after a restart is a rate() increase from 0, not a new
    series that rate() cannot see."""
    registry = CollectorRegistry()
    registry.register(HttpMetrics())
    for method, route in (("POST", "/api/v1/speech"), ("GET", "/api/v1/jobs/{job_id}/audio")):
        for status in ("500", "503"):
            labels = {"method": method, "route": route, "status": status}
            assert registry.get_sample_value("ef_http_requests_total", labels) == 0.0, labels
    assert (
        registry.get_sample_value(
            "ef_http_requests_total", {"method": "POST", "route": "/api/v1/jobs", "status": "202"}
        )
        == 0.0
    )
