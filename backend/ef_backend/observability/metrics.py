"""Every Prometheus metric of ef_backend, declared once.

The names are the contract that `alerts/`, `dashboards/` and `docs/metrics.md` are built on:
rename nothing here without changing those too (tests compare them with the live /metrics).
Labels take values only from bounded sets (route templates, fixed outcome and reason names).
Latency histograms are ``TracedHistogram``s: an observation made inside a sampled span carries
its trace id as an exemplar, shown when Prometheus scrapes OpenMetrics.
"""

from __future__ import annotations

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The `_created` series double the series count and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: HTTP from 5 ms: most API calls are cheap; synthesis requests can take tens of seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Engine work: from 50 ms (one short sentence on Piper) to a minute (long text on Coqui, CPU).
SYNTHESIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
#: Queue wait: zero when idle, minutes when backed up.
QUEUE_WAIT_BUCKETS = (0.005, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

#: Bounded label values.
#: "rejected": the engine refused the job's text (the client's fault; the SLO does not count it).
JOB_OUTCOMES = ("succeeded", "failed", "rejected", "cancelled", "retried")
FAILURE_REASONS = ("timeout", "engine_error", "unreachable", "rejected")
CACHE_RESULTS = ("hit", "miss")
#: Wyoming (Home Assistant): what a client asked for, and the codes of the error events we send.
WYOMING_REQUESTS = ("describe", "synthesize", "stream")
WYOMING_OUTCOMES = ("ok", "error")
WYOMING_ERROR_CODES = (
    "invalid_input",
    "unknown_voice",
    "queue_full",
    "engine_unavailable",
    "engine_rejected",
    "synthesis_failed",
    "sync_timeout",
    "job_conflict",
    "internal_error",
)
#: What core/db.py labels each statement with.
DB_OPERATIONS = ("select", "insert", "update", "delete", "other")
#: The user-facing routes the SLO and the 5xx alert read, with the statuses whose series are
#: created at zero on start-up: otherwise the first 5xx of a route after a restart creates the
#: series, and rate() cannot see that first increment.
SLO_ROUTES = (
    ("POST", "/api/v1/speech", "200"),
    ("POST", "/v1/audio/speech", "200"),
    ("POST", "/api/v1/jobs", "202"),
    ("GET", "/api/v1/jobs/{job_id}/audio", "200"),
)
INITIAL_ERROR_STATUSES = ("500", "503")


def trace_exemplar() -> dict[str, str] | None:
    """``{"trace_id": ...}`` of the current span when it is sampled, else None."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid and ctx.trace_flags.sampled:
        return {"trace_id": format(ctx.trace_id, "032x")}
    return None


class TracedHistogram(Histogram):
    """A histogram whose observations link to the trace they were made in (an exemplar)."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        super().observe(amount, exemplar if exemplar is not None else trace_exemplar())


# HTTP (RED), recorded by observability/middleware.py (HttpMetrics)
http_requests_total = Counter(
    "ef_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
http_request_duration_seconds = TracedHistogram(
    "ef_http_request_duration_seconds",
    "Time to answer an HTTP request (first byte in to last byte out).",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
http_requests_in_progress = Gauge(
    "ef_http_requests_in_progress",
    "HTTP requests being answered.",
    multiprocess_mode="livesum",
)

# Speech
tts_request_duration_seconds = TracedHistogram(
    "ef_tts_request_duration_seconds",
    "End-to-end time of a speech request, by whether the audio came from the cache.",
    ["cache"],
    buckets=SYNTHESIS_BUCKETS,
)
tts_synthesis_duration_seconds = TracedHistogram(
    "ef_tts_synthesis_duration_seconds",
    "Time of one engine call as the backend sees it.",
    ["engine", "voice"],
    buckets=SYNTHESIS_BUCKETS,
)
tts_queue_wait_seconds = TracedHistogram(
    "ef_tts_queue_wait_seconds",
    "Time a job waited in the queue before a worker claimed it.",
    buckets=QUEUE_WAIT_BUCKETS,
)
tts_jobs_in_progress = Gauge(
    "ef_tts_jobs_in_progress", "Jobs being synthesised now.", multiprocess_mode="livesum"
)
tts_jobs_total = Counter("ef_tts_jobs_total", "Jobs finished, by outcome.", ["outcome"])
tts_queue_rejected_total = Counter(
    "ef_tts_queue_rejected_total",
    "Speech requests turned away with 503 because the queue was full (EF_QUEUE_MAX).",
)
tts_failures_total = Counter("ef_tts_failures_total", "Failed engine calls, by reason.", ["reason"])
tts_audio_seconds_total = Counter(
    "ef_tts_audio_seconds_total", "Seconds of audio synthesised by the engine."
)
tts_engine_up = Gauge(
    "ef_tts_engine_up",
    "1 if the last engine probe succeeded, else 0.",
    multiprocess_mode="mostrecent",
)
tts_first_audio_seconds = TracedHistogram(
    "ef_tts_first_audio_seconds",
    "Time to the first audio byte of a streamed or sentence-split request.",
    buckets=SYNTHESIS_BUCKETS,
)

# Cache
audio_cache_requests_total = Counter(
    "ef_audio_cache_requests_total", "Audio cache lookups, by result.", ["result"]
)
audio_cache_evictions_total = Counter(
    "ef_audio_cache_evictions_total", "Audio cache entries evicted to stay under the size cap."
)
# Read at scrape time by observability/collector.py (from the database and file sizes, so they
# are right whichever process or worker changed them; do not declare them here):
# ef_audio_cache_size_bytes, ef_audio_cache_entries, ef_audio_cache_max_bytes, ef_db_size_bytes,
# ef_db_up, ef_audio_cache_writable, ef_tts_queue_depth, ef_tts_queue_max,
# ef_tts_queue_oldest_age_seconds, ef_build_info.

# Wyoming (Home Assistant), wyoming/: its own family, so the HTTP metrics keep their meaning.
wyoming_connections_total = Counter(
    "ef_wyoming_connections_total",
    "Wyoming connections, by whether the client's address was allowed (EF_WYOMING_CIDRS).",
    ["result"],
)
wyoming_connections_active = Gauge(
    "ef_wyoming_connections_active", "Open Wyoming connections.", multiprocess_mode="livesum"
)
wyoming_requests_total = Counter(
    "ef_wyoming_requests_total",
    "Wyoming requests answered (describe, synthesize, streamed synthesize), by outcome.",
    ["request", "outcome"],
)
wyoming_request_duration_seconds = TracedHistogram(
    "ef_wyoming_request_duration_seconds",
    "Time from a Wyoming synthesize (or synthesize-stop) to the end of its audio.",
    ["request"],
    buckets=SYNTHESIS_BUCKETS,
)
wyoming_first_audio_seconds = TracedHistogram(
    "ef_wyoming_first_audio_seconds",
    "Time from a complete sentence's text to its first audio chunk on a Wyoming connection.",
    buckets=SYNTHESIS_BUCKETS,
)
wyoming_cache_requests_total = Counter(
    "ef_wyoming_cache_requests_total",
    "Wyoming speech requests (a synthesize, or one streamed sentence), by cache result.",
    ["result"],
)
wyoming_errors_total = Counter(
    "ef_wyoming_errors_total", "Wyoming error events sent, by code.", ["code"]
)
wyoming_listener_up = Gauge(
    "ef_wyoming_listener_up",
    "1 while the Wyoming listener accepts connections on address, 0 while it cannot bind.",
    ["address"],
    multiprocess_mode="livemin",
)

# Database
db_query_duration_seconds = TracedHistogram(
    "ef_db_query_duration_seconds",
    "Time of a database operation.",
    ["operation"],
    buckets=DB_BUCKETS,
)


def init_label_values() -> None:
    """Create the series of every bounded label value at start-up.

    Dashboards and alerts then see zeros instead of missing series (``rate()`` of a counter
    that appears at its first increment misses that increment).
    """
    for outcome in JOB_OUTCOMES:
        tts_jobs_total.labels(outcome)
    for reason in FAILURE_REASONS:
        tts_failures_total.labels(reason)
    for result in CACHE_RESULTS:
        audio_cache_requests_total.labels(result)
        tts_request_duration_seconds.labels(result)
    for operation in DB_OPERATIONS:
        db_query_duration_seconds.labels(operation)
    for request in WYOMING_REQUESTS:
        for outcome in WYOMING_OUTCOMES:
            wyoming_requests_total.labels(request, outcome)
        if request != "describe":
            wyoming_request_duration_seconds.labels(request)
    for result in ("accepted", "refused"):
        wyoming_connections_total.labels(result)
    for result in CACHE_RESULTS:
        wyoming_cache_requests_total.labels(result)
    for code in WYOMING_ERROR_CODES:
        wyoming_errors_total.labels(code)
    for method, route, status in initial_http_series():
        http_requests_total.labels(method, route, status)


def initial_http_series() -> list[tuple[str, str, str]]:
    """(method, route, status) of every ``ef_http_requests_total`` series created at zero."""
    return [
        (method, route, status)
        for method, route, ok in SLO_ROUTES
        for status in (ok, *INITIAL_ERROR_STATUSES)
    ]


__all__ = [
    "CACHE_RESULTS",
    "DB_OPERATIONS",
    "FAILURE_REASONS",
    "JOB_OUTCOMES",
    "WYOMING_ERROR_CODES",
    "WYOMING_OUTCOMES",
    "WYOMING_REQUESTS",
    "TracedHistogram",
    "audio_cache_evictions_total",
    "audio_cache_requests_total",
    "db_query_duration_seconds",
    "http_request_duration_seconds",
    "http_requests_in_progress",
    "http_requests_total",
    "init_label_values",
    "initial_http_series",
    "trace_exemplar",
    "tts_audio_seconds_total",
    "tts_engine_up",
    "tts_failures_total",
    "tts_first_audio_seconds",
    "tts_jobs_in_progress",
    "tts_jobs_total",
    "tts_queue_rejected_total",
    "tts_queue_wait_seconds",
    "tts_request_duration_seconds",
    "tts_synthesis_duration_seconds",
    "wyoming_cache_requests_total",
    "wyoming_connections_active",
    "wyoming_connections_total",
    "wyoming_errors_total",
    "wyoming_first_audio_seconds",
    "wyoming_listener_up",
    "wyoming_request_duration_seconds",
    "wyoming_requests_total",
]
