"""docker-compose.yml and .env.example, read statically (no Docker engine here): the proxy is
trusted exactly, the engine never sees the API keys, every service has memory and pids limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from tests.utils.procs import REPO

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
ENV_EXAMPLE = {k: v or "" for k, v in dotenv_values(REPO / ".env.example").items()}


def _proxy_address() -> ipaddress.IPv4Address:
    return ipaddress.ip_address(
        COMPOSE["services"]["ef_proxy"]["networks"]["ef_net"]["ipv4_address"]
    )  # type: ignore[return-value]


def test_the_backend_trusts_exactly_the_proxys_fixed_address() -> None:
    (ipam,) = COMPOSE["networks"]["ef_net"]["ipam"]["config"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    dynamic = ipaddress.ip_network(ipam["ip_range"])
    proxy = _proxy_address()
    assert proxy in subnet
    assert proxy not in dynamic  # no other container can be handed the proxy's address
    assert ENV_EXAMPLE["EF_TRUSTED_PROXIES"] == f"{proxy}/32"


def test_env_example_is_a_valid_backend_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """.env.example as the backend reads it: trusted proxy outside the admin CIDRs, etc."""
    from ef_backend.core.config import Settings

    for name, value in ENV_EXAMPLE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = Settings()
    assert [str(n) for n in settings.trusted_proxies] == [f"{_proxy_address()}/32"]


def test_the_engine_gets_no_api_keys() -> None:
    tts = COMPOSE["services"]["ef_tts"]
    assert "env_file" not in tts  # .env holds the keys or the admin token
    assert all(name.startswith("EF_TTS_") for name in tts["environment"])
    assert "secrets" not in tts


def test_api_keys_come_from_a_docker_secret_of_the_backend_only() -> None:
    backend = COMPOSE["services"]["ef_backend"]
    assert backend["secrets"] == ["api_keys"]
    assert backend["environment"]["EF_API_KEYS_FILE"] == "/run/secrets/api_keys"
    others = [n for n, s in COMPOSE["services"].items() if "api_keys" in s.get("secrets", [])]
    assert others == ["ef_backend"]
    assert "EF_API_KEYS" not in ENV_EXAMPLE  # keys are not kept in .env


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_every_service_has_memory_and_pids_limits(name: str) -> None:
    service = COMPOSE["services"][name]
    assert service.get("mem_limit"), name
    assert int(service["pids_limit"]) > 0, name
