"""The one place for every threshold, selector, window and link the rules and dashboards use.

Change a value here, run ``make generate``, commit the regenerated files: a test fails when the
committed ``alerts/``, ``monitoring/prometheus/rules/`` or ``dashboards/`` drift from this file.
The promtool tests in ``alerts/tests/`` pin the behaviour at these values, so a changed threshold
also means an updated test (on purpose: the test shows the new edge).
"""

from __future__ import annotations

from typing import Final

# Where the links in every alert point. Runbooks are the markdown files under runbooks/alerts/,
# served wherever the repository is browsable (GitHub, Gitea, ...); Grafana is the compose UI.
RUNBOOK_BASE_URL: Final = "https://github.com/echoforge/echoforge/blob/main/runbooks/alerts"
GRAFANA_URL: Final = "http://localhost:3000"

# Scrape job names (monitoring/prometheus/prometheus.yml uses the same).
JOB_BACKEND: Final = "ef_backend"
JOB_TTS: Final = "ef_tts"
JOB_DISK: Final = "ef_disk_exporter"
JOB_PROMETHEUS: Final = "prometheus"
JOB_ALERTMANAGER: Final = "alertmanager"
#: Targets without an alert of their own: EFTargetMissing covers them.
SUPPORT_JOBS: Final = (JOB_DISK, JOB_PROMETHEUS, JOB_ALERTMANAGER)

BACKEND: Final = f'job="{JOB_BACKEND}"'
TTS: Final = f'job="{JOB_TTS}"'
DISK: Final = f'job="{JOB_DISK}"'

#: The speech API of the availability SLO (route templates as the backend labels them): the
#: requests that ask for speech or fetch it. Status polls (GET /api/v1/jobs/{job_id}) are left
#: out: clients poll many times per job, and those cheap successes would dilute the ratio. Jobs
#: that fail after their 202 show in EFTTSFailureRatioHigh. ``[{]`` is a literal brace in RE2.
SPEECH_ROUTES: Final = (
    "/api/v1/speech",
    "/v1/audio/speech",
    "/api/v1/jobs",
    "/api/v1/jobs/[{]job_id[}]/audio",
)
SPEECH: Final = BACKEND + ',route=~"' + "|".join(SPEECH_ROUTES) + '"'
#: What counts as a failed request: the server's fault (engine down and queue full included).
ERROR_STATUS: Final = 'status=~"5.."'

# SLO: availability of the speech API. Burn-rate pairs (long window, short window, factor) from
# the Google SRE workbook, chapter "Alerting on SLOs": page fast burns, ticket slow ones.
SLO_TARGET: Final = 0.995
SLO_ERROR_BUDGET: Final = round(1 - SLO_TARGET, 6)
#: The budget window the dashboards show: Prometheus keeps 7 days (retention), not 30.
SLO_WINDOW: Final = "7d"
SLO_PAGE_BURNS: Final = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
SLO_TICKET_BURNS: Final = (("1d", "2h", 3.0), ("3d", "6h", 1.0))
SLO_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# HTTP
HTTP_ERROR_RATIO_MAX: Final = 0.05
#: Below this request rate (per second, 5m average) the 5xx ratio is noise: 6 requests in 5 min.
HTTP_MIN_RPS: Final = 0.02

# Speech pipeline
SPEECH_P95_MAX_SECONDS: Final = 20.0
FAILURE_RATIO_MAX: Final = 0.10
FAILURE_MIN_CALLS_PER_S: Final = 0.01
QUEUE_BACKLOG_MIN: Final = 10
QUEUE_GROWTH_WINDOW: Final = "15m"

# ef_tts: a first Coqui start downloads the model, so loading may legitimately take minutes.
TTS_LOADING_MAX: Final = "15m"

# Storage
DISK_USED_WARNING: Final = 0.80
DISK_USED_CRITICAL: Final = 0.95
DISK_FORECAST_WINDOW: Final = "6h"
DISK_FORECAST_HORIZON_S: Final = 24 * 3600
#: A linear forecast from a nearly empty disk is noise; only forecast past this usage.
DISK_FORECAST_MIN_USED: Final = 0.50
#: The plan's "signal to migrate" from SQLite to PostgreSQL.
DB_SIZE_MAX_BYTES: Final = 1024**3
CACHE_NEAR_CAP_RATIO: Final = 0.90

# Alert durations (``for:``), by alert name (``name:severity`` where one name has two).
FOR: Final = {
    "Watchdog": "0s",
    "EFBackendDown": "1m",
    "EFBackendNotReady": "5m",
    "EFBackendHigh5xxRatio": "5m",
    "EFTTSDown": "2m",
    "EFTTSModelLoadFailed": "1m",
    "EFTTSNotReady": TTS_LOADING_MAX,
    "EFSpeechLatencyHigh": "10m",
    "EFTTSFailureRatioHigh": "10m",
    "EFQueueBacklogGrowing": "15m",
    "EFSpeechErrorBudgetBurn:critical": "2m",
    "EFSpeechErrorBudgetBurn:warning": "15m",
    "EFDiskUsageHigh:warning": "15m",
    "EFDiskUsageHigh:critical": "5m",
    "EFDiskWillFillIn24h": "1h",
    "EFDiskExporterFailing": "5m",
    "EFDatabaseLarge": "1h",
    "EFAudioCacheNearCap": "1h",
    "EFTargetMissing": "5m",
    "EFAlertmanagerNotificationsFailing": "10m",
}

#: Severities the routes in monitoring/alertmanager/alertmanager.yml know.
SEVERITIES: Final = ("critical", "warning", "info")
