"""The three EchoForge dashboards: Overview, Speech pipeline, Storage.

Raw queries use ``$__rate_interval`` so they follow the zoom; percentiles, ratios and SLO windows
read the recording rules that the alerts read too. Latency panels ask for exemplars: with the
trace store running, a dot on the panel opens that request's trace.
"""

from __future__ import annotations

from monitoring.mixin import config as c
from monitoring.mixin import recording as r
from monitoring.mixin.grafana import Dashboard, Panel, Row, Target

B = c.BACKEND
RI = "$__rate_interval"
UP_DOWN = ((1, "UP", "green"), (0, "DOWN", "red"))
OK_FAIL = ((1, "OK", "green"), (0, "FAILING", "red"))


def _rate(metric: str, sel: str, by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{{{sel}}}[{RI}]))"


def _quantiles(
    metric: str, sel: str, by: str = "", qs: tuple[str, ...] = ("50", "95", "99")
) -> tuple[Target, ...]:
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Target(
            f"histogram_quantile(0.{q}, sum by ({group}) (rate({metric}_bucket{{{sel}}}[{RI}])))",
            f"{prefix}p{q}",
            exemplar=True,
        )
        for q in qs
    )


def overview() -> Dashboard:
    budget = c.SLO_ERROR_BUDGET
    window = c.SLO_WINDOW
    speech_errors = r.ratio(
        f"ef_http_requests_total{{{c.SPEECH},{c.ERROR_STATUS}}}",
        f"ef_http_requests_total{{{c.SPEECH}}}",
        by="job",
        window=window,
    )
    health = Row(
        100,
        "Health",
        (
            Panel(
                1,
                "backend_up",
                "Backend",
                "Prometheus can scrape ef_backend.",
                (Target(f"up{{{B}}}", "{{instance}}"),),
                kind="stat",
                width=4,
                mappings=UP_DOWN,
                steps=(),
            ),
            Panel(
                2,
                "tts_up",
                "ef_tts",
                "Prometheus can scrape the speech engine service.",
                (Target(f"up{{{c.TTS}}}", "{{instance}}"),),
                kind="stat",
                width=4,
                mappings=UP_DOWN,
            ),
            Panel(
                3,
                "ready",
                "Readiness checks",
                "The backend's own checks: database writable, engine reachable (last probe).",
                (
                    Target(f"ef_db_up{{{B}}}", "database"),
                    Target(f"ef_tts_engine_up{{{B}}}", "engine"),
                ),
                kind="stat",
                width=4,
                mappings=OK_FAIL,
            ),
            Panel(
                4,
                "model_loaded",
                "Model loaded",
                "ef_tts has its model loaded and serves.",
                (Target(f"ef_tts_engine_model_loaded{{{c.TTS}}}", "{{engine}} {{model}}"),),
                kind="stat",
                width=4,
                mappings=((1, "LOADED", "green"), (0, "NOT LOADED", "red")),
            ),
            Panel(
                5,
                "alerts",
                "Firing alerts",
                "Alerts firing now (Watchdog excluded).",
                (
                    Target(
                        'count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or vector(0)',
                        "firing",
                    ),
                ),
                kind="stat",
                width=4,
                steps=((1, "orange"),),
            ),
            Panel(
                6,
                "targets",
                "Scrape targets up",
                "1 per target that answered its last scrape.",
                (Target("sum by (job) (up)", "{{job}}"),),
                kind="stat",
                width=4,
                steps=(),
            ),
        ),
    )
    red = Row(
        101,
        "Requests (rate, errors, duration)",
        (
            Panel(
                10,
                "request_rate",
                "Request rate by route",
                "Requests per second by route template.",
                (Target(_rate("ef_http_requests_total", B, "route"), "{{route}}"),),
                unit="reqps",
                width=8,
                stack=True,
            ),
            Panel(
                11,
                "error_ratio",
                "5xx ratio",
                f"Share of requests answered 5xx (5m). Alert above {c.HTTP_ERROR_RATIO_MAX:.0%}.",
                (Target(f"{r.HTTP_ERROR_RATIO}{{{B}}}", "5xx ratio"),),
                unit="percentunit",
                width=8,
                minimum=0,
                steps=((c.HTTP_ERROR_RATIO_MAX, "red"),),
                threshold_lines=True,
            ),
            Panel(
                12,
                "latency",
                "Request duration",
                "p50, p95, p99 of every HTTP request; dots are exemplars linked to traces.",
                _quantiles("ef_http_request_duration_seconds", B),
                unit="s",
                width=8,
            ),
        ),
    )
    slo = Row(
        102,
        f"SLO: speech API availability {c.SLO_TARGET:.1%}",
        (
            Panel(
                20,
                "availability",
                f"Availability ({window})",
                "Share of speech API requests (speech, OpenAI speech, jobs) not answered 5xx.",
                (Target(f"1 - ({speech_errors})", "availability", instant=True),),
                kind="stat",
                unit="percentunit",
                width=6,
                steps=(),
            ),
            Panel(
                21,
                "error_budget",
                f"Error budget left ({window})",
                f"1 = untouched, 0 = spent. Budget: {budget:.1%} of requests may fail.",
                (Target(f"1 - ({speech_errors}) / {budget}", "budget left", instant=True),),
                kind="stat",
                unit="percentunit",
                width=6,
            ),
            Panel(
                22,
                "burn_rate",
                "Error budget burn rate",
                "Failed share over a window divided by the budget; 1 spends it exactly over the "
                "window. Pages at 14.4 (1h) and 6 (6h), tickets at 3 (1d) and 1 (3d).",
                tuple(
                    Target(f"{r.slo_error_ratio(w)}{{{B}}} / {budget}", w)
                    for w in ("1h", "6h", "1d", "3d")
                ),
                width=12,
                minimum=0,
                steps=((1, "orange"), (14.4, "red")),
                threshold_lines=True,
            ),
            Panel(
                23,
                "speech_status",
                "Speech API answers by status",
                "Requests per second to the speech routes, by status code.",
                (Target(_rate("ef_http_requests_total", c.SPEECH, "status"), "{{status}}"),),
                unit="reqps",
                width=12,
                stack=True,
            ),
            Panel(
                24,
                "notifications",
                "Alert notifications",
                "Notifications Alertmanager sent and failed to send, by integration (email).",
                (
                    Target(
                        f"sum by (integration) (rate(alertmanager_notifications_total[{RI}]))",
                        "{{integration}} sent",
                    ),
                    Target(
                        "sum by (integration) "
                        f"(rate(alertmanager_notifications_failed_total[{RI}]))",
                        "{{integration}} failed",
                    ),
                ),
                unit="short",
                width=12,
            ),
        ),
    )
    return Dashboard(
        uid="ef-overview",
        title="EchoForge Overview",
        description="Is it up, is it failing, is it slow: health, RED, the SLO and its budget.",
        rows=(health, red, slo),
    )


def speech() -> Dashboard:
    latency = Row(
        200,
        "Latency",
        (
            Panel(
                1,
                "latency",
                "Speech request duration by cache",
                "End to end, p50/p95/p99, hit and miss apart; dots are exemplars linked to traces. "
                f"Alert when p95 exceeds {c.SPEECH_P95_MAX_SECONDS:g} s.",
                _quantiles("ef_tts_request_duration_seconds", B, "cache"),
                unit="s",
                width=12,
                steps=((c.SPEECH_P95_MAX_SECONDS, "red"),),
                threshold_lines=True,
            ),
            Panel(
                2,
                "latency_heatmap",
                "Speech request duration heatmap",
                "How speech request durations spread over time.",
                (
                    Target(
                        "sum by (le) "
                        f"(increase(ef_tts_request_duration_seconds_bucket{{{B}}}[{RI}]))",
                        "{{le}}",
                        heatmap=True,
                    ),
                ),
                kind="heatmap",
                unit="s",
                width=12,
            ),
            Panel(
                3,
                "synthesis",
                "Engine call duration",
                "One engine call (one sentence) as the backend sees it, by engine.",
                _quantiles("ef_tts_synthesis_duration_seconds", B, "engine", ("50", "95")),
                unit="s",
                width=12,
            ),
            Panel(
                4,
                "first_audio",
                "Time to first audio",
                "From request to the first audio byte of a streamed or sentence-split request.",
                _quantiles("ef_tts_first_audio_seconds", B, "", ("50", "95")),
                unit="s",
                width=12,
            ),
        ),
    )
    queue = Row(
        201,
        "Queue",
        (
            Panel(
                10,
                "queue_depth",
                "Queue depth and jobs running",
                "Jobs waiting and being synthesised, and the capacity (EF_QUEUE_MAX) past which "
                f"requests get 503. Alert past {c.QUEUE_BACKLOG_MIN} and growing.",
                (
                    Target(f"ef_tts_queue_depth{{{B}}}", "queued"),
                    Target(f"ef_tts_jobs_in_progress{{{B}}}", "running"),
                    Target(f"ef_tts_queue_max{{{B}}}", "capacity"),
                ),
                width=8,
                steps=((c.QUEUE_BACKLOG_MIN, "orange"),),
                threshold_lines=True,
            ),
            Panel(
                11,
                "queue_wait",
                "Queue wait",
                "How long jobs waited for a worker (p50, p95), and the age of the oldest job "
                "still waiting.",
                (
                    Target(f"{r.QUEUE_WAIT_P50}{{{B}}}", "p50"),
                    Target(f"{r.QUEUE_WAIT_P95}{{{B}}}", "p95"),
                    Target(f"ef_tts_queue_oldest_age_seconds{{{B}}}", "oldest waiting"),
                ),
                unit="s",
                width=8,
            ),
            Panel(
                12,
                "jobs",
                "Jobs finished by outcome",
                "Jobs per second that succeeded, failed, were cancelled or retried.",
                (Target(_rate("ef_tts_jobs_total", B, "outcome"), "{{outcome}}"),),
                unit="ops",
                width=8,
                stack=True,
            ),
        ),
    )
    failures = Row(
        202,
        "Failures and cache",
        (
            Panel(
                20,
                "failures",
                "Engine failures by reason",
                "Failed engine calls per second: timeout, engine_error, unreachable, rejected.",
                (Target(_rate("ef_tts_failures_total", B, "reason"), "{{reason}}"),),
                unit="ops",
                width=6,
                stack=True,
            ),
            Panel(
                21,
                "failure_ratio",
                "Failure ratio by reason",
                f"Failed engine calls over all calls (5m). Alert above {c.FAILURE_RATIO_MAX:.0%}.",
                (Target(f"{r.FAILURE_RATIO}{{{B}}}", "{{reason}}"),),
                unit="percentunit",
                width=6,
                minimum=0,
                steps=((c.FAILURE_RATIO_MAX, "red"),),
                threshold_lines=True,
            ),
            Panel(
                22,
                "cache_hit_ratio",
                "Cache hit ratio",
                "Share of audio cache lookups that found the audio (5m).",
                (Target(f"{r.CACHE_HIT_RATIO}{{{B}}}", "hit ratio"),),
                unit="percentunit",
                width=6,
                minimum=0,
                maximum=1,
            ),
            Panel(
                23,
                "cache_lookups",
                "Cache lookups",
                "Audio cache lookups per second by result.",
                (Target(_rate("ef_audio_cache_requests_total", B, "result"), "{{result}}"),),
                unit="ops",
                width=6,
                stack=True,
            ),
        ),
    )
    engine = Row(
        203,
        "Engine",
        (
            Panel(
                30,
                "engine_up",
                "Engine up and model loaded",
                "Backend's last engine probe, and ef_tts's own model state.",
                (
                    Target(f"ef_tts_engine_up{{{B}}}", "backend probe"),
                    Target(f"ef_tts_engine_model_loaded{{{c.TTS}}}", "model loaded ({{model}})"),
                    Target(
                        f"ef_tts_engine_model_load_failed{{{c.TTS}}}", "load failed ({{model}})"
                    ),
                ),
                width=8,
                minimum=0,
                maximum=1,
            ),
            Panel(
                31,
                "realtime_factor",
                "Real-time factor",
                "Synthesis seconds per second of audio; below 1 is faster than real time.",
                (
                    Target(f"{r.REALTIME_FACTOR}{{{B}}}", "backend view"),
                    Target(f"{r.ENGINE_RTF_P50}{{{c.TTS}}}", "engine p50 ({{engine}})"),
                ),
                width=8,
                minimum=0,
                steps=((1, "orange"),),
                threshold_lines=True,
            ),
            Panel(
                32,
                "inference",
                "Engine inference p95",
                "Model time per request inside ef_tts, p95.",
                (Target(f"{r.ENGINE_INFERENCE_P95}{{{c.TTS}}}", "{{engine}}"),),
                unit="s",
                width=8,
            ),
            Panel(
                33,
                "engine_requests",
                "Engine requests by outcome",
                "Requests ef_tts answered, by outcome.",
                (Target(_rate("ef_tts_engine_requests_total", c.TTS, "outcome"), "{{outcome}}"),),
                unit="reqps",
                width=8,
                stack=True,
            ),
            Panel(
                34,
                "engine_in_flight",
                "Engine requests in flight",
                "Synthesis running or waiting for the model in ef_tts.",
                (Target(f"sum(ef_tts_engine_in_flight{{{c.TTS}}})", "in flight"),),
                width=8,
            ),
            Panel(
                35,
                "audio_rate",
                "Audio produced",
                "Seconds of audio synthesised per second (backend count).",
                (Target(_rate("ef_tts_audio_seconds_total", B), "audio s/s"),),
                width=8,
            ),
        ),
    )
    return Dashboard(
        uid="ef-speech",
        title="EchoForge Speech pipeline",
        description="Where a speech request spends time (cache, queue, engine) and why it fails.",
        rows=(latency, queue, failures, engine),
    )


def storage() -> Dashboard:
    D = c.DISK
    disk = Row(
        300,
        "Disk",
        (
            Panel(
                1,
                "disk_used",
                "Disk used",
                f"Used share per watched path. Warning at {c.DISK_USED_WARNING:.0%}, "
                f"critical at {c.DISK_USED_CRITICAL:.0%}.",
                (Target(f"ef_disk_used_ratio{{{D}}}", "{{path}}"),),
                kind="gauge",
                unit="percentunit",
                width=6,
                minimum=0,
                maximum=1,
                steps=((c.DISK_USED_WARNING, "orange"), (c.DISK_USED_CRITICAL, "red")),
            ),
            Panel(
                2,
                "disk_forecast",
                "Free space and 24 h forecast",
                f"Free bytes now and as forecast {c.DISK_FORECAST_HORIZON_S // 3600} h ahead "
                f"(linear, from the last {c.DISK_FORECAST_WINDOW}); below 0 means full.",
                (
                    Target(f"ef_disk_free_bytes{{{D}}}", "{{path}} free"),
                    Target(f"{r.DISK_FREE_FORECAST}{{{D}}}", "{{path}} in 24 h"),
                ),
                unit="bytes",
                width=12,
                steps=((0, "red"),),
                threshold_lines=True,
            ),
            Panel(
                3,
                "disk_exporter",
                "Disk exporter",
                "1 when every configured path could be read at the last scrape.",
                (Target(f"ef_disk_exporter_up{{{D}}}", "{{instance}}"),),
                kind="stat",
                width=6,
                mappings=OK_FAIL,
            ),
            Panel(
                4,
                "inodes",
                "Inodes used",
                "Share of inodes in use per path (where the file system has inodes).",
                (
                    Target(
                        f"1 - ef_disk_inodes_free{{{D}}} / (ef_disk_inodes{{{D}}} > 0)", "{{path}}"
                    ),
                ),
                unit="percentunit",
                width=12,
                minimum=0,
                maximum=1,
            ),
            Panel(
                5,
                "disk_bytes",
                "Disk size and use",
                "Total and used bytes per path.",
                (
                    Target(f"ef_disk_size_bytes{{{D}}}", "{{path}} size"),
                    Target(f"ef_disk_used_bytes{{{D}}}", "{{path}} used"),
                ),
                unit="bytes",
                width=12,
            ),
        ),
    )
    db = Row(
        301,
        "Database",
        (
            Panel(
                10,
                "db_size",
                "Database size",
                "SQLite file plus WAL. Past the line it is time to consider PostgreSQL.",
                (Target(f"ef_db_size_bytes{{{B}}}", "db.sqlite + WAL"),),
                unit="bytes",
                width=8,
                steps=((c.DB_SIZE_MAX_BYTES, "orange"),),
                threshold_lines=True,
            ),
            Panel(
                11,
                "db_growth",
                "Database growth",
                "Bytes per second the database grew over the last hour.",
                (Target(f"{r.DB_GROWTH}{{{B}}}", "growth"),),
                unit="Bps",
                width=8,
            ),
            Panel(
                12,
                "db_queries",
                "Database operation duration",
                "p95 of database operations by kind.",
                _quantiles("ef_db_query_duration_seconds", B, "operation", ("95",)),
                unit="s",
                width=8,
            ),
        ),
    )
    cache = Row(
        302,
        "Audio cache",
        (
            Panel(
                20,
                "cache_size",
                "Cache size and cap",
                f"Bytes in the audio cache against its cap (EF_CACHE_MAX_BYTES). Info at "
                f"{c.CACHE_NEAR_CAP_RATIO:.0%}: past the cap the oldest audio is evicted.",
                (
                    Target(f"ef_audio_cache_size_bytes{{{B}}}", "size"),
                    Target(f"ef_audio_cache_max_bytes{{{B}}}", "cap"),
                ),
                unit="bytes",
                width=8,
            ),
            Panel(
                21,
                "cache_entries",
                "Cache entries",
                "Audio files in the cache.",
                (Target(f"ef_audio_cache_entries{{{B}}}", "entries"),),
                width=8,
            ),
            Panel(
                22,
                "cache_evictions",
                "Cache evictions",
                "Entries evicted per second to stay under the cap.",
                (Target(_rate("ef_audio_cache_evictions_total", B), "evictions"),),
                unit="ops",
                width=8,
            ),
        ),
    )
    return Dashboard(
        uid="ef-storage",
        title="EchoForge Storage",
        description="Disk, database and audio cache: how full, how fast they grow, when full.",
        rows=(disk, db, cache),
    )


def all_dashboards() -> tuple[Dashboard, ...]:
    return (overview(), speech(), storage())
