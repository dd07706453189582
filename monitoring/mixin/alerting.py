"""Every EchoForge alert: one file per component under ``alerts/``.

Each alert has a ``for:``, a ``severity`` (critical pages now, warning is grouped, info goes to a
digest), a ``component`` (the inhibitions in alertmanager.yml use it), a static ``summary``, a
``description`` templated with the values, a ``runbook_url`` and a ``dashboard_url`` that opens
the panel showing the same series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitoring.mixin import config as c
from monitoring.mixin import dashboards as d
from monitoring.mixin import recording as r

B = c.BACKEND


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    component: str
    expr: str
    summary: str
    description: str
    #: (dashboard function, panel key) of the panel that shows it.
    panel: tuple[str, str]
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def for_(self) -> str:
        return c.FOR.get(f"{self.name}:{self.severity}") or c.FOR[self.name]

    def rule(self) -> dict[str, Any]:
        if self.severity not in c.SEVERITIES:
            raise ValueError(f"{self.name}: unknown severity {self.severity!r}")
        board = _DASHBOARDS[self.panel[0]]
        panel = board.panel(self.panel[1])
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0s":
            rule["for"] = self.for_
        rule["labels"] = {
            "severity": self.severity,
            "component": self.component,
            **dict(self.labels),
        }
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{c.RUNBOOK_BASE_URL}/{self.name}.md",
            "dashboard_url": f"{c.GRAFANA_URL}/d/{board.uid}/{board.slug}?viewPanel={panel.id}",
        }
        return rule


_DASHBOARDS = {board.uid: board for board in d.all_dashboards()}
OVERVIEW, SPEECH, STORAGE = "ef-overview", "ef-speech", "ef-storage"


def _down_or_absent(job: str) -> str:
    """Down (the scrape fails) or absent (no such target: Prometheus is blind to it)."""
    return f'up{{job="{job}"}} == 0 or absent(up{{job="{job}"}})'


def _pct(x: float) -> str:
    return f"{x:.0%}"


def backend() -> list[Alert]:
    return [
        Alert(
            "EFBackendDown",
            "critical",
            "backend",
            _down_or_absent(c.JOB_BACKEND),
            "The EchoForge backend is down.",
            "Prometheus cannot scrape ef_backend{{ with $labels.instance }} at {{ . }}{{ else }}"
            " (no target is configured){{ end }}: the speech API, the web page and the OpenAI "
            "endpoint are unavailable.",
            (OVERVIEW, "backend_up"),
        ),
        Alert(
            "EFBackendNotReady",
            "critical",
            "backend",
            f'label_replace(ef_db_up{{{B}}} == 0, "check", "database", "", "")\n'
            f'or label_replace(ef_tts_engine_up{{{B}}} == 0, "check", "engine", "", "")\n'
            f'or label_replace(ef_audio_cache_writable{{{B}}} == 0, "check", "cache", "", "")',
            "The EchoForge backend is not ready.",
            "ef_backend at {{ $labels.instance }} answers but its {{ $labels.check }} check has "
            "failed for 5 minutes: /health/ready says 503 and speech requests fail.",
            (OVERVIEW, "ready"),
        ),
        Alert(
            "EFBackendHigh5xxRatio",
            "warning",
            "backend",
            f"{r.HTTP_ERROR_RATIO}{{{B}}} > {c.HTTP_ERROR_RATIO_MAX}\n"
            f"and {r.HTTP_RATE}{{{B}}} > {c.HTTP_MIN_RPS}",
            "The backend answers many requests with a server error.",
            "{{ $value | humanizePercentage }} of the requests to ef_backend were answered 5xx "
            f"over the last 5 minutes (threshold {_pct(c.HTTP_ERROR_RATIO_MAX)}).",
            (OVERVIEW, "error_ratio"),
        ),
    ]


def speech() -> list[Alert]:
    return [
        Alert(
            "EFSpeechLatencyHigh",
            "warning",
            "speech",
            f"{r.SPEECH_P95}{{{B}}} > {c.SPEECH_P95_MAX_SECONDS:g}",
            "Speech requests are slow.",
            "The p95 of speech request duration is {{ $value | humanizeDuration }} over the "
            f"last 5 minutes (threshold {c.SPEECH_P95_MAX_SECONDS:g}s).",
            (SPEECH, "latency"),
        ),
        Alert(
            "EFTTSFailureRatioHigh",
            "warning",
            "speech",
            f"{r.FAILURE_RATIO}{{{B}}} > {c.FAILURE_RATIO_MAX}\n"
            f"and on (job) {r.ENGINE_CALLS}{{{B}}} > {c.FAILURE_MIN_CALLS_PER_S}",
            "Many engine calls fail.",
            "{{ $value | humanizePercentage }} of the engine calls failed with reason "
            '"{{ $labels.reason }}" over the last 5 minutes '
            f"(threshold {_pct(c.FAILURE_RATIO_MAX)}).",
            (SPEECH, "failure_ratio"),
        ),
        Alert(
            "EFQueueBacklogGrowing",
            "warning",
            "speech",
            f"ef_tts_queue_depth{{{B}}} > {c.QUEUE_BACKLOG_MIN}\n"
            f"and deriv(ef_tts_queue_depth{{{B}}}[{c.QUEUE_GROWTH_WINDOW}]) > 0",
            "The speech job queue keeps growing.",
            "{{ $value }} jobs are waiting in the queue of {{ $labels.instance }} and the queue "
            f"has grown over the last {c.QUEUE_GROWTH_WINDOW}: the workers do not keep up.",
            (SPEECH, "queue_depth"),
        ),
    ]


def tts() -> list[Alert]:
    T = c.TTS
    return [
        Alert(
            "EFTTSDown",
            "critical",
            "tts",
            _down_or_absent(c.JOB_TTS),
            "The speech engine service is down.",
            "Prometheus cannot scrape ef_tts{{ with $labels.instance }} at {{ . }}{{ else }}"
            " (no target is configured){{ end }}: no new speech can be synthesised; cached "
            "audio is still served.",
            (OVERVIEW, "tts_up"),
        ),
        Alert(
            "EFTTSModelLoadFailed",
            "critical",
            "tts",
            f"ef_tts_engine_model_load_failed{{{T}}} == 1",
            "The speech engine failed to load its model.",
            "ef_tts at {{ $labels.instance }} could not load model {{ $labels.model }} "
            "({{ $labels.engine }}); /health on ef_tts gives the reason.",
            (SPEECH, "engine_up"),
        ),
        Alert(
            "EFTTSNotReady",
            "critical",
            "tts",
            f"ef_tts_engine_model_loaded{{{T}}} == 0",
            "The speech engine has no model loaded.",
            "ef_tts at {{ $labels.instance }} has not had model {{ $labels.model }} "
            f"({{{{ $labels.engine }}}}) loaded for {c.TTS_LOADING_MAX}.",
            (SPEECH, "engine_up"),
        ),
    ]


def storage() -> list[Alert]:
    D = c.DISK
    disk_desc = (
        "{{ $labels.path }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} full "
        "(threshold {threshold})."
    )
    return [
        Alert(
            "EFDiskUsageHigh",
            "warning",
            "storage",
            f"ef_disk_used_ratio{{{D}}} > {c.DISK_USED_WARNING}",
            "A data volume is filling up.",
            disk_desc.replace("{threshold}", _pct(c.DISK_USED_WARNING)),
            (STORAGE, "disk_used"),
        ),
        Alert(
            "EFDiskUsageHigh",
            "critical",
            "storage",
            f"ef_disk_used_ratio{{{D}}} > {c.DISK_USED_CRITICAL}",
            "A data volume is almost full.",
            disk_desc.replace("{threshold}", _pct(c.DISK_USED_CRITICAL)),
            (STORAGE, "disk_used"),
        ),
        Alert(
            "EFDiskWillFillIn24h",
            "warning",
            "storage",
            f"ef_disk_used_ratio{{{D}}} > {c.DISK_FORECAST_MIN_USED}\n"
            f"and {r.DISK_FREE_FORECAST}{{{D}}} < 0",
            "A data volume is predicted to fill within 24 hours.",
            "At the rate of the last " + c.DISK_FORECAST_WINDOW + ", {{ $labels.path }} on "
            "{{ $labels.instance }} runs out of space within 24 hours (now "
            "{{ $value | humanizePercentage }} used).",
            (STORAGE, "disk_forecast"),
        ),
        Alert(
            "EFDiskExporterFailing",
            "warning",
            "storage",
            f"ef_disk_exporter_up{{{D}}} == 0",
            "The disk exporter cannot read a watched path.",
            "ef_disk_exporter at {{ $labels.instance }} failed to read at least one of its "
            "EF_DISK_PATHS: disk alerts for that path are blind.",
            (STORAGE, "disk_exporter"),
        ),
        Alert(
            "EFDatabaseLarge",
            "info",
            "storage",
            f"ef_db_size_bytes{{{B}}} > {c.DB_SIZE_MAX_BYTES}",
            "The SQLite database is large enough to plan a move to PostgreSQL.",
            "The database of {{ $labels.instance }} (file plus WAL) is {{ $value | humanize1024 }}B"
            f" (threshold {c.DB_SIZE_MAX_BYTES / 1024**3:g} GiB).",
            (STORAGE, "db_size"),
        ),
        Alert(
            "EFAudioCacheNearCap",
            "info",
            "storage",
            f"{r.CACHE_FILL_RATIO}{{{B}}} > {c.CACHE_NEAR_CAP_RATIO}",
            "The audio cache is near its size cap.",
            "The audio cache of {{ $labels.instance }} is at {{ $value | humanizePercentage }} of "
            "EF_CACHE_MAX_BYTES: the oldest audio is being evicted and hits may drop.",
            (STORAGE, "cache_size"),
        ),
    ]


def slo() -> list[Alert]:
    budget = c.SLO_ERROR_BUDGET

    def burn(pairs: tuple[tuple[str, str, float], ...]) -> str:
        clauses = []
        for long_w, short_w, factor in pairs:
            limit = round(factor * budget, 6)
            clauses.append(
                f"(\n  {r.slo_error_ratio(long_w)}{{{B}}} > {limit}\n"
                f"  and {r.slo_error_ratio(short_w)}{{{B}}} > {limit}\n)"
            )
        return "\nor\n".join(clauses)

    def text(pairs: tuple[tuple[str, str, float], ...]) -> str:
        return " or ".join(f"{f:g}x over {lw} and {sw}" for lw, sw, f in pairs)

    common = (
        "{{ $value | humanizePercentage }} of speech API requests failed over the long window "
        f"(budget {budget:.1%} for a {c.SLO_TARGET:.1%} availability SLO): burning faster than "
    )
    return [
        Alert(
            "EFSpeechErrorBudgetBurn",
            "critical",
            "slo",
            burn(c.SLO_PAGE_BURNS),
            "The speech API burns its error budget fast.",
            common + text(c.SLO_PAGE_BURNS) + ".",
            (OVERVIEW, "burn_rate"),
            labels=(("slo", "speech-availability"),),
        ),
        Alert(
            "EFSpeechErrorBudgetBurn",
            "warning",
            "slo",
            burn(c.SLO_TICKET_BURNS),
            "The speech API burns its error budget steadily.",
            common + text(c.SLO_TICKET_BURNS) + ".",
            (OVERVIEW, "burn_rate"),
            labels=(("slo", "speech-availability"),),
        ),
    ]


def meta() -> list[Alert]:
    missing = " or ".join(
        f'up{{job="{job}"}} == 0 or absent(up{{job="{job}"}})' for job in c.SUPPORT_JOBS
    )
    return [
        Alert(
            "Watchdog",
            "info",
            "meta",
            "vector(1)",
            "The alerting pipeline works.",
            "Always firing, on purpose: Alertmanager sends it to the heartbeat receiver. If the "
            "heartbeat stops, Prometheus, its rules or Alertmanager are broken ({{ $value }}).",
            (OVERVIEW, "alerts"),
        ),
        Alert(
            "EFTargetMissing",
            "warning",
            "meta",
            missing,
            "A monitoring scrape target is down or missing.",
            "Prometheus cannot scrape job {{ $labels.job }}{{ with $labels.instance }} at {{ . }}"
            "{{ else }} (no target is configured){{ end }}.",
            (OVERVIEW, "targets"),
        ),
        Alert(
            "EFAlertmanagerNotificationsFailing",
            "warning",
            "meta",
            "sum by (job, instance, integration) "
            '(increase(alertmanager_notifications_failed_total{job="alertmanager"}[5m])) > 0',
            "Alertmanager fails to send notifications.",
            "Alertmanager at {{ $labels.instance }} failed to send {{ $value | humanize }} "
            "{{ $labels.integration }} notifications over the last 5 minutes: alerts may not "
            "reach anyone.",
            (OVERVIEW, "notifications"),
        ),
    ]


#: Output file (under alerts/) -> group name -> alerts.
FILES: dict[str, tuple[str, Any]] = {
    "ef-backend.rules.yml": ("ef_backend.alerts", backend),
    "ef-speech.rules.yml": ("ef_speech.alerts", speech),
    "ef-tts.rules.yml": ("ef_tts.alerts", tts),
    "ef-storage.rules.yml": ("ef_storage.alerts", storage),
    "ef-slo.rules.yml": ("ef_slo.alerts", slo),
    "ef-meta.rules.yml": ("ef_meta.alerts", meta),
}


def all_alerts() -> list[Alert]:
    return [alert for _, build in FILES.values() for alert in build()]
