"""The four EchoForge dashboards: Overview, Speech pipeline, Storage, SLO.

Each alert's ``dashboard_url`` opens a panel that shows the alert's own expression or the
recording rule it reads, with the threshold drawn. Raw queries use ``$__rate_interval`` so they
follow the zoom; percentiles, ratios and SLO windows read the recording rules that the alerts
read too. Latency panels ask for exemplars: with the trace store running, a dot on the panel
opens that request's trace. Every dashboard marks restarts and version changes.
"""

from __future__ import annotations

from monitoring.mixin import config as c
from monitoring.mixin import recording as r
from monitoring.mixin.grafana import Annotation, Dashboard, Panel, Row, Target

RATE_INTERVAL = "$__rate_interval"
UP_DOWN = ((1, "UP", "green"), (0, "DOWN", "red"))
OK_FAIL = ((1, "OK", "green"), (0, "FAILING", "red"))
#: Our own services: their process_* metrics and restarts.
SERVICES = 'job=~"' + "|".join(c.SERVICE_JOBS) + '"'

ANNOTATIONS = (
    Annotation(
        "Restarts",
        f"changes(process_start_time_seconds{{{SERVICES}}}[2m]) > 0",
        "{{job}} restarted",
        "{{instance}}",
        "rgba(255, 96, 96, 1)",
    ),
    Annotation(
        "Version changes",
        "(ef_build_info unless ef_build_info offset 2m)\n"
        "or (ef_tts_build_info unless ef_tts_build_info offset 2m)",
        "{{job}} {{version}}",
        "{{instance}}",
        "rgba(31, 120, 193, 1)",
    ),
)


def _rate(metric: str, sel: str, by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{{{sel}}}[{RATE_INTERVAL}]))"


def _quantiles(
    metric: str, sel: str, by: str = "", qs: tuple[str, ...] = ("50", "95", "99")
) -> tuple[Target, ...]:
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Target(
            f"histogram_quantile(0.{q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{sel}}}[{RATE_INTERVAL}])))",
            f"{prefix}p{q}",
            exemplar=True,
        )
        for q in qs
    )


def overview() -> Dashboard:
    backend = c.BACKEND
    health = Row(
        100,
        "Health",
        (
            Panel(
                1,
                "backend_up",
                "Backend",
                "Prometheus can scrape ef_backend (EFBackendDown).",
                (Target(f"up{{{backend}}}", "{{instance}}"),),
                kind="stat",
                width=4,
                mappings=UP_DOWN,
                steps=(),
            ),
            Panel(
                2,
                "tts_up",
                "ef_tts",
                "Prometheus can scrape the speech engine service (EFTTSDown).",
                (Target(f"up{{{c.TTS}}}", "{{instance}}"),),
                kind="stat",
                width=4,
                mappings=UP_DOWN,
            ),
            Panel(
                3,
                "ready",
                "Readiness checks",
                "The backend's own checks (EFBackendNotReady): database writable, engine "
                "reachable (last probe), audio cache writable; and whether ef_tts is still "
                "loading its model within its configured load time (the engine check does not "
                "page then).",
                (
                    Target(f"ef_db_up{{{backend}}}", "database"),
                    Target(f"ef_tts_engine_up{{{backend}}}", "engine"),
                    Target(f"ef_audio_cache_writable{{{backend}}}", "cache"),
                    Target(
                        "count(" + _one_line(r.tts_loading_in_time()) + ") or vector(0)",
                        "engine loading in time",
                    ),
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
                "Alerts firing now (Watchdog excluded); the list beside names them.",
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
                "Targets per job that answered their last scrape; 0 (red) is a job Prometheus "
                "cannot scrape (EFTargetMissing, EFBackendDown, EFTTSDown).",
                (Target("sum by (job) (up)", "{{job}}"),),
                kind="stat",
                width=4,
                mappings=((0, "DOWN", "red"),),
                steps=((1, "green"),),
                base_colour="red",
            ),
            Panel(
                7,
                "alert_list",
                "Alerts",
                "Firing and pending alerts of the Prometheus rules.",
                (),
                kind="alertlist",
                width=24,
                height=6,
            ),
        ),
    )
    user = c.USER_ROUTES
    red = Row(
        101,
        "Requests (rate, errors, duration): API routes, not scrapes or health probes",
        (
            Panel(
                10,
                "request_rate",
                "Request rate by route",
                "API requests per second by route template (/metrics and /health/* left out).",
                (Target(_rate("ef_http_requests_total", user, "route"), "{{route}}"),),
                unit="reqps",
                width=8,
                stack=True,
            ),
            Panel(
                11,
                "error_ratio",
                "5xx ratio",
                "Share of API requests answered 5xx (5m), and the request rate its alert needs "
                f"(EFBackendHigh5xxRatio above {c.HTTP_ERROR_RATIO_MAX:.0%} at more than "
                f"{c.HTTP_MIN_RPS} requests/s).",
                (
                    Target(f"{r.HTTP_USER_ERROR_RATIO}{{{backend}}}", "5xx ratio"),
                    Target(f"{r.HTTP_USER_RATE}{{{backend}}}", "requests/s"),
                ),
                unit="percentunit",
                width=8,
                minimum=0,
                steps=((c.HTTP_ERROR_RATIO_MAX, "red"),),
                threshold_lines=True,
            ),
            Panel(
                12,
                "latency",
                "Request duration p95 by route",
                "p95 per API route; dots are exemplars linked to traces.",
                _quantiles("ef_http_request_duration_seconds", user, "route", ("95",)),
                unit="s",
                width=8,
            ),
        ),
    )
    probes = Row(
        102,
        "Probes through ef_proxy (blackbox exporter)",
        (
            Panel(
                20,
                "probes",
                "Probe success",
                "1 when the request users make through ef_proxy worked: /health/ready and a "
                f"short synthesis (EFProbeFailed after {c.PROBE_FAILING_FOR} of 0).",
                (Target(f"max_over_time(probe_success{{{c.PROBES}}}[2m])", "{{job}}"),),
                width=12,
                minimum=0,
                maximum=1,
                steps=(),
            ),
            Panel(
                21,
                "probe_duration",
                "Probe duration",
                "How long each probe took, end to end.",
                (Target(f"probe_duration_seconds{{{c.PROBES}}}", "{{job}}"),),
                unit="s",
                width=12,
            ),
        ),
    )
    processes = Row(
        103,
        "Processes",
        (
            Panel(
                30,
                "cpu",
                "CPU",
                "CPU seconds per second of each service (process_cpu_seconds_total).",
                (
                    Target(
                        f"rate(process_cpu_seconds_total{{{SERVICES}}}[{RATE_INTERVAL}])",
                        "{{job}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                31,
                "memory",
                "Resident memory",
                "Resident memory of each service (process_resident_memory_bytes).",
                (Target(f"process_resident_memory_bytes{{{SERVICES}}}", "{{job}}"),),
                unit="bytes",
                width=6,
            ),
            Panel(
                32,
                "fds",
                "Open file descriptors",
                "Open file descriptors against each service's limit.",
                (
                    Target(f"process_open_fds{{{SERVICES}}}", "{{job}} open"),
                    Target(f"process_max_fds{{{SERVICES}}}", "{{job}} max"),
                ),
                width=6,
            ),
            Panel(
                33,
                "restarts",
                "Restarts",
                f"Starts of each service in the last {c.CRASH_LOOP_WINDOW} (EFCrashLooping at "
                f"{c.CRASH_LOOP_RESTARTS}).",
                (
                    Target(
                        f"changes(process_start_time_seconds{{{SERVICES}}}[{c.CRASH_LOOP_WINDOW}])",
                        "{{job}}",
                    ),
                ),
                width=6,
                minimum=0,
                steps=((c.CRASH_LOOP_RESTARTS, "red"),),
                threshold_lines=True,
            ),
        ),
    )
    prom, am = c.PROMETHEUS, c.ALERTMANAGER
    watchers = Row(
        104,
        "Monitoring pipeline (the watchers watched)",
        (
            Panel(
                40,
                "config_reload",
                "Config reloads",
                "Last configuration reload worked (PrometheusBadConfig, AlertmanagerFailedReload).",
                (
                    Target(
                        f"max_over_time(prometheus_config_last_reload_successful{{{prom}}}[5m])",
                        "prometheus",
                    ),
                    Target(
                        f"max_over_time(alertmanager_config_last_reload_successful{{{am}}}[5m])",
                        "alertmanager",
                    ),
                ),
                kind="stat",
                width=6,
                mappings=OK_FAIL,
            ),
            Panel(
                41,
                "rule_failures",
                "Rule evaluation failures",
                "Rule evaluations that failed in 5 minutes (PrometheusRuleFailures above 0).",
                (
                    Target(
                        f"increase(prometheus_rule_evaluation_failures_total{{{prom}}}[5m])",
                        "{{rule_group}}",
                    ),
                ),
                width=6,
                minimum=0,
                steps=((0.5, "red"),),
                threshold_lines=True,
            ),
            Panel(
                42,
                "alert_delivery",
                "Prometheus to Alertmanager",
                "Alertmanagers discovered (PrometheusNotConnectedToAlertmanagers below 1) and "
                "the % of alerts sent with errors "
                "(PrometheusErrorSendingAlertsToSomeAlertmanagers above 1).",
                (
                    Target(
                        "max_over_time(prometheus_notifications_alertmanagers_discovered"
                        f"{{{prom}}}[5m])",
                        "discovered",
                    ),
                    Target(
                        f"(\n  rate(prometheus_notifications_errors_total{{{prom}}}[5m])\n"
                        f"/\n  rate(prometheus_notifications_sent_total{{{prom}}}[5m])\n)\n* 100",
                        "% errors {{alertmanager}}",
                    ),
                ),
                width=6,
            ),
            Panel(
                43,
                "notifications",
                "Alert notifications failing",
                "Share of notifications Alertmanager failed to send, by integration "
                "(AlertmanagerFailedToSendAlerts above 1 %).",
                (
                    Target(
                        f"rate(alertmanager_notifications_failed_total{{{am}}}[15m])\n"
                        "/ ignoring (reason) group_left "
                        f"rate(alertmanager_notifications_total{{{am}}}[15m])",
                        "{{integration}}",
                    ),
                ),
                unit="percentunit",
                width=6,
                minimum=0,
                steps=((0.01, "red"),),
                threshold_lines=True,
            ),
        ),
    )
    return Dashboard(
        uid="ef-overview",
        title="EchoForge Overview",
        description="Is it up, is it failing, is it slow: health, RED, probes, processes, and "
        "the monitoring pipeline itself.",
        rows=(health, red, probes, processes, watchers),
        annotations=ANNOTATIONS,
    )


def _one_line(expr: str) -> str:
    return " ".join(part.strip() for part in expr.splitlines())


def speech() -> Dashboard:
    backend, tts = c.BACKEND, c.TTS
    limits = ", ".join(f"{engine} {v:g}" for engine, v in sorted(c.REALTIME_FACTOR_MAX.items()))
    latency = Row(
        200,
        "Latency",
        (
            Panel(
                1,
                "latency",
                "Speech request duration by cache",
                "End to end, p50/p95/p99, hit and miss apart; dots are exemplars linked to "
                f"traces. The latency objective is {c.SPEECH_LATENCY_OBJECTIVE_S:g} s (SLO "
                "dashboard).",
                _quantiles("ef_tts_request_duration_seconds", backend, "cache"),
                unit="s",
                width=12,
                steps=((c.SPEECH_LATENCY_OBJECTIVE_S, "red"),),
                threshold_lines=True,
            ),
            Panel(
                2,
                "latency_heatmap",
                "Speech request duration heatmap",
                "How speech request durations spread over time.",
                (
                    Target(
                        "sum by (le) (increase(ef_tts_request_duration_seconds_bucket"
                        f"{{{backend}}}[{RATE_INTERVAL}]))",
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
                _quantiles("ef_tts_synthesis_duration_seconds", backend, "engine", ("50", "95")),
                unit="s",
                width=12,
            ),
            Panel(
                4,
                "first_audio",
                "Time to first audio",
                "From request to the first audio byte of a streamed or sentence-split request.",
                _quantiles("ef_tts_first_audio_seconds", backend, "", ("50", "95")),
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
                "requests get 503.",
                (
                    Target(f"ef_tts_queue_depth{{{backend}}}", "queued"),
                    Target(f"ef_tts_jobs_in_progress{{{backend}}}", "running"),
                    Target(f"ef_tts_queue_max{{{backend}}}", "capacity"),
                ),
                width=6,
            ),
            Panel(
                11,
                "queue_wait",
                "Queue wait",
                "The age of the oldest job still waiting (EFQueueStalled past "
                f"{c.QUEUE_OLDEST_AGE_MAX_S // 60} minutes), and how long jobs waited for a "
                "worker (p50, p95).",
                (
                    Target(
                        f"max_over_time(ef_tts_queue_oldest_age_seconds{{{backend}}}[5m])",
                        "oldest waiting",
                    ),
                    Target(f"{r.QUEUE_WAIT_P50}{{{backend}}}", "p50"),
                    Target(f"{r.QUEUE_WAIT_P95}{{{backend}}}", "p95"),
                ),
                unit="s",
                width=6,
                steps=((c.QUEUE_OLDEST_AGE_MAX_S, "red"),),
                threshold_lines=True,
            ),
            Panel(
                12,
                "queue_rejected",
                "Turned away: queue full",
                "Speech requests answered 503 in 5 minutes because the queue was full "
                "(EFQueueFull above 0).",
                (
                    Target(
                        "sum by (job, instance) (increase(ef_tts_queue_rejected_total"
                        f"{{{backend}}}[5m]))",
                        "{{instance}}",
                    ),
                ),
                width=6,
                minimum=0,
            ),
            Panel(
                13,
                "jobs",
                "Jobs finished by outcome",
                "Jobs per second that succeeded, failed, were rejected (text the engine "
                "refused), cancelled or retried.",
                (Target(_rate("ef_tts_jobs_total", backend, "outcome"), "{{outcome}}"),),
                unit="ops",
                width=6,
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
                (Target(_rate("ef_tts_failures_total", backend, "reason"), "{{reason}}"),),
                unit="ops",
                width=6,
                stack=True,
            ),
            Panel(
                21,
                "failure_ratio",
                "Engine failure ratio",
                "The engine's own failed calls (timeouts, errors, unreachable; refused text "
                f"left out) over all calls (5m). EFTTSFailureRatioHigh above "
                f"{c.FAILURE_RATIO_MAX:.0%} at more than {c.FAILURE_MIN_CALLS_PER_S} calls/s.",
                (Target(f"{r.ENGINE_FAILURE_RATIO}{{{backend}}}", "failure ratio"),),
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
                (Target(f"{r.CACHE_HIT_RATIO}{{{backend}}}", "hit ratio"),),
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
                (Target(_rate("ef_audio_cache_requests_total", backend, "result"), "{{result}}"),),
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
                "Backend's last engine probe, ef_tts's own model state (EFTTSNotReady, "
                "EFTTSModelLoadFailed), and 1 while ef_tts loads within its configured load time "
                "(no alert pages then).",
                (
                    Target(f"ef_tts_engine_up{{{backend}}}", "backend probe"),
                    Target(f"ef_tts_engine_model_loaded{{{tts}}}", "model loaded ({{model}})"),
                    Target(f"ef_tts_engine_model_load_failed{{{tts}}}", "load failed ({{model}})"),
                    Target(
                        "count(" + _one_line(r.tts_loading_in_time()) + ") or vector(0)",
                        "loading within EF_TTS_MODEL_LOAD_MAX_S",
                    ),
                ),
                width=8,
                minimum=0,
                maximum=1,
            ),
            Panel(
                31,
                "realtime_factor",
                "Real-time factor by engine",
                "Engine seconds per second of audio, p50 by engine (EFSpeechLatencyHigh above "
                f"the engine's normal: {limits}, others {c.REALTIME_FACTOR_MAX_DEFAULT:g}); and "
                "the backend's view, queueing excluded.",
                (
                    Target(f"{r.ENGINE_RTF_P50}{{{tts}}}", "p50 {{engine}}"),
                    Target(f"{r.REALTIME_FACTOR}{{{backend}}}", "backend view"),
                ),
                width=8,
                minimum=0,
                steps=((min(c.REALTIME_FACTOR_MAX.values()), "orange"),),
                threshold_lines=True,
            ),
            Panel(
                32,
                "inference",
                "Engine inference p95",
                "Model time per request inside ef_tts, p95.",
                (Target(f"{r.ENGINE_INFERENCE_P95}{{{tts}}}", "{{engine}}"),),
                unit="s",
                width=8,
            ),
            Panel(
                33,
                "engine_requests",
                "Engine requests by outcome",
                "Requests ef_tts answered, by outcome.",
                (Target(_rate("ef_tts_engine_requests_total", tts, "outcome"), "{{outcome}}"),),
                unit="reqps",
                width=8,
                stack=True,
            ),
            Panel(
                34,
                "tts_memory",
                "ef_tts memory against its limit",
                "Resident memory over the container's memory limit (EFTTSMemoryHigh above "
                f"{c.TTS_MEMORY_RATIO_MAX:.0%}).",
                (Target(f"{r.TTS_MEMORY_RATIO}{{{tts}}}", "{{instance}}"),),
                unit="percentunit",
                width=8,
                minimum=0,
                maximum=1,
                steps=((c.TTS_MEMORY_RATIO_MAX, "red"),),
                threshold_lines=True,
            ),
            Panel(
                35,
                "audio_rate",
                "Audio produced",
                "Seconds of audio synthesised per second (backend count).",
                (Target(_rate("ef_tts_audio_seconds_total", backend), "audio s/s"),),
                width=8,
            ),
        ),
    )
    wyoming = Row(
        204,
        "Wyoming (Home Assistant)",
        (
            Panel(
                40,
                "wyoming_up",
                "Wyoming listener",
                "1 while the backend accepts Wyoming connections (EFWyomingListenerDown when 0 "
                "for 5 minutes: the port cannot be bound). docs/home-assistant.md.",
                (Target(f"ef_wyoming_listener_up{{{backend}}}", "{{instance}} {{address}}"),),
                kind="stat",
                width=6,
                mappings=UP_DOWN,
                base_colour="red",
                steps=((1, "green"),),
            ),
            Panel(
                41,
                "wyoming_requests",
                "Wyoming requests",
                "Requests per second by kind (describe, synthesize, stream) and outcome, and "
                "connections refused by EF_WYOMING_CIDRS.",
                (
                    Target(
                        _rate("ef_wyoming_requests_total", backend, "request, outcome"),
                        "{{request}} {{outcome}}",
                    ),
                    Target(
                        _rate("ef_wyoming_connections_total", f'{backend},result="refused"'),
                        "refused connections",
                    ),
                ),
                unit="reqps",
                width=6,
            ),
            Panel(
                42,
                "wyoming_first_audio",
                "Wyoming time to first audio",
                "From a complete sentence to its first audio chunk (p50, p95): what a Home "
                "Assistant user waits before the speaker starts.",
                _quantiles("ef_wyoming_first_audio_seconds", backend, qs=("50", "95")),
                unit="s",
                width=6,
            ),
            Panel(
                43,
                "wyoming_errors",
                "Wyoming errors and cache",
                "Error events sent, by code, and Wyoming speech requests by cache result.",
                (
                    Target(_rate("ef_wyoming_errors_total", backend, "code"), "error {{code}}"),
                    Target(
                        _rate("ef_wyoming_cache_requests_total", backend, "result"),
                        "cache {{result}}",
                    ),
                ),
                unit="ops",
                width=6,
            ),
        ),
    )
    return Dashboard(
        uid="ef-speech",
        title="EchoForge Speech pipeline",
        description="Where a speech request spends time (cache, queue, engine) and why it fails.",
        rows=(latency, queue, failures, engine, wyoming),
        annotations=ANNOTATIONS,
    )


def storage() -> Dashboard:
    disk, backend = c.DISK, c.BACKEND
    disks = Row(
        300,
        "Disk",
        (
            Panel(
                1,
                "disk_used",
                "Disk used",
                f"Used share per watched path (EFDiskUsageHigh: warning at "
                f"{c.DISK_USED_WARNING:.0%}, critical at {c.DISK_USED_CRITICAL:.0%}).",
                (Target(f"ef_disk_used_ratio{{{disk}}}", "{{path}}"),),
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
                f"(linear, from the last {c.DISK_FORECAST_WINDOW}); below 0 means full "
                f"(EFDiskWillFillIn24h, once more than {c.DISK_FORECAST_MIN_USED:.0%} is used).",
                (
                    Target(f"ef_disk_free_bytes{{{disk}}}", "{{path}} free"),
                    Target(f"{r.DISK_FREE_FORECAST}{{{disk}}}", "{{path}} in 24 h"),
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
                "1 when every configured path could be read at the last scrape "
                "(EFDiskExporterFailing).",
                (Target(f"ef_disk_exporter_up{{{disk}}}", "{{instance}}"),),
                kind="stat",
                width=6,
                mappings=OK_FAIL,
            ),
            Panel(
                4,
                "inodes",
                "Inodes used",
                "Share of inodes in use per path, where the file system has inodes "
                f"(EFDiskInodesLow above {c.INODES_USED_WARNING:.0%}).",
                (Target(f"{r.INODES_USED_RATIO}{{{disk}}}", "{{path}}"),),
                unit="percentunit",
                width=12,
                minimum=0,
                maximum=1,
                steps=((c.INODES_USED_WARNING, "red"),),
                threshold_lines=True,
            ),
            Panel(
                5,
                "disk_bytes",
                "Disk size and use",
                "Total and used bytes per path.",
                (
                    Target(f"ef_disk_size_bytes{{{disk}}}", "{{path}} size"),
                    Target(f"ef_disk_used_bytes{{{disk}}}", "{{path}} used"),
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
                "SQLite file plus WAL. Past the line it is time to consider PostgreSQL "
                "(EFDatabaseLarge).",
                (Target(f"ef_db_size_bytes{{{backend}}}", "db.sqlite + WAL"),),
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
                (Target(f"{r.DB_GROWTH}{{{backend}}}", "growth"),),
                unit="Bps",
                width=8,
            ),
            Panel(
                12,
                "db_queries",
                "Database operation duration",
                "p95 of database operations by kind.",
                _quantiles("ef_db_query_duration_seconds", backend, "operation", ("95",)),
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
                "Bytes in the audio cache against its cap (EF_CACHE_MAX_BYTES). Past the cap "
                "the least recently used audio is evicted down to the low-water mark "
                "(EF_CACHE_LOW_WATER_RATIO), so a full cache is normal.",
                (
                    Target(f"ef_audio_cache_size_bytes{{{backend}}}", "size"),
                    Target(f"ef_audio_cache_max_bytes{{{backend}}}", "cap"),
                ),
                unit="bytes",
                width=8,
            ),
            Panel(
                21,
                "cache_entries",
                "Cache entries and evictions",
                "Audio files in the cache, and entries evicted per second.",
                (
                    Target(f"ef_audio_cache_entries{{{backend}}}", "entries"),
                    Target(_rate("ef_audio_cache_evictions_total", backend), "evictions/s"),
                ),
                width=8,
            ),
            Panel(
                22,
                "cache_churn",
                "Cache churn and daily hit ratio",
                "Entries evicted over the last day per entry held, and the hit ratio over the "
                f"day (EFAudioCacheChurn: churn above {c.CACHE_CHURN_MAX_PER_DAY:g} while hits "
                f"stay below {c.CACHE_HIT_RATIO_MIN:.0%}).",
                (
                    Target(f"{r.CACHE_CHURN_1D}{{{backend}}}", "evicted per entry, 1d"),
                    Target(f"{r.CACHE_HIT_RATIO_1D}{{{backend}}}", "hit ratio, 1d"),
                ),
                width=8,
                minimum=0,
                steps=((c.CACHE_CHURN_MAX_PER_DAY, "orange"),),
                threshold_lines=True,
            ),
        ),
    )
    return Dashboard(
        uid="ef-storage",
        title="EchoForge Storage",
        description="Disk, database and audio cache: how full, how fast they grow, when full.",
        rows=(disks, db, cache),
        annotations=ANNOTATIONS,
    )


def slo() -> Dashboard:
    backend = c.BACKEND
    budget = c.SLO_ERROR_BUDGET
    window = c.SLO_WINDOW
    bad, events = r._slo_parts(window)
    page = [c.burn_factor(lw, share) for lw, _, share in c.SLO_PAGE_BURNS]
    ticket = [c.burn_factor(lw, share) for lw, _, share in c.SLO_TICKET_BURNS]
    long_windows = [lw for lw, _, _ in (*c.SLO_PAGE_BURNS, *c.SLO_TICKET_BURNS)]
    availability = Row(
        400,
        f"Availability {c.SLO_TARGET:.1%} over {window}: speech answers and job outcomes",
        (
            Panel(
                1,
                "availability",
                f"Availability ({window})",
                "Share of speech answers (a job's 202 left out) and finished jobs that did not "
                "fail.",
                (Target(f"1 - (\n{bad}\n/ {events}\n)", "availability", instant=True),),
                kind="stat",
                unit="percentunit",
                width=6,
                steps=(),
            ),
            Panel(
                2,
                "error_budget",
                f"Error budget left ({window})",
                f"1 = untouched, 0 = spent. Budget: {budget:.1%} of answers and jobs may fail.",
                (Target(f"1 - (\n{bad}\n/ {events}\n) / {budget}", "budget left", instant=True),),
                kind="stat",
                unit="percentunit",
                width=6,
                steps=((0.25, "orange"), (0.5, "green")),
                base_colour="red",
            ),
            Panel(
                3,
                "burn_rate",
                "Error budget burn rate",
                "Failed share over a window divided by the budget; 1 spends it exactly over "
                f"{window}. EFSpeechErrorBudgetBurn pages at "
                + " / ".join(f"{f:g}" for f in page)
                + " (1h / 6h), tickets at "
                + " / ".join(f"{f:g}" for f in ticket)
                + f" (1d / 3d), each only with {c.SLO_MIN_EVENTS} events in the long window.",
                tuple(
                    Target(f"{r.slo_error_ratio(w)}{{{backend}}} / {budget}", w)
                    for w in long_windows
                ),
                width=12,
                minimum=0,
                steps=((min(ticket), "orange"), (min(page), "red")),
                threshold_lines=True,
            ),
            Panel(
                4,
                "slo_events",
                "Events in each window",
                f"Answers and jobs counted per long window; below {c.SLO_MIN_EVENTS} the burn "
                "alerts of that window stay silent.",
                tuple(Target(f"{r.slo_events(w)}{{{backend}}}", w) for w in long_windows),
                width=12,
                minimum=0,
                steps=((c.SLO_MIN_EVENTS, "green"),),
                base_colour="orange",
                threshold_lines=True,
            ),
            Panel(
                5,
                "speech_status",
                "Speech API answers by status",
                "Requests per second to the speech routes, by status code.",
                (Target(_rate("ef_http_requests_total", c.SPEECH, "status"), "{{status}}"),),
                unit="reqps",
                width=12,
                stack=True,
            ),
        ),
    )
    latency_windows = [w for lw, sw, _ in c.SLO_TICKET_BURNS for w in (lw, sw)]
    latency = Row(
        401,
        f"Latency: {c.SLO_LATENCY_TARGET:.0%} of speech requests within "
        f"{c.SPEECH_LATENCY_OBJECTIVE_S:g} s",
        (
            Panel(
                10,
                "latency_burn",
                "Latency budget burn rate",
                "Share of speech requests slower than the objective, over the latency budget "
                f"({c.SLO_LATENCY_BUDGET:.0%}). EFSpeechLatencyBudgetBurn tickets at "
                + " / ".join(f"{f:g}" for f in ticket)
                + " (1d / 3d).",
                tuple(
                    Target(f"{r.slo_slow_ratio(w)}{{{backend}}} / {c.SLO_LATENCY_BUDGET}", w)
                    for w in latency_windows
                ),
                width=12,
                minimum=0,
                steps=((min(ticket), "orange"),),
                threshold_lines=True,
            ),
            Panel(
                11,
                "latency_events",
                "Speech requests in each window",
                f"Below {c.SLO_MIN_EVENTS} the latency burn alert of that window stays silent.",
                tuple(
                    Target(f"{r.slo_latency_events(lw)}{{{backend}}}", lw)
                    for lw, _, _ in c.SLO_TICKET_BURNS
                ),
                width=12,
                minimum=0,
            ),
        ),
    )
    return Dashboard(
        uid="ef-slo",
        title="EchoForge SLO",
        description="The speech API's objectives: availability (answers and job outcomes) and "
        "latency, their budgets left and how fast they burn.",
        rows=(availability, latency),
        annotations=ANNOTATIONS,
    )


def all_dashboards() -> tuple[Dashboard, ...]:
    return (overview(), speech(), storage(), slo())
