"""Recording rules, named ``level:metric:operations``, that the alerts and dashboards read.

They precompute what is expensive or repeated (percentiles, ratios, SLO windows) so that an
alert and the panel its ``dashboard_url`` opens show the very same series.
"""

from __future__ import annotations

from typing import Any

from monitoring.mixin import config as c

Rule = dict[str, Any]

# Names the alerts and dashboards refer to.
HTTP_RATE = "job:ef_http_requests:rate5m"
HTTP_ROUTE_RATE = "job_route:ef_http_requests:rate5m"
HTTP_ERROR_RATIO = "job:ef_http_request_errors:ratio_rate5m"
SPEECH_P95 = "job:ef_tts_request_duration_seconds:p95_rate5m"
QUEUE_WAIT_P50 = "job:ef_tts_queue_wait_seconds:p50_rate5m"
QUEUE_WAIT_P95 = "job:ef_tts_queue_wait_seconds:p95_rate5m"
FAILURE_RATE = "job_reason:ef_tts_failures:rate5m"
FAILURE_RATIO = "job_reason:ef_tts_failures:ratio_rate5m"
ENGINE_CALLS = "job:ef_tts_engine_calls:rate5m"
CACHE_HIT_RATIO = "job:ef_audio_cache_hits:ratio_rate5m"
REALTIME_FACTOR = "job:ef_tts_realtime_factor:ratio_rate5m"
ENGINE_RTF_P50 = "job_engine:ef_tts_engine_realtime_factor:p50_rate5m"
ENGINE_INFERENCE_P95 = "job_engine:ef_tts_engine_inference_seconds:p95_rate5m"
DISK_FREE_FORECAST = "instance_path:ef_disk_free_bytes:predict_linear24h"
DB_GROWTH = "instance:ef_db_size_bytes:deriv1h"
CACHE_FILL_RATIO = "instance:ef_audio_cache_size_bytes:ratio"


def http_latency(quantile: str) -> str:
    """``job:ef_http_request_duration_seconds:p95_rate5m`` and its siblings."""
    return f"job:ef_http_request_duration_seconds:p{quantile}_rate5m"


def speech_latency_by_cache(quantile: str) -> str:
    return f"job_cache:ef_tts_request_duration_seconds:p{quantile}_rate5m"


def slo_error_ratio(window: str) -> str:
    """The speech API's share of failed requests over ``window``."""
    return f"job:ef_slo_speech_errors:ratio_rate{window}"


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
    sel = c.BACKEND
    rules: list[Rule] = [
        {
            "record": HTTP_RATE,
            "expr": f"sum by (job) (rate(ef_http_requests_total{{{sel}}}[5m]))",
        },
        {
            "record": HTTP_ROUTE_RATE,
            "expr": f"sum by (job, route) (rate(ef_http_requests_total{{{sel}}}[5m]))",
        },
        {
            "record": HTTP_ERROR_RATIO,
            "expr": ratio(
                f"ef_http_requests_total{{{sel},{c.ERROR_STATUS}}}",
                f"ef_http_requests_total{{{sel}}}",
                by="job",
                window="5m",
            ),
        },
    ]
    for q in ("50", "95", "99"):
        rules.append(
            {
                "record": http_latency(q),
                "expr": quantile(
                    int(q) / 100, "ef_http_request_duration_seconds", by="job", sel=sel
                ),
            }
        )
    return rules


def _speech() -> list[Rule]:
    sel = c.BACKEND
    # Successful engine calls; 0 (not "no data") before the first one, so that an engine that
    # has never answered still shows a failure ratio of 1 and can alert.
    successes = (
        f"(sum by (job) (rate(ef_tts_synthesis_duration_seconds_count{{{sel}}}[5m]))\n"
        f"  or 0 * sum by (job) (rate(ef_tts_failures_total{{{sel}}}[5m])))"
    )
    rules: list[Rule] = [
        {
            "record": SPEECH_P95,
            "expr": quantile(0.95, "ef_tts_request_duration_seconds", by="job", sel=sel),
        }
    ]
    for q in ("50", "95", "99"):
        rules.append(
            {
                "record": speech_latency_by_cache(q),
                "expr": quantile(
                    int(q) / 100, "ef_tts_request_duration_seconds", by="job, cache", sel=sel
                ),
            }
        )
    rules += [
        {
            "record": QUEUE_WAIT_P50,
            "expr": quantile(0.5, "ef_tts_queue_wait_seconds", by="job", sel=sel),
        },
        {
            "record": QUEUE_WAIT_P95,
            "expr": quantile(0.95, "ef_tts_queue_wait_seconds", by="job", sel=sel),
        },
        {
            "record": FAILURE_RATE,
            "expr": f"sum by (job, reason) (rate(ef_tts_failures_total{{{sel}}}[5m]))",
        },
        {
            # Engine calls: the synthesis histogram counts the successful ones, failures the rest.
            "record": ENGINE_CALLS,
            "expr": f"{successes}\n+ sum by (job) (rate(ef_tts_failures_total{{{sel}}}[5m]))",
        },
        {
            # Failed engine calls over all engine calls, by reason.
            "record": FAILURE_RATIO,
            "expr": (
                f"sum by (job, reason) (rate(ef_tts_failures_total{{{sel}}}[5m]))\n"
                f"/ on (job) group_left ()\n"
                f"(\n"
                f"  {successes}\n"
                f"  + sum by (job) (rate(ef_tts_failures_total{{{sel}}}[5m]))\n"
                f")"
            ),
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
    ]
    return rules


def _slo() -> list[Rule]:
    return [
        {
            "record": slo_error_ratio(window),
            "expr": ratio(
                f"ef_http_requests_total{{{c.SPEECH},{c.ERROR_STATUS}}}",
                f"ef_http_requests_total{{{c.SPEECH}}}",
                by="job",
                window=window,
            ),
            "labels": {"slo": "speech-availability"},
        }
        for window in c.SLO_WINDOWS
    ]


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
            "record": DB_GROWTH,
            "expr": f"deriv(ef_db_size_bytes{{{c.BACKEND}}}[1h])",
        },
        {
            "record": CACHE_FILL_RATIO,
            "expr": (
                f"ef_audio_cache_size_bytes{{{c.BACKEND}}}\n"
                f"/ (ef_audio_cache_max_bytes{{{c.BACKEND}}} > 0)"
            ),
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
