"""Alertmanager configuration: amtool checks and routes, and inhibitions in a real Alertmanager."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.monitoring.support import (
    ALERTMANAGER_YML,
    AMTOOL,
    RENDER_SH,
    SmtpSink,
    alertmanager_for_test,
    iter_alert_names,
    load_yaml,
    start_alertmanager,
    wait_for,
)
from tests.utils.procs import Server, free_port


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_check_config() -> None:
    result = _amtool("check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 1 templates" in result.stdout  # the email template is found and parses


def test_render_fills_the_webhook_urls_from_the_environment(tmp_path: Path) -> None:
    """render.sh (the container's entrypoint) puts EF_WATCHDOG_PING_URL and EF_ALERT_WEBHOOK_URL
    into a copy that amtool accepts; the versioned file keeps its placeholders."""
    ping = "https://hc-ping.example/abc-123?x=1&y=2"
    hook = "https://ntfy.example/echoforge|alerts"
    result = subprocess.run(
        ["sh", str(RENDER_SH), "--ignored-flag"],
        env={
            "PATH": "/usr/bin:/bin",
            "EF_ALERTMANAGER_SOURCE": str(ALERTMANAGER_YML),
            "EF_ALERTMANAGER_RENDERED": str(tmp_path / "out"),
            "ALERTMANAGER_BIN": "true",
            "EF_WATCHDOG_PING_URL": ping,
            "EF_ALERT_WEBHOOK_URL": hook,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    rendered = load_yaml(tmp_path / "out" / "alertmanager.yml")
    receivers = {r["name"]: r for r in rendered["receivers"]}
    assert receivers["heartbeat"]["webhook_configs"][0]["url"] == ping
    assert receivers["second-channel"]["webhook_configs"][0]["url"] == hook
    assert (tmp_path / "out" / "alertmanager.yml").stat().st_mode & 0o077 == 0  # tokens inside
    check = _amtool("check-config", str(tmp_path / "out" / "alertmanager.yml"))
    assert check.returncode == 0 and " - 1 templates" in check.stdout, check.stdout + check.stderr
    assert ".invalid/" in ALERTMANAGER_YML.read_text()


def test_smtp_password_comes_from_a_file() -> None:
    config = load_yaml(ALERTMANAGER_YML)
    assert config["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_password"
    assert "smtp_auth_password" not in config["global"]
    assert config["global"]["smtp_require_tls"] is True


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=EFBackendDown", "severity=critical", "job=ef_backend"], "email-critical"),
        (["alertname=EFDiskUsageHigh", "severity=warning", "path=/data"], "email-warning"),
        (["alertname=EFDatabaseLarge", "severity=info"], "email-digest"),
        (["alertname=Watchdog", "severity=info"], "heartbeat"),
        (["alertname=SomethingNew"], "email-warning"),  # no severity: not lost
        # Failing notifications go to the second channel, and to email as well (continue).
        (
            ["alertname=AlertmanagerFailedToSendAlerts", "severity=warning", "integration=email"],
            "second-channel,email-warning",
        ),
        (
            ["alertname=AlertmanagerFailedReload", "severity=critical"],
            "second-channel,email-critical",
        ),
    ],
    ids=["critical", "warning", "info", "watchdog", "no-severity", "notify-failing", "am-reload"],
)
def test_route(labels: list[str], receiver: str) -> None:
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_route_test_can_fail() -> None:
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        "--verify.receivers=email-digest",
        "alertname=EFBackendDown",
        "severity=critical",
    )
    assert result.returncode != 0


def test_inhibitions_name_real_alerts() -> None:
    names = set(iter_alert_names())
    for rule in load_yaml(ALERTMANAGER_YML)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if matcher.startswith("alertname="):
                value = matcher.split("=", 1)[1].strip('"~')
                for name in value.split("|"):
                    assert name in names, name


# ---------------------------------------------------------------- a real Alertmanager


def _running_alertmanager(workdir: Path) -> Iterator[Server]:
    """A real Alertmanager with the versioned configuration and an SMTP server behind it."""
    smtp = SmtpSink().start()
    password = workdir / "smtp_password"
    password.write_text(smtp.password)  # no newline: Alertmanager sends the file as is
    server = start_alertmanager(workdir, alertmanager_for_test(smtp, password), port=free_port())
    try:
        yield server
    finally:
        server.stop()
        smtp.stop()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _running_alertmanager(tmp_path_factory.mktemp("alertmanager"))


def _post(server: Server, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": "test.", "description": "test"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
        for labels in alerts
    ]
    response = httpx.post(f"{server.url}/api/v2/alerts", json=body, timeout=10)
    assert response.status_code == 200, response.text


def _inhibited(server: Server) -> dict[tuple[str, ...], bool]:
    alerts: list[dict[str, Any]] = httpx.get(f"{server.url}/api/v2/alerts", timeout=10).json()
    return {
        tuple(sorted(f"{k}={v}" for k, v in a["labels"].items())): bool(a["status"]["inhibitedBy"])
        for a in alerts
    }


def _key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(sorted(f"{k}={v}" for k, v in labels.items()))


@pytest.mark.server
def test_inhibitions_in_a_real_alertmanager(alertmanager: Server) -> None:
    critical_burn = {
        "alertname": "EFSpeechErrorBudgetBurn",
        "severity": "critical",
        "component": "slo",
        "job": "ef_backend",
    }
    warning_burn = {**critical_burn, "severity": "warning"}
    backend_down = {
        "alertname": "EFBackendDown",
        "severity": "critical",
        "component": "backend",
        "job": "ef_backend",
        "instance": "b:8000",
    }
    errors_5xx = {
        "alertname": "EFBackendHigh5xxRatio",
        "severity": "warning",
        "component": "backend",
        "job": "ef_backend",
    }
    tts_down = {
        "alertname": "EFTTSDown",
        "severity": "critical",
        "component": "tts",
        "job": "ef_tts",
        "instance": "t:5002",
    }
    slow = {
        "alertname": "EFSpeechLatencyHigh",
        "severity": "warning",
        "component": "speech",
        "job": "ef_backend",
    }
    engine_check = {
        "alertname": "EFBackendNotReady",
        "severity": "critical",
        "component": "backend",
        "job": "ef_backend",
        "instance": "b:8000",
        "check": "engine",
    }
    db_check = {**engine_check, "check": "database"}
    disk_warning = {
        "alertname": "EFDiskUsageHigh",
        "severity": "warning",
        "component": "storage",
        "job": "ef_disk_exporter",
        "instance": "d:9105",
        "path": "/data",
    }
    disk_critical_other_path = {**disk_warning, "severity": "critical", "path": "/models"}

    # Without EFBackendDown first: otherwise it would inhibit every ef_backend alert.
    _post(
        alertmanager,
        [
            critical_burn,
            warning_burn,
            tts_down,
            slow,
            engine_check,
            disk_warning,
            disk_critical_other_path,
        ],
    )
    expected = {
        _key(critical_burn): True,  # the engine is down: the SLO burn follows (one page)
        _key(warning_burn): True,  # critical silences the warning of the same alert
        _key(tts_down): False,
        _key(slow): True,  # the engine is down: slow speech follows
        _key(engine_check): True,  # ... and so does the backend's engine check
        _key(disk_warning): False,  # a critical on another path does not silence it
        _key(disk_critical_other_path): False,
    }
    wait_for(
        lambda: _inhibited(alertmanager) == expected, timeout=30, what="inhibition of the first set"
    )

    _post(alertmanager, [backend_down, errors_5xx, db_check])

    def second() -> bool:
        state = _inhibited(alertmanager)
        return (
            state.get(_key(backend_down)) is False
            and state.get(_key(errors_5xx)) is True  # backend down: its errors are no news
            and state.get(_key(db_check)) is True
            and state.get(_key(critical_burn)) is True  # measured through the backend too
            and state.get(_key(disk_warning)) is False  # not through the backend
        )

    wait_for(second, timeout=30, what="inhibition by EFBackendDown")


@pytest.fixture
def fresh_alertmanager(tmp_path: Path) -> Iterator[Server]:
    """One of its own: the module's Alertmanager holds alerts that would inhibit these."""
    yield from _running_alertmanager(tmp_path)


@pytest.mark.server
def test_one_cause_one_page(fresh_alertmanager: Server) -> None:
    """ef_tts down: its own page, and nothing else that follows from it (the SLO page, the 5xx
    warning, the backend's engine check, the failing probes, its restarts)."""
    backend = {"job": "ef_backend", "instance": "b:8000"}
    tts_down = {"alertname": "EFTTSDown", "severity": "critical", "component": "tts",
                "job": "ef_tts", "instance": "t:5002"}  # fmt: skip
    consequences = [
        {"alertname": "EFSpeechErrorBudgetBurn", "severity": "critical", "component": "slo",
         "slo": "speech-availability", "job": "ef_backend"},
        {"alertname": "EFBackendHigh5xxRatio", "severity": "warning", "component": "backend",
         "job": "ef_backend"},
        {"alertname": "EFBackendNotReady", "severity": "critical", "component": "backend",
         "check": "engine", **backend},
        {"alertname": "EFProbeFailed", "severity": "critical", "component": "probe",
         "job": "probe_speech", "instance": "http://172.30.53.2:8080/api/v1/speech"},
        {"alertname": "EFCrashLooping", "severity": "warning", "component": "process",
         "job": "ef_tts", "instance": "t:5002"},
    ]  # fmt: skip
    unrelated = {"alertname": "EFCrashLooping", "severity": "warning", "component": "process",
                 "job": "ef_disk_exporter", "instance": "d:9105"}  # fmt: skip
    _post(fresh_alertmanager, [tts_down, *consequences, unrelated])
    expected = {_key(tts_down): False, _key(unrelated): False}
    expected |= {_key(alert): True for alert in consequences}
    wait_for(
        lambda: _inhibited(fresh_alertmanager) == expected,
        timeout=30,
        what="only EFTTSDown left to page",
    )


@pytest.mark.server
def test_the_slo_page_holds_back_the_5xx_warning(fresh_alertmanager: Server) -> None:
    burn = {"alertname": "EFSpeechErrorBudgetBurn", "severity": "critical", "component": "slo",
            "slo": "speech-availability", "job": "ef_backend"}  # fmt: skip
    errors = {"alertname": "EFBackendHigh5xxRatio", "severity": "warning", "component": "backend",
              "job": "ef_backend"}  # fmt: skip
    _post(fresh_alertmanager, [burn, errors])
    wait_for(
        lambda: _inhibited(fresh_alertmanager) == {_key(burn): False, _key(errors): True},
        timeout=30,
        what="the 5xx warning held back by the SLO page",
    )
