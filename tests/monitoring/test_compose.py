"""docker-compose.monitoring.yml and the disk exporter's Dockerfile (no Docker engine here:
the compose-spec schema, hadolint and the references between the files are what can be checked).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.support import PROMETHEUS_YML, load_yaml
from tests.utils.procs import REPO

COMPOSE = REPO / "docker-compose.monitoring.yml"
MAIN_COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "monitoring" / "disk-exporter" / "Dockerfile"
BIN = Path(sys.executable).parent
SERVICES: dict[str, Any] = load_yaml(COMPOSE)["services"]


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [BIN / "hadolint", DOCKERFILE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0")), users
    assert "HEALTHCHECK" in text


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_is_hardened(name: str) -> None:
    service = SERVICES[name]
    image = service["image"]
    if "build" not in service:  # pulled images: pinned to a version, never latest
        assert re.search(r":v?\d+\.\d+\.\d+$", image), image
    user = str(service.get("user", ""))
    assert user and not user.startswith(("0:", "root")) and user != "0", f"{name} runs as root"
    assert service["read_only"] is True
    assert "ALL" in service["cap_drop"]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["networks"] == ["ef_net"]
    assert set(service["profiles"]) & {"monitoring", "traces"}
    for port in service.get("ports", []):
        # Their own bind setting: opening the proxy to the LAN does not open the monitoring.
        assert port.startswith("${EF_MONITORING_BIND:-127.0.0.1}:"), f"{name}: {port}"


def test_monitoring_profile_and_optional_traces() -> None:
    profiles = {name: s["profiles"] for name, s in SERVICES.items()}
    assert profiles == {
        "ef_prometheus": ["monitoring"],
        "ef_alertmanager": ["monitoring"],
        "ef_grafana": ["monitoring"],
        "ef_disk_exporter": ["monitoring"],
        "ef_blackbox": ["monitoring"],
        "ef_traces": ["traces"],
    }


def test_prometheus_flags_and_data() -> None:
    prometheus = SERVICES["ef_prometheus"]
    flags = prometheus["command"]
    assert "--storage.tsdb.retention.time=7d" in flags
    assert any(f.startswith("--storage.tsdb.retention.size=") for f in flags)
    assert "--enable-feature=expand-external-labels" in flags
    assert "--enable-feature=exemplar-storage" in flags
    # No lifecycle API (/-/quit, /-/reload); the UI and API ask for a login.
    assert "--web.enable-lifecycle" not in flags
    assert "--web.config.file=/run/secrets/monitoring_web_config" in flags
    assert (
        "--web.config.file=/run/secrets/monitoring_web_config"
        in SERVICES["ef_alertmanager"]["command"]
    )
    assert "ef_prometheus_data:/prometheus" in prometheus["volumes"]
    # The config path in the container mirrors the repository, so relative rule paths hold.
    assert "--config.file=/etc/ef/monitoring/prometheus/prometheus.yml" in flags
    assert "./alerts:/etc/ef/alerts:ro" in prometheus["volumes"]


def test_secrets_are_files_not_values() -> None:
    assert SERVICES["ef_alertmanager"]["secrets"] == [
        "smtp_password",
        "monitoring_web_config",
        "monitoring_password",
    ]
    grafana = SERVICES["ef_grafana"]
    assert (
        grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
        == "/run/secrets/grafana_admin_password"
    )
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert SERVICES["ef_blackbox"]["secrets"] == ["probe_api_key"]
    secrets = load_yaml(COMPOSE)["secrets"]
    assert set(secrets) == {
        "smtp_password",
        "grafana_admin_password",
        "probe_api_key",
        "monitoring_web_config",
        "monitoring_password",
    }
    assert all("file" in s for s in secrets.values())


def test_disk_exporter_is_a_read_only_sidecar_of_the_data_volume() -> None:
    exporter = SERVICES["ef_disk_exporter"]
    assert "ef_data:/data:ro" in exporter["volumes"]
    assert exporter["environment"]["EF_DISK_PATHS"].split(",")[0] == "/data"
    assert "ports" not in exporter


def test_scrape_targets_are_the_compose_services() -> None:
    """Prometheus scrapes the services by their compose names and ports (both files)."""
    main = load_yaml(MAIN_COMPOSE)["services"] if MAIN_COMPOSE.exists() else {}
    known = {
        "ef_backend": 8000,
        "ef_tts": 5002,
        "ef_disk_exporter": 9105,
        "ef_alertmanager": 9093,
        "ef_blackbox": 9115,
        "ef_proxy": 8080,
    }
    fixed = {
        address: name
        for name, service in main.items()
        if isinstance(networks := service.get("networks"), dict)
        for network in networks.values()
        if isinstance(network, dict) and (address := network.get("ipv4_address"))
    }
    for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]:
        targets = list(job["static_configs"][0]["targets"])
        for relabel in job.get("relabel_configs", []):  # probes: the exporter, then the URL
            if relabel.get("target_label") == "__address__":
                targets.append(relabel["replacement"])
                targets = [
                    t.split("//", 1)[1].split("/", 1)[0] if "//" in t else t for t in targets
                ]
        for target in targets:
            host, port = target.split(":")
            if host == "localhost":
                continue
            host = fixed.get(host, host)  # ef_proxy by its fixed address (host allow-list)
            assert known[host] == int(port), target
            assert host in SERVICES or host in main, f"{target}: no such compose service"


def test_links_and_webhooks_come_from_env() -> None:
    """The operator sets the base URLs and webhooks once, in .env."""
    prometheus = SERVICES["ef_prometheus"]["environment"]
    assert prometheus["EF_GRAFANA_URL"].startswith("${EF_GRAFANA_URL:-")
    assert prometheus["EF_RUNBOOKS_URL"].startswith("${EF_RUNBOOKS_URL:-")
    external = load_yaml(PROMETHEUS_YML)["global"]["external_labels"]
    assert external["ef_grafana_url"] == "${EF_GRAFANA_URL}"
    assert external["ef_runbooks_url"] == "${EF_RUNBOOKS_URL}"
    alertmanager = SERVICES["ef_alertmanager"]
    assert alertmanager["entrypoint"] == ["/bin/sh", "/etc/ef/render.sh"]
    assert set(alertmanager["environment"]) == {"EF_WATCHDOG_PING_URL", "EF_ALERT_WEBHOOK_URL"}
    assert any(
        f.startswith("--web.external-url=${EF_ALERTMANAGER_URL:-") for f in alertmanager["command"]
    )
    env_example = (REPO / ".env.example").read_text()
    for name in ("EF_GRAFANA_URL", "EF_ALERTMANAGER_URL", "EF_RUNBOOKS_URL", "EF_WATCHDOG_PING_URL",
                 "EF_ALERT_WEBHOOK_URL"):  # fmt: skip
        assert name in env_example, name
