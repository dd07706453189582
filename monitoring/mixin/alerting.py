"""Every EchoForge alert: one file per component under ``alerts/``.

Each alert has a ``for:``, a ``severity`` (critical pages now, warning is grouped, info goes to a
digest), a ``component`` (the inhibitions in alertmanager.yml use it), a static ``summary``, a
``description`` templated with the values, a ``runbook_url`` and a ``dashboard_url`` that opens
the panel showing the same series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitoring.mixin import config as c
from monitoring.mixin import dashboards as d
from monitoring.mixin import recording as r


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
            "runbook_url": f"{runbook_base()}/alerts/{self.name}.md",
            "dashboard_url": f"{grafana_base()}/d/{board.uid}/{board.slug}?viewPanel={panel.id}",
        }
        return rule


def runbook_base() -> str:
    """The runbooks folder, from the external label that .env sets (EF_RUNBOOKS_URL)."""
    return f"{{{{ $externalLabels.{c.RUNBOOKS_URL_LABEL} }}}}"


def grafana_base() -> str:
    """Grafana's root URL, from the external label that .env sets (EF_GRAFANA_URL)."""
    return f"{{{{ $externalLabels.{c.GRAFANA_URL_LABEL} }}}}"


_DASHBOARDS = {board.uid: board for board in d.all_dashboards()}
OVERVIEW, SPEECH, STORAGE, SLO = "ef-overview", "ef-speech", "ef-storage", "ef-slo"


def _down_or_absent(job: str) -> str:
    """Down (the scrape fails) or absent (no such target: Prometheus is blind to it)."""
    return f'up{{job="{job}"}} == 0 or absent(up{{job="{job}"}})'


def _pct(x: float) -> str:
    return f"{x:.0%}"


def backend() -> list[Alert]:
    sel = c.BACKEND
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
            f'label_replace(ef_db_up{{{sel}}} == 0, "check", "database", "", "")\n'
            f'or label_replace(ef_audio_cache_writable{{{sel}}} == 0, "check", "cache", "", "")\n'
            f"or (\n"
            f'  label_replace(ef_tts_engine_up{{{sel}}} == 0, "check", "engine", "", "")\n'
            f"  unless on () (\n{_indent(r.tts_loading_in_time(), 4)}\n  )\n)",
            "The EchoForge backend is not ready.",
            "ef_backend at {{ $labels.instance }} answers but its {{ $labels.check }} check has "
            "failed for 5 minutes: /health/ready says 503 and speech requests fail.",
            (OVERVIEW, "ready"),
        ),
        Alert(
            "EFBackendHigh5xxRatio",
            "warning",
            "backend",
            f"{r.HTTP_USER_ERROR_RATIO}{{{sel}}} > {c.HTTP_ERROR_RATIO_MAX}\n"
            f"and {r.HTTP_USER_RATE}{{{sel}}} > {c.HTTP_MIN_RPS}",
            "The backend answers many API requests with a server error.",
            "{{ $value | humanizePercentage }} of the API requests to ef_backend were answered "
            f"5xx over the last 5 minutes (threshold {_pct(c.HTTP_ERROR_RATIO_MAX)}; scrapes "
            "and health probes not counted).",
            (OVERVIEW, "error_ratio"),
        ),
    ]


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _rtf_over_limit() -> str:
    """The p50 real-time factor of each engine above that engine's own limit."""
    rule = f"{r.ENGINE_RTF_P50}{{{c.TTS}"
    clauses = [
        f'{rule},engine="{engine}"}} > {limit:g}'
        for engine, limit in sorted(c.REALTIME_FACTOR_MAX.items())
    ]
    others = "|".join(sorted(c.REALTIME_FACTOR_MAX))
    clauses.append(f'{rule},engine!~"{others}"}} > {c.REALTIME_FACTOR_MAX_DEFAULT:g}')
    return "\nor ".join(clauses)


def speech() -> list[Alert]:
    sel = c.BACKEND
    limits = ", ".join(f"{e} {v:g}" for e, v in sorted(c.REALTIME_FACTOR_MAX.items()))
    return [
        Alert(
            "EFSpeechLatencyHigh",
            "warning",
            "speech",
            _rtf_over_limit(),
            "Speech synthesis is slower than normal for its engine.",
            'The {{ $labels.engine }} engine needs {{ $value | printf "%.2f" }} s of compute '
            "per second of audio (p50 over 5 minutes), above what is normal for it "
            f"({limits}, others {c.REALTIME_FACTOR_MAX_DEFAULT:g}).",
            (SPEECH, "realtime_factor"),
        ),
        Alert(
            "EFTTSFailureRatioHigh",
            "warning",
            "speech",
            f"{r.ENGINE_FAILURE_RATIO}{{{sel}}} > {c.FAILURE_RATIO_MAX}\n"
            f"and on (job) {r.ENGINE_CALLS}{{{sel}}} > {c.FAILURE_MIN_CALLS_PER_S}",
            "Many engine calls fail.",
            "{{ $value | humanizePercentage }} of the engine calls failed (timeouts, engine "
            "errors and unreachable together; refused text not counted) over the last 5 minutes "
            f"(threshold {_pct(c.FAILURE_RATIO_MAX)}).",
            (SPEECH, "failure_ratio"),
        ),
        Alert(
            "EFQueueStalled",
            "warning",
            "speech",
            f"max_over_time(ef_tts_queue_oldest_age_seconds{{{sel}}}[5m]) > "
            f"{c.QUEUE_OLDEST_AGE_MAX_S}",
            "Speech jobs wait too long in the queue.",
            "The oldest job queued on {{ $labels.instance }} has waited "
            "{{ $value | humanizeDuration }} for a worker (threshold "
            f"{c.QUEUE_OLDEST_AGE_MAX_S // 60} minutes): the workers are stuck or far behind.",
            (SPEECH, "queue_wait"),
        ),
        Alert(
            "EFQueueFull",
            "warning",
            "speech",
            f"sum by (job, instance) (increase(ef_tts_queue_rejected_total{{{sel}}}[5m])) > 0",
            "Speech requests are turned away because the queue is full.",
            "{{ $value | humanize }} speech requests to {{ $labels.instance }} got 503 in the "
            "last 5 minutes because EF_QUEUE_MAX jobs were already waiting.",
            (SPEECH, "queue_rejected"),
        ),
        Alert(
            "EFWyomingListenerDown",
            "warning",
            "backend",
            f"max_over_time(ef_wyoming_listener_up{{{sel}}}[5m]) == 0",
            "The Wyoming listener (Home Assistant) is down.",
            "ef_backend at {{ $labels.instance }} has not been able to listen on "
            "{{ $labels.address }} for 5 minutes: Home Assistant cannot speak through "
            "EchoForge; the HTTP API still works.",
            (SPEECH, "wyoming_up"),
        ),
    ]


def tts() -> list[Alert]:
    tts_sel = c.TTS
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
            f"ef_tts_engine_model_load_failed{{{tts_sel}}} == 1",
            "The speech engine failed to load its model.",
            "ef_tts at {{ $labels.instance }} could not load model {{ $labels.model }} "
            "({{ $labels.engine }}); /health on ef_tts gives the reason.",
            (SPEECH, "engine_up"),
        ),
        Alert(
            "EFTTSNotReady",
            "critical",
            "tts",
            f"(\n  ef_tts_engine_model_loaded{{{tts_sel}}} == 0\n"
            f"  and ef_tts_engine_model_load_failed{{{tts_sel}}} == 0\n)\n"
            f"unless on (job, instance) (\n{_indent(r.tts_loading_in_time(), 2)}\n)",
            "The speech engine has no model loaded.",
            "ef_tts at {{ $labels.instance }} is still loading model {{ $labels.model }} "
            "({{ $labels.engine }}) after its configured load time (EF_TTS_MODEL_LOAD_MAX_S).",
            (SPEECH, "engine_up"),
        ),
        Alert(
            "EFTTSMemoryHigh",
            "warning",
            "tts",
            f"{r.TTS_MEMORY_RATIO}{{{tts_sel}}} > {c.TTS_MEMORY_RATIO_MAX}",
            "The speech engine uses almost all of its memory limit.",
            "ef_tts at {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its "
            f"memory limit (threshold {_pct(c.TTS_MEMORY_RATIO_MAX)}): the kernel kills it at "
            "100 %.",
            (SPEECH, "tts_memory"),
        ),
    ]


def processes() -> list[Alert]:
    jobs = "|".join(c.SERVICE_JOBS)
    return [
        Alert(
            "EFCrashLooping",
            "warning",
            "process",
            f'changes(process_start_time_seconds{{job=~"{jobs}"}}[{c.CRASH_LOOP_WINDOW}]) '
            f">= {c.CRASH_LOOP_RESTARTS}",
            "A service keeps restarting.",
            "{{ $labels.job }} at {{ $labels.instance }} started {{ $value }} times in the last "
            f"{c.CRASH_LOOP_WINDOW}: it crashes or is killed (memory) and is restarted.",
            (OVERVIEW, "restarts"),
        ),
    ]


def probes() -> list[Alert]:
    return [
        Alert(
            "EFProbeFailed",
            "critical",
            "probe",
            f"max_over_time(probe_success{{{c.PROBES}}}[2m]) == 0",
            "A request through ef_proxy, as users make it, fails.",
            "The blackbox probe {{ $labels.job }} of {{ $labels.instance }} has failed for "
            f"{c.PROBE_FAILING_FOR}: what users reach through ef_proxy does not work.",
            (OVERVIEW, "probes"),
        ),
    ]


def storage() -> list[Alert]:
    disk = c.DISK
    sel = c.BACKEND
    disk_desc = (
        "{{ $labels.path }} on {{ $labels.instance }} is {{ $value | humanizePercentage }} full "
        "(threshold {threshold})."
    )
    return [
        Alert(
            "EFDiskUsageHigh",
            "warning",
            "storage",
            f"ef_disk_used_ratio{{{disk}}} > {c.DISK_USED_WARNING}",
            "A data volume is filling up.",
            disk_desc.replace("{threshold}", _pct(c.DISK_USED_WARNING)),
            (STORAGE, "disk_used"),
        ),
        Alert(
            "EFDiskUsageHigh",
            "critical",
            "storage",
            f"ef_disk_used_ratio{{{disk}}} > {c.DISK_USED_CRITICAL}",
            "A data volume is almost full.",
            disk_desc.replace("{threshold}", _pct(c.DISK_USED_CRITICAL)),
            (STORAGE, "disk_used"),
        ),
        Alert(
            "EFDiskInodesLow",
            "warning",
            "storage",
            f"{r.INODES_USED_RATIO}{{{disk}}} > {c.INODES_USED_WARNING}",
            "A data volume is running out of inodes.",
            "{{ $labels.path }} on {{ $labels.instance }} has used "
            "{{ $value | humanizePercentage }} of its inodes (threshold "
            f"{_pct(c.INODES_USED_WARNING)}): new files fail although space is left.",
            (STORAGE, "inodes"),
        ),
        Alert(
            "EFDiskWillFillIn24h",
            "warning",
            "storage",
            f"ef_disk_used_ratio{{{disk}}} > {c.DISK_FORECAST_MIN_USED}\n"
            f"and {r.DISK_FREE_FORECAST}{{{disk}}} < 0",
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
            f"ef_disk_exporter_up{{{disk}}} == 0",
            "The disk exporter cannot read a watched path.",
            "ef_disk_exporter at {{ $labels.instance }} failed to read at least one of its "
            "EF_DISK_PATHS: disk alerts for that path are blind.",
            (STORAGE, "disk_exporter"),
        ),
        Alert(
            "EFDatabaseLarge",
            "info",
            "storage",
            f"ef_db_size_bytes{{{sel}}} > {c.DB_SIZE_MAX_BYTES}",
            "The SQLite database is large enough to plan a move to PostgreSQL.",
            "The database of {{ $labels.instance }} (file plus WAL) is {{ $value | humanize1024 }}B"
            f" (threshold {c.DB_SIZE_MAX_BYTES / 1024**3:g} GiB).",
            (STORAGE, "db_size"),
        ),
        Alert(
            "EFAudioCacheChurn",
            "info",
            "storage",
            f"{r.CACHE_CHURN_1D}{{{sel}}} > {c.CACHE_CHURN_MAX_PER_DAY:g}\n"
            f"and on (job) {r.CACHE_HIT_RATIO_1D}{{{sel}}} < {c.CACHE_HIT_RATIO_MIN}",
            "The audio cache is too small for the audio asked for.",
            "The audio cache of {{ $labels.job }} evicted {{ $value | humanize }} times its "
            "own entries over the last day while fewer than "
            f"{_pct(c.CACHE_HIT_RATIO_MIN)} of lookups hit: audio is evicted before it is asked "
            "for again; raise EF_CACHE_MAX_BYTES.",
            (STORAGE, "cache_churn"),
        ),
    ]


def slo() -> list[Alert]:
    sel = c.BACKEND

    def burn(
        pairs: tuple[tuple[str, str, float], ...],
        budget: float,
        ratio: Callable[[str], str],
        events: Callable[[str], str],
    ) -> str:
        clauses = []
        for long_w, short_w, share in pairs:
            limit = round(c.burn_factor(long_w, share) * budget, 6)
            clauses.append(
                f"(\n  {ratio(long_w)}{{{sel}}} > {limit}\n"
                f"  and {ratio(short_w)}{{{sel}}} > {limit}\n"
                f"  and on (job) {events(long_w)}{{{sel}}} >= {c.SLO_MIN_EVENTS}\n)"
            )
        return "\nor\n".join(clauses)

    def text(pairs: tuple[tuple[str, str, float], ...]) -> str:
        return " or ".join(
            f"{c.burn_factor(lw, share):g}x over {lw} and {sw}" for lw, sw, share in pairs
        )

    budget = c.SLO_ERROR_BUDGET
    common = (
        "{{ $value | humanizePercentage }} of speech requests and jobs failed over the long "
        f"window (budget {budget:.1%} over {c.SLO_WINDOW} for a {c.SLO_TARGET:.1%} "
        "availability SLO): burning faster than "
    )
    latency = c.SLO_LATENCY_BUDGET
    return [
        Alert(
            "EFSpeechErrorBudgetBurn",
            "critical",
            "slo",
            burn(c.SLO_PAGE_BURNS, budget, r.slo_error_ratio, r.slo_events),
            "The speech API burns its error budget fast.",
            common + text(c.SLO_PAGE_BURNS) + ".",
            (SLO, "burn_rate"),
            labels=(("slo", "speech-availability"),),
        ),
        Alert(
            "EFSpeechErrorBudgetBurn",
            "warning",
            "slo",
            burn(c.SLO_TICKET_BURNS, budget, r.slo_error_ratio, r.slo_events),
            "The speech API burns its error budget steadily.",
            common + text(c.SLO_TICKET_BURNS) + ".",
            (SLO, "burn_rate"),
            labels=(("slo", "speech-availability"),),
        ),
        Alert(
            "EFSpeechLatencyBudgetBurn",
            "warning",
            "slo",
            burn(c.SLO_TICKET_BURNS, latency, r.slo_slow_ratio, r.slo_latency_events),
            "Too many speech requests miss the latency objective.",
            "{{ $value | humanizePercentage }} of speech requests took longer than "
            f"{c.SPEECH_LATENCY_OBJECTIVE_S:g} s over the long window (objective: "
            f"{c.SLO_LATENCY_TARGET:.0%} within it, over {c.SLO_WINDOW}): burning faster than "
            + text(c.SLO_TICKET_BURNS)
            + ".",
            (SLO, "latency_burn"),
            labels=(("slo", "speech-latency"),),
        ),
    ]


def meta() -> list[Alert]:
    missing = " or ".join(_down_or_absent(job) for job in c.SUPPORT_JOBS)
    prom = c.PROMETHEUS
    am = c.ALERTMANAGER
    return [
        Alert(
            "Watchdog",
            "info",
            "meta",
            "vector(1)",
            "The alerting pipeline works.",
            "Always firing, on purpose: Alertmanager sends it to the ping URL of the dead man's "
            "switch. If the pings stop, Prometheus, its rules or Alertmanager are broken "
            "({{ $value }}).",
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
        # The watchers watched: the alerts of the upstream prometheus-mixin and
        # alertmanager-mixin (documentation/prometheus-mixin, doc/alertmanager-mixin) that fit
        # one host, with their expressions, durations and severities.
        Alert(
            "PrometheusBadConfig",
            "critical",
            "meta",
            f"max_over_time(prometheus_config_last_reload_successful{{{prom}}}[5m]) == 0",
            "Failed Prometheus configuration reload.",
            "Prometheus {{ $labels.instance }} has failed to reload its configuration: it runs "
            "the previous one ({{ $value }}).",
            (OVERVIEW, "config_reload"),
        ),
        Alert(
            "PrometheusRuleFailures",
            "critical",
            "meta",
            f"increase(prometheus_rule_evaluation_failures_total{{{prom}}}[5m]) > 0",
            "Prometheus is failing rule evaluations.",
            'Prometheus {{ $labels.instance }} has failed to evaluate {{ printf "%.0f" $value }} '
            "rules of group {{ $labels.rule_group }} in the last 5m: those alerts are blind.",
            (OVERVIEW, "rule_failures"),
        ),
        Alert(
            "PrometheusErrorSendingAlertsToSomeAlertmanagers",
            "warning",
            "meta",
            f"(\n  rate(prometheus_notifications_errors_total{{{prom}}}[5m])\n"
            f"/\n  rate(prometheus_notifications_sent_total{{{prom}}}[5m])\n)\n* 100\n> 1",
            "More than 1% of alerts sent by Prometheus to a specific Alertmanager were affected "
            "by errors.",
            '{{ printf "%.1f" $value }}% of alerts sent by Prometheus {{ $labels.instance }} to '
            "Alertmanager {{ $labels.alertmanager }} were affected by errors.",
            (OVERVIEW, "alert_delivery"),
        ),
        Alert(
            "PrometheusNotConnectedToAlertmanagers",
            "warning",
            "meta",
            f"max_over_time(prometheus_notifications_alertmanagers_discovered{{{prom}}}[5m]) < 1",
            "Prometheus is not connected to any Alertmanagers.",
            "Prometheus {{ $labels.instance }} has discovered {{ $value }} Alertmanagers: no "
            "alert leaves it.",
            (OVERVIEW, "alert_delivery"),
        ),
        Alert(
            "AlertmanagerFailedReload",
            "critical",
            "meta",
            f"max_over_time(alertmanager_config_last_reload_successful{{{am}}}[5m]) == 0",
            "Reloading an Alertmanager configuration has failed.",
            "Configuration has failed to load for Alertmanager {{ $labels.instance }}: it runs "
            "the previous one ({{ $value }}).",
            (OVERVIEW, "config_reload"),
        ),
        Alert(
            "AlertmanagerFailedToSendAlerts",
            "warning",
            "meta",
            f"(\n  rate(alertmanager_notifications_failed_total{{{am}}}[15m])\n"
            f"/\n  ignoring (reason) group_left "
            f"rate(alertmanager_notifications_total{{{am}}}[15m])\n)\n> 0.01",
            "An Alertmanager instance failed to send notifications.",
            "Alertmanager {{ $labels.instance }} failed to send "
            "{{ $value | humanizePercentage }} of notifications to {{ $labels.integration }}: "
            "alerts may not reach anyone. This one goes to the second channel.",
            (OVERVIEW, "notifications"),
        ),
    ]


#: Output file (under alerts/) -> group name -> alerts.
FILES: dict[str, tuple[str, Callable[[], list[Alert]]]] = {
    "ef-backend.rules.yml": ("ef_backend.alerts", backend),
    "ef-speech.rules.yml": ("ef_speech.alerts", speech),
    "ef-tts.rules.yml": ("ef_tts.alerts", tts),
    "ef-process.rules.yml": ("ef_process.alerts", processes),
    "ef-probe.rules.yml": ("ef_probe.alerts", probes),
    "ef-storage.rules.yml": ("ef_storage.alerts", storage),
    "ef-slo.rules.yml": ("ef_slo.alerts", slo),
    "ef-meta.rules.yml": ("ef_meta.alerts", meta),
}


def all_alerts() -> list[Alert]:
    return [alert for _, build in FILES.values() for alert in build()]
