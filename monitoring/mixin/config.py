"""The one place for every threshold, selector, window and link the rules and dashboards use.

Change a value here, run ``make generate``, commit the regenerated files: a test fails when the
committed ``alerts/``, ``monitoring/prometheus/rules/`` or ``dashboards/`` drift from this file.
The promtool tests in ``alerts/tests/`` pin the behaviour at these values, so a changed threshold
also means an updated test (on purpose: the test shows the new edge).
"""

from __future__ import annotations

from typing import Final

# Where the links in every alert point. The base URLs are Prometheus external labels, which
# prometheus.yml fills from the environment (EF_GRAFANA_URL, EF_RUNBOOKS_URL in .env, defaults in
# docker-compose.monitoring.yml): annotations read them as ``$externalLabels.<name>``, so one
# setting in .env fixes every link. The email template leaves these labels out of its label list.
GRAFANA_URL_LABEL: Final = "ef_grafana_url"
RUNBOOKS_URL_LABEL: Final = "ef_runbooks_url"
#: What compose uses when .env sets nothing (the promtool tests use the same values).
DEFAULT_GRAFANA_URL: Final = "http://localhost:3000"
DEFAULT_RUNBOOKS_URL: Final = "https://github.com/echoforge/echoforge/blob/main/runbooks"

# Scrape job names (monitoring/prometheus/prometheus.yml uses the same).
JOB_BACKEND: Final = "ef_backend"
JOB_TTS: Final = "ef_tts"
JOB_DISK: Final = "ef_disk_exporter"
JOB_PROMETHEUS: Final = "prometheus"
JOB_ALERTMANAGER: Final = "alertmanager"
#: The blackbox exporter's own metrics, and the probes it runs through ef_proxy (one job per
#: module, so that a probe's alert and panel can name it).
JOB_BLACKBOX: Final = "blackbox"
JOB_PROBE_READY: Final = "probe_ready"
JOB_PROBE_SPEECH: Final = "probe_speech"
JOB_PROBE_ENGINE: Final = "probe_engine"
PROBE_JOBS: Final = (JOB_PROBE_READY, JOB_PROBE_SPEECH, JOB_PROBE_ENGINE)
#: Targets without an alert of their own: EFTargetMissing covers them.
SUPPORT_JOBS: Final = (JOB_DISK, JOB_PROMETHEUS, JOB_ALERTMANAGER, JOB_BLACKBOX)
#: Our own processes, watched for crash loops.
SERVICE_JOBS: Final = (JOB_BACKEND, JOB_TTS, JOB_DISK)

BACKEND: Final = f'job="{JOB_BACKEND}"'
TTS: Final = f'job="{JOB_TTS}"'
DISK: Final = f'job="{JOB_DISK}"'
PROMETHEUS: Final = f'job="{JOB_PROMETHEUS}"'
ALERTMANAGER: Final = f'job="{JOB_ALERTMANAGER}"'
PROBES: Final = 'job=~"' + "|".join(PROBE_JOBS) + '"'

#: The speech API (route templates as the backend labels them): the requests that ask for speech
#: or fetch it. Status polls (GET /api/v1/jobs/{job_id}) are left out: clients poll many times
#: per job, and those cheap successes would dilute the ratio. ``[{]`` is a literal brace in RE2.
SPEECH_ROUTES: Final = (
    "/api/v1/speech",
    "/v1/audio/speech",
    "/api/v1/jobs",
    "/api/v1/jobs/[{]job_id[}]/audio",
)
SPEECH: Final = BACKEND + ',route=~"' + "|".join(SPEECH_ROUTES) + '"'
#: What users call: everything under the API prefixes. Scrapes (/metrics), health probes and the
#: docs are left out of the 5xx ratio: about 0.17 requests/s of them would dilute it and lift it
#: over its traffic floor on their own.
USER_ROUTES: Final = BACKEND + ',route=~"/api/v1/.*|/v1/.*"'
#: What counts as a failed request: the server's fault (engine down and queue full included).
ERROR_STATUS: Final = 'status=~"5.."'

# SLO: the speech API. A request counts by its answer, except a job's 202 (accepted is not
# served): a job counts by its final outcome (ef_tts_jobs_total succeeded / failed) instead, so a
# job that fails after its 202 spends budget. Jobs the engine refused (outcome="rejected": the
# client's text) and cancelled jobs spend none.
SLO_TARGET: Final = 0.995
SLO_ERROR_BUDGET: Final = round(1 - SLO_TARGET, 6)
#: The budget window. Prometheus keeps 7 days (retention.time, plus retention.size so that it
#: never fills the disk), and the window the burn factors are computed for must be one whose
#: data exists: a 30-day budget shown from 7 days of data would silently be a 7-day one. On a
#: homelab's traffic a 7-day window also forgets an incident within the week instead of a month.
SLO_WINDOW: Final = "7d"
SLO_WINDOW_HOURS: Final = 7 * 24
#: Multiwindow, multi-burn-rate alerts (SRE workbook, "Alerting on SLOs"): (long window, short
#: window, share of the whole budget spent in the long window). The factor is share * window /
#: long window; these are sloth's 7-day windows: 13.44, 3.5, 1.4 and 0.98.
SLO_PAGE_BURNS: Final = (("1h", "5m", 0.08), ("6h", "30m", 0.125))
SLO_TICKET_BURNS: Final = (("1d", "2h", 0.20), ("3d", "6h", 0.42))
SLO_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: Fewer events than this in the long window and a burn alert stays silent (SRE workbook,
#: low-traffic services): at one request every 5 minutes one 503 is 8 % of an hour, a burn of
#: 17 that would page for a single failure. The blackbox probe adds steady traffic on top.
SLO_MIN_EVENTS: Final = 30
#: Latency objective: this share of speech requests answered within SPEECH_LATENCY_OBJECTIVE_S
#: (a bucket bound of ef_tts_request_duration_seconds). Generous, so that Coqui on a CPU meets
#: it; the engine-aware EFSpeechLatencyHigh catches an engine slower than its normal.
SLO_LATENCY_TARGET: Final = 0.95
SLO_LATENCY_BUDGET: Final = round(1 - SLO_LATENCY_TARGET, 6)
SPEECH_LATENCY_OBJECTIVE_S: Final = 30.0


def burn_factor(long_window: str, share: float) -> float:
    """How many times faster than "exactly the budget over SLO_WINDOW" spends ``share`` of the
    budget within ``long_window``."""
    hours = {"1h": 1, "6h": 6, "1d": 24, "3d": 72}[long_window]
    return round(share * SLO_WINDOW_HOURS / hours, 2)


# HTTP
HTTP_ERROR_RATIO_MAX: Final = 0.05
#: Below this request rate (per second, 5m average, user routes only) the 5xx ratio is noise:
#: 6 requests in 5 min.
HTTP_MIN_RPS: Final = 0.02

# Speech pipeline
#: Engine seconds per second of audio (p50 over 5m, by engine) past which synthesis is slower
#: than that engine's normal: Piper runs far faster than real time on any CPU, Coqui VITS about
#: real time on a small CPU, XTTS slower. Engines not listed use DEFAULT.
REALTIME_FACTOR_MAX: Final = {"piper": 1.0, "coqui": 3.0}
REALTIME_FACTOR_MAX_DEFAULT: Final = 3.0
FAILURE_RATIO_MAX: Final = 0.10
FAILURE_MIN_CALLS_PER_S: Final = 0.01
#: Engine failures that are the engine's fault; "rejected" is text the engine refused (the
#: client's fault) and is left out.
ENGINE_FAILURE_REASONS: Final = ("timeout", "engine_error", "unreachable")
#: The oldest job still waiting for a worker: older than this and the queue is stuck or far
#: behind (a long Coqui job takes a few minutes; ten is not normal).
QUEUE_OLDEST_AGE_MAX_S: Final = 600

# ef_tts: a first Coqui start downloads the model, so loading may legitimately take minutes.
# The limit is ef_tts's own setting EF_TTS_MODEL_LOAD_MAX_S, exported as
# ef_tts_engine_model_load_max_seconds: the rules read it, so it is configured in one place.
#: Restarts of a process in CRASH_LOOP_WINDOW past which it is crash looping.
CRASH_LOOP_RESTARTS: Final = 3
CRASH_LOOP_WINDOW: Final = "30m"
#: Resident memory of ef_tts against its memory limit (cgroup), past which it is at risk of
#: being killed.
TTS_MEMORY_RATIO_MAX: Final = 0.90

# Storage
DISK_USED_WARNING: Final = 0.80
DISK_USED_CRITICAL: Final = 0.95
INODES_USED_WARNING: Final = 0.90
DISK_FORECAST_WINDOW: Final = "6h"
DISK_FORECAST_HORIZON_S: Final = 24 * 3600
#: A linear forecast from a nearly empty disk is noise; only forecast past this usage.
DISK_FORECAST_MIN_USED: Final = 0.50
#: The plan's "signal to migrate" from SQLite to PostgreSQL.
DB_SIZE_MAX_BYTES: Final = 1024**3
#: A full cache is normal (the backend evicts down to a low-water mark). What an operator acts
#: on is churn: more entries evicted in a day than the cache holds (its whole content replaced
#: daily) while lookups mostly miss: the cap is too small for the working set.
CACHE_CHURN_MAX_PER_DAY: Final = 1.0
CACHE_HIT_RATIO_MIN: Final = 0.5

# Probes through ef_proxy (blackbox exporter).
PROBE_FAILING_FOR: Final = "5m"

# Alert durations (``for:``), by alert name (``name:severity`` where one name has two).
FOR: Final = {
    "Watchdog": "0s",
    "EFBackendDown": "1m",
    "EFBackendNotReady": "5m",
    "EFBackendHigh5xxRatio": "5m",
    "EFTTSDown": "2m",
    "EFTTSModelLoadFailed": "1m",
    "EFTTSNotReady": "1m",
    "EFTTSMemoryHigh": "10m",
    "EFCrashLooping": "1m",
    "EFSpeechLatencyHigh": "10m",
    "EFTTSFailureRatioHigh": "10m",
    "EFQueueStalled": "5m",
    "EFQueueFull": "5m",
    "EFWyomingListenerDown": "5m",
    "EFSpeechErrorBudgetBurn:critical": "2m",
    "EFSpeechErrorBudgetBurn:warning": "15m",
    "EFSpeechLatencyBudgetBurn": "15m",
    "EFProbeFailed": PROBE_FAILING_FOR,
    "EFDiskUsageHigh:warning": "15m",
    "EFDiskUsageHigh:critical": "5m",
    "EFDiskInodesLow": "15m",
    "EFDiskWillFillIn24h": "1h",
    "EFDiskExporterFailing": "5m",
    "EFDatabaseLarge": "1h",
    "EFAudioCacheChurn": "1h",
    "EFTargetMissing": "5m",
    # Upstream watcher alerts (prometheus-mixin, alertmanager-mixin): their own durations.
    "PrometheusBadConfig": "10m",
    "PrometheusRuleFailures": "15m",
    "PrometheusErrorSendingAlertsToSomeAlertmanagers": "15m",
    "PrometheusNotConnectedToAlertmanagers": "10m",
    "AlertmanagerFailedReload": "10m",
    "AlertmanagerFailedToSendAlerts": "5m",
}

#: Severities the routes in monitoring/alertmanager/alertmanager.yml know.
SEVERITIES: Final = ("critical", "warning", "info")
