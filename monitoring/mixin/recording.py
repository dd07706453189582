"""Recording rules, named ``level:metric:operations``, that the alerts and dashboards read.

They precompute what is expensive or repeated (percentiles, ratios, SLO windows) so that an
alert and the panel its ``dashboard_url`` opens show the very same series.
"""

from __future__ import annotations

from typing import Any

from monitoring.mixin import config as c

Rule = dict[str, Any]

# Names the alerts and dashboards refer to. Every rule here is read by an alert or a panel (a
# test fails on one that nothing reads).
HTTP_USER_RATE = "job:ef_http_user_requests:rate5m"
HTTP_USER_ERROR_RATIO = "job:ef_http_user_request_errors:ratio_rate5m"
QUEUE_WAIT_P50 = "job:ef_tts_queue_wait_seconds:p50_rate5m"
QUEUE_WAIT_P95 = "job:ef_tts_queue_wait_seconds:p95_rate5m"
ENGINE_FAILURE_RATIO = "job:ef_tts_engine_failures:ratio_rate5m"
ENGINE_CALLS = "job:ef_tts_engine_calls:rate5m"
CACHE_HIT_RATIO = "job:ef_audio_cache_hits:ratio_rate5m"
CACHE_HIT_RATIO_1D = "job:ef_audio_cache_hits:ratio_rate1d"
CACHE_CHURN_1D = "job:ef_audio_cache_evictions:per_entry_increase1d"
REALTIME_FACTOR = "job:ef_tts_realtime_factor:ratio_rate5m"
ENGINE_RTF_P50 = "job_engine:ef_tts_engine_realtime_factor:p50_rate5m"
ENGINE_INFERENCE_P95 = "job_engine:ef_tts_engine_inference_seconds:p95_rate5m"
DISK_FREE_FORECAST = "instance_path:ef_disk_free_bytes:predict_linear24h"
INODES_USED_RATIO = "instance_path:ef_disk_inodes_used:ratio"
DB_GROWTH = "instance:ef_db_size_bytes:deriv1h"
TTS_MEMORY_RATIO = "instance:ef_tts_resident_memory:ratio_limit"


def tts_loading_in_time() -> str:
    """ef_tts is loading its model (not loaded, not failed) and has been up for less than its
    configured load time (EF_TTS_MODEL_LOAD_MAX_S): nothing to page about yet."""
    tts = c.TTS
    return (
        f"(\n  ef_tts_engine_model_loaded{{{tts}}} == 0\n"
        f"  and ef_tts_engine_model_load_failed{{{tts}}} == 0\n)\n"
        f"and on (job, instance)\n"
        f"(\n  time() - process_start_time_seconds{{{tts}}}\n"
        f"  < on (job, instance) max by (job, instance) "
        f"(ef_tts_engine_model_load_max_seconds{{{tts}}})\n)"
    )


def slo_error_ratio(window: str) -> str:
    """The speech API's share of failed requests and jobs over ``window``."""
    return f"job:ef_slo_speech_errors:ratio_rate{window}"


def slo_events(window: str) -> str:
    """How many requests and jobs the availability SLO counted over ``window``."""
    return f"job:ef_slo_speech_events:increase{window}"


def slo_slow_ratio(window: str) -> str:
    """The share of speech requests slower than the latency objective over ``window``."""
    return f"job:ef_slo_speech_slow:ratio_rate{window}"


def slo_latency_events(window: str) -> str:
    return f"job:ef_slo_speech_latency_events:increase{window}"


def ratio(num: str, den: str, *, by: str, window: str) -> str:
    """``num / den`` of counter rates that reads 0, not "no data", while ``num`` never happened.

    A counter with a label such as ``status="500"`` exists only after the first 5xx; dividing
    its absence gives no series at all, so a dashboard shows a gap and an alert cannot tell
    "no errors" from "no traffic". ``or 0 * den`` fills the gap where there is traffic.
    """
    top = f"sum by ({by}) (rate({num}[{window}]))"
    bottom = f"sum by ({by}) (rate({den}[{window}]))"
    return f"(\n  {top}\n  or 0 * {bottom}\n)\n/ {bottom}"


def quantile(q: float, metric: str, *, by: str, sel: str, window: str = "5m") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{window}])))"


def _http() -> list[Rule]:
    return [
        {
            "record": HTTP_USER_RATE,
            "expr": f"sum by (job) (rate(ef_http_requests_total{{{c.USER_ROUTES}}}[5m]))",
        },
        {
            "record": HTTP_USER_ERROR_RATIO,
            "expr": ratio(
                f"ef_http_requests_total{{{c.USER_ROUTES},{c.ERROR_STATUS}}}",
                f"ef_http_requests_total{{{c.USER_ROUTES}}}",
                by="job",
                window="5m",
            ),
        },
    ]


def _engine_failures(sel: str) -> str:
    reasons = "|".join(c.ENGINE_FAILURE_REASONS)
    return f'sum by (job) (rate(ef_tts_failures_total{{{sel},reason=~"{reasons}"}}[5m]))'


def _speech() -> list[Rule]:
    sel = c.BACKEND
    # Engine calls the engine could have done: the successful ones (synthesis histogram) and its
    # own failures; text it refused (reason="rejected", the client's fault) is in neither. The
    # failure series exist from start-up at 0, so this is 0, not "no data", before any call.
    calls = (
        f"(sum by (job) (rate(ef_tts_synthesis_duration_seconds_count{{{sel}}}[5m]))\n"
        f"  or 0 * sum by (job) (rate(ef_tts_failures_total{{{sel}}}[5m])))\n"
        f"+ {_engine_failures(sel)}"
    )
    return [
        {
            "record": QUEUE_WAIT_P50,
            "expr": quantile(0.5, "ef_tts_queue_wait_seconds", by="job", sel=sel),
        },
        {
            "record": QUEUE_WAIT_P95,
            "expr": quantile(0.95, "ef_tts_queue_wait_seconds", by="job", sel=sel),
        },
        {"record": ENGINE_CALLS, "expr": calls},
        {
            # The engine's own failures (timeouts, errors, unreachable) over all engine calls:
            # summed, so that 6 % timeouts plus 6 % errors is 12 %; refused text is left out.
            "record": ENGINE_FAILURE_RATIO,
            "expr": f"{_engine_failures(sel)}\n/ ({ENGINE_CALLS}{{{sel}}} > 0)",
        },
        {
            "record": CACHE_HIT_RATIO,
            "expr": ratio(
                f'ef_audio_cache_requests_total{{{sel},result="hit"}}',
                f"ef_audio_cache_requests_total{{{sel}}}",
                by="job",
                window="5m",
            ),
        },
        {
            "record": CACHE_HIT_RATIO_1D,
            "expr": ratio(
                f'ef_audio_cache_requests_total{{{sel},result="hit"}}',
                f"ef_audio_cache_requests_total{{{sel}}}",
                by="job",
                window="1d",
            ),
        },
        {
            # Entries evicted over the last day per entry in the cache now: 1 means the whole
            # cache was replaced within a day.
            "record": CACHE_CHURN_1D,
            "expr": (
                f"sum by (job) (increase(ef_audio_cache_evictions_total{{{sel}}}[1d]))\n"
                f"/ on (job) (max by (job) (ef_audio_cache_entries{{{sel}}}) > 0)"
            ),
        },
        {
            # Engine seconds per second of audio, as the backend sees it (queueing excluded).
            "record": REALTIME_FACTOR,
            "expr": (
                f"sum by (job) (rate(ef_tts_synthesis_duration_seconds_sum{{{sel}}}[5m]))\n"
                f"/ sum by (job) (rate(ef_tts_audio_seconds_total{{{sel}}}[5m]))"
            ),
        },
        {
            "record": ENGINE_RTF_P50,
            "expr": quantile(0.5, "ef_tts_engine_realtime_factor", by="job, engine", sel=c.TTS),
        },
        {
            "record": ENGINE_INFERENCE_P95,
            "expr": quantile(0.95, "ef_tts_engine_inference_seconds", by="job, engine", sel=c.TTS),
        },
        {
            # Resident memory against the cgroup limit ef_tts reads (no series without a limit).
            "record": TTS_MEMORY_RATIO,
            "expr": (
                f"max by (job, instance) (process_resident_memory_bytes{{{c.TTS}}})\n"
                f"/ on (job, instance) (max by (job, instance) "
                f"(ef_tts_memory_limit_bytes{{{c.TTS}}}) > 0)"
            ),
        },
    ]


def _slo_parts(window: str) -> tuple[str, str]:
    """(errors, events) per second over ``window``: answers of the speech routes (a job's 202
    left out) plus the final outcome of every job. Each term reads 0, not "no data", while the
    other has samples: a client that only submits jobs has no answers but their 202s."""
    answers = f'sum by (job) (rate(ef_http_requests_total{{{c.SPEECH},status!="202"}}[{window}]))'
    errors = f"sum by (job) (rate(ef_http_requests_total{{{c.SPEECH},{c.ERROR_STATUS}}}[{window}]))"
    jobs = (
        f'sum by (job) (rate(ef_tts_jobs_total{{{c.BACKEND},outcome=~"succeeded|failed"}}'
        f"[{window}]))"
    )
    failed = f'sum by (job) (rate(ef_tts_jobs_total{{{c.BACKEND},outcome="failed"}}[{window}]))'
    zero = f"0 * ({answers} or {jobs})"
    events = f"(\n  ({answers} or 0 * {jobs})\n  + ({jobs} or 0 * {answers})\n)"
    bad = f"(\n  ({errors} or {zero})\n  + ({failed} or {zero})\n)"
    return bad, events


def _slo() -> list[Rule]:
    rules: list[Rule] = []
    for window in c.SLO_WINDOWS:
        bad, events = _slo_parts(window)
        rules.append(
            {
                "record": slo_error_ratio(window),
                "expr": f"{bad}\n/ {events}",
                "labels": {"slo": "speech-availability"},
            }
        )
    for long_w, _, _ in (*c.SLO_PAGE_BURNS, *c.SLO_TICKET_BURNS):
        # increase(), not rate() * window: right after a restart it counts what happened.
        _, events = _slo_parts(long_w)
        rules.append(
            {
                "record": slo_events(long_w),
                "expr": events.replace("(rate(", "(increase("),
                "labels": {"slo": "speech-availability"},
            }
        )
    le = f"{c.SPEECH_LATENCY_OBJECTIVE_S:g}"
    if "." not in le:
        le += ".0"  # prometheus-client writes bucket bounds as floats: le="30.0"
    for long_w, short_w, _ in c.SLO_TICKET_BURNS:
        for window in (long_w, short_w):
            metric = "ef_tts_request_duration_seconds"
            count = f"sum by (job) (rate({metric}_count{{{c.BACKEND}}}[{window}]))"
            fast = f'sum by (job) (rate({metric}_bucket{{{c.BACKEND},le="{le}"}}[{window}]))'

            rules.append(
                {
                    "record": slo_slow_ratio(window),
                    "expr": f"1 - {fast}\n/ ({count} > 0)",
                    "labels": {"slo": "speech-latency"},
                }
            )
        rules.append(
            {
                "record": slo_latency_events(long_w),
                "expr": (
                    "sum by (job) (increase(ef_tts_request_duration_seconds_count"
                    f"{{{c.BACKEND}}}[{long_w}]))"
                ),
                "labels": {"slo": "speech-latency"},
            }
        )
    return rules


def _storage() -> list[Rule]:
    return [
        {
            "record": DISK_FREE_FORECAST,
            "expr": (
                f"predict_linear(ef_disk_free_bytes{{{c.DISK}}}[{c.DISK_FORECAST_WINDOW}], "
                f"{c.DISK_FORECAST_HORIZON_S})"
            ),
        },
        {
            "record": INODES_USED_RATIO,
            "expr": f"1 - ef_disk_inodes_free{{{c.DISK}}}\n/ (ef_disk_inodes{{{c.DISK}}} > 0)",
        },
        {
            "record": DB_GROWTH,
            "expr": f"deriv(ef_db_size_bytes{{{c.BACKEND}}}[1h])",
        },
    ]


def groups() -> list[dict[str, Any]]:
    """Every recording-rule group, in evaluation order."""
    return [
        {"name": "ef_http.rules", "rules": _http()},
        {"name": "ef_speech.rules", "rules": _speech()},
        # The long SLO windows are costly to evaluate and change slowly: once a minute is plenty.
        {"name": "ef_slo.rules", "interval": "1m", "rules": _slo()},
        {"name": "ef_storage.rules", "rules": _storage()},
    ]
