"""The proxy templates render as the nginx image renders them, and the start-up script refuses
settings that would break or smuggle nginx syntax into the configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.proxy.nginx import NGINX, PROXY, TEMPLATES, nginx_conf, render

LOCAL = {"EF_BACKEND_UPSTREAM": "127.0.0.1:8000", "EF_FRONTEND_UPSTREAM": "127.0.0.1:8081"}


def _nginx_t(out: Path) -> subprocess.CompletedProcess[str]:
    conf = nginx_conf(out)
    return subprocess.run(
        [NGINX, "-t", "-p", str(out), "-c", str(conf)], capture_output=True, text=True, check=False
    )


def test_defaults_render_to_a_valid_configuration(tmp_path: Path) -> None:
    result = render(tmp_path, {"EF_PROXY_LISTEN": "127.0.0.1:18080", **LOCAL})
    assert result.returncode == 0, result.stderr
    rendered = {p.name: p.read_text() for p in (tmp_path / "conf.d").iterdir()}
    assert set(rendered) == {"default.conf", "ef-server.inc", "ef-tls.inc"}
    default = rendered["default.conf"]
    # Every EF_ variable was set by the start-up script; nginx's own variables are untouched.
    assert "${EF_" not in default + rendered["ef-server.inc"]
    assert "$remote_addr" in rendered["ef-server.inc"]
    assert "127.0.0.1/32 1; ::1/128 1; 192.168.1.0/24 1;" in default
    # No EF_ALLOWED_HOSTS: localhost, as in the backend, and IP literals.
    assert 'server_name  localhost "~^[0-9.]+$" "~^\\[[0-9a-f:.]+\\]$";' in default
    assert "# TLS off" in default
    assert _nginx_t(tmp_path).returncode == 0, _nginx_t(tmp_path).stderr


def test_dockerfile_ships_every_template_and_the_startup_script() -> None:
    dockerfile = (PROXY / "Dockerfile").read_text()
    for template in TEMPLATES:
        assert f"proxy/{template.name}" in dockerfile
    assert "COPY --chmod=0755 proxy/15-echoforge.envsh /docker-entrypoint.d/" in dockerfile
    assert 'NGINX_ENVSUBST_FILTER="^EF_"' in dockerfile
    assert (PROXY / "15-echoforge.envsh").stat().st_mode & 0o111, "the entrypoint skips it"


def test_host_list_and_tls(tmp_path: Path) -> None:
    env = {
        "EF_ALLOWED_HOSTS": "echoforge.lan, TTS.example.org,*.home.arpa",
        "EF_PROXY_TLS_CERT": "/etc/nginx/tls/tls.crt",
        "EF_PROXY_TLS_KEY": "/etc/nginx/tls/tls.key",
        **LOCAL,
    }
    assert render(tmp_path, env).returncode == 0
    default = (tmp_path / "conf.d" / "default.conf").read_text()
    assert 'server_name  echoforge.lan tts.example.org *.home.arpa "~^[0-9.]+$"' in default
    assert "include conf.d/ef-tls.inc;" in default
    tls = (tmp_path / "conf.d" / "ef-tls.inc").read_text()
    assert "ssl_certificate /etc/nginx/tls/tls.crt;" in tls


def test_any_host(tmp_path: Path) -> None:
    assert render(tmp_path, {"EF_ALLOWED_HOSTS": "echoforge.lan,*", **LOCAL}).returncode == 0
    default = (tmp_path / "conf.d" / "default.conf").read_text()
    assert 'server_name  "~.";' in default


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EF_ADMIN_CIDRS": "192.168.1.0/24,1.2.3.4/32; } server {"},
            "ef_proxy: EF_ADMIN_CIDRS: '1.2.3.4/32;}server{' is not an address or network",
        ),
        (
            {"EF_ALLOWED_HOSTS": "echoforge.lan,evil;return"},
            "ef_proxy: EF_ALLOWED_HOSTS: 'evil;return' is not a host name",
        ),
        (
            {"EF_PROXY_READ_TIMEOUT": "120s; allow all"},
            "ef_proxy: refusing setting value '120s; allow all'",
        ),
        (
            {"EF_PROXY_TLS_CERT": "/etc/nginx/tls/tls.crt"},
            "ef_proxy: set both EF_PROXY_TLS_CERT and EF_PROXY_TLS_KEY",
        ),
    ],
)
def test_bad_settings_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = render(tmp_path, env)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "conf.d" / "default.conf").exists()
