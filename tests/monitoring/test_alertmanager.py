"""Alertmanager configuration: amtool checks and routes, and inhibitions in a real Alertmanager."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.monitoring.support import (
    ALERTMANAGER_YML,
    AMTOOL,
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
    ],
    ids=["critical", "warning", "info", "watchdog", "no-severity"],
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


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("alertmanager")
    smtp = SmtpSink().start()
    password = workdir / "smtp_password"
    password.write_text(smtp.password)  # no newline: Alertmanager sends the file as is
    server = start_alertmanager(workdir, alertmanager_for_test(smtp, password), port=free_port())
    try:
        yield server
    finally:
        server.stop()
        smtp.stop()


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
        _key(critical_burn): False,
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
