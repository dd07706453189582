"""Every Prometheus metric of ef_backend, declared once.

The names are the contract that `alerts/`, `dashboards/` and `docs/metrics.md` are built on:
rename nothing here without changing those too (tests compare them with the live /metrics).
Labels take values only from bounded sets (route templates, fixed outcome and reason names).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

#: HTTP from 5 ms: most API calls are cheap; synthesis requests can take tens of seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Engine work: from 50 ms (one short sentence on Piper) to a minute (long text on Coqui, CPU).
SYNTHESIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
#: Queue wait: zero when idle, minutes when backed up.
QUEUE_WAIT_BUCKETS = (0.005, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

#: Bounded label values.
JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "retried")
FAILURE_REASONS = ("timeout", "engine_error", "unreachable", "rejected")
CACHE_RESULTS = ("hit", "miss")

# HTTP (RED)
http_requests_total = Counter(
    "ef_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
http_request_duration_seconds = Histogram(
    "ef_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
http_requests_in_progress = Gauge(
    "ef_http_requests_in_progress", "HTTP requests being answered.", multiprocess_mode="livesum"
)

# Speech
tts_request_duration_seconds = Histogram(
    "ef_tts_request_duration_seconds",
    "End-to-end time of a speech request, by whether the audio came from the cache.",
    ["cache"],
    buckets=SYNTHESIS_BUCKETS,
)
tts_synthesis_duration_seconds = Histogram(
    "ef_tts_synthesis_duration_seconds",
    "Time of one engine call as the backend sees it.",
    ["engine", "voice"],
    buckets=SYNTHESIS_BUCKETS,
)
tts_queue_depth = Gauge(
    "ef_tts_queue_depth", "Jobs waiting in the queue.", multiprocess_mode="mostrecent"
)
tts_queue_wait_seconds = Histogram(
    "ef_tts_queue_wait_seconds",
    "Time a job waited in the queue before a worker claimed it.",
    buckets=QUEUE_WAIT_BUCKETS,
)
tts_jobs_in_progress = Gauge(
    "ef_tts_jobs_in_progress", "Jobs being synthesised now.", multiprocess_mode="livesum"
)
tts_jobs_total = Counter("ef_tts_jobs_total", "Jobs finished, by outcome.", ["outcome"])
tts_failures_total = Counter(
    "ef_tts_failures_total", "Failed engine calls, by reason.", ["reason"]
)
tts_audio_seconds_total = Counter(
    "ef_tts_audio_seconds_total", "Seconds of audio synthesised by the engine."
)
tts_engine_up = Gauge(
    "ef_tts_engine_up",
    "1 if the last engine probe succeeded, else 0.",
    multiprocess_mode="mostrecent",
)
tts_first_audio_seconds = Histogram(
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
# ef_audio_cache_size_bytes, ef_audio_cache_entries, ef_db_size_bytes, ef_db_up and
# ef_tts_queue_depth are read at scrape time by the collector in observability/collector.py.

# Database
db_query_duration_seconds = Histogram(
    "ef_db_query_duration_seconds",
    "Time of a database operation.",
    ["operation"],
    buckets=DB_BUCKETS,
)

build_info = Info("ef_build", "Version and commit of the running backend.")

__all__ = [
    "CACHE_RESULTS",
    "FAILURE_REASONS",
    "JOB_OUTCOMES",
    "audio_cache_evictions_total",
    "audio_cache_requests_total",
    "build_info",
    "db_query_duration_seconds",
    "http_request_duration_seconds",
    "http_requests_in_progress",
    "http_requests_total",
    "tts_audio_seconds_total",
    "tts_engine_up",
    "tts_failures_total",
    "tts_first_audio_seconds",
    "tts_jobs_in_progress",
    "tts_jobs_total",
    "tts_queue_depth",
    "tts_queue_wait_seconds",
    "tts_request_duration_seconds",
    "tts_synthesis_duration_seconds",
]
