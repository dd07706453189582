"""The monitoring UIs ask for a login and Prometheus has no lifecycle API: the real Debian
Prometheus and Alertmanager, started with the flags of docker-compose.monitoring.yml and a web
configuration file made as monitoring/web-config.example.yml says."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.monitoring.support import ALERTMANAGER, ALERTMANAGER_YML, PROMETHEUS, load_yaml
from tests.utils.procs import REPO, Server, free_port, start_server

pytestmark = pytest.mark.server

COMPOSE = load_yaml(REPO / "docker-compose.monitoring.yml")["services"]
EXAMPLE = REPO / "monitoring" / "web-config.example.yml"
USER = "ef-monitoring"
PASSWORD = "monitoring0password0for0the0test"
#: Flags whose value is a path or URL of the container; the test gives its own.
_LOCAL = ("--config.file", "--storage.", "--web.external-url", "--web.config.file")


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the standard library's (deprecated): enough for one test hash

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


@pytest.fixture(scope="module")
def web_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = load_yaml(EXAMPLE)
    assert set(config) == {"basic_auth_users"} and list(config["basic_auth_users"]) == [USER]
    config["basic_auth_users"][USER] = _bcrypt(PASSWORD)
    path = tmp_path_factory.mktemp("web") / "monitoring-web.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _compose_flags(service: str) -> list[str]:
    return [f for f in COMPOSE[service]["command"] if not f.startswith(_LOCAL)]


def _start(name: str, binary: str, workdir: Path, web_config: Path, *flags: str) -> Server:
    """``binary`` with ``flags``, the test's web config and the compose file's other flags;
    ready once ``/-/ready`` asks for the login."""
    port = free_port()
    server = start_server(
        name,
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web_config}",
            *flags,
            *_compose_flags(name),
        ],
        port=port,
        log_dir=workdir / "logs",
    )
    try:
        return server.wait_ready("/-/ready", status=401, timeout=60)
    except Exception:
        server.stop()
        raise


@pytest.fixture(scope="module")
def prometheus(web_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("prometheus-auth")
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    server = _start(
        "ef_prometheus",
        PROMETHEUS,
        workdir,
        web_config,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alertmanager(web_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("alertmanager-auth")
    config = load_yaml(ALERTMANAGER_YML)
    for key in ("templates", "inhibit_rules"):
        config.pop(key, None)
    config.update(route={"receiver": "null"}, receivers=[{"name": "null"}])
    config["global"] = {}
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    server = _start(
        "ef_alertmanager",
        ALERTMANAGER,
        workdir,
        web_config,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
    )
    yield server
    server.stop()


def test_the_example_web_config_is_valid() -> None:
    check = subprocess.run(
        ["promtool", "check", "web-config", str(EXAMPLE)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_prometheus_asks_for_a_login_and_cannot_be_shut_down(prometheus: Server) -> None:
    query = {"query": "up"}
    assert httpx.get(f"{prometheus.url}/api/v1/query", params=query).status_code == 401
    assert httpx.get(f"{prometheus.url}/graph").status_code == 401
    wrong = httpx.get(f"{prometheus.url}/api/v1/query", params=query, auth=(USER, "guess"))
    assert wrong.status_code == 401
    auth = (USER, PASSWORD)
    assert httpx.get(f"{prometheus.url}/api/v1/query", params=query, auth=auth).is_success
    # Not even the operator can stop it over HTTP: the lifecycle API is off.
    assert httpx.post(f"{prometheus.url}/-/quit").status_code == 401
    quit_ = httpx.post(f"{prometheus.url}/-/quit", auth=auth)
    assert quit_.status_code == 403
    assert "Lifecycle API is not enabled" in quit_.text
    assert httpx.get(f"{prometheus.url}/-/ready", auth=auth).status_code == 200


def test_alertmanager_asks_for_a_login(alertmanager: Server) -> None:
    assert httpx.get(f"{alertmanager.url}/api/v2/status").status_code == 401
    auth = (USER, PASSWORD)
    assert httpx.get(f"{alertmanager.url}/api/v2/status", auth=auth).status_code == 200
    silence = httpx.post(f"{alertmanager.url}/api/v2/silences", json={})
    assert silence.status_code == 401  # nobody silences alerts without the login


AMTOOL_DIR = REPO / "monitoring" / "alertmanager" / "amtool"


def _amtool(url: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["amtool", "silence", "query", f"--alertmanager.url={url}"],
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_amtool_in_the_container_logs_in_with_the_shipped_config(
    alertmanager: Server, tmp_path: Path
) -> None:
    """The files compose mounts at /etc/amtool, with the paths of this machine: Debian's amtool
    reads ~/.config/prometheus/amtool.yml where the image's reads /etc/amtool/config.yml."""
    volumes = COMPOSE["ef_alertmanager"]["volumes"]
    assert "./monitoring/alertmanager/amtool:/etc/amtool:ro" in volumes
    password = tmp_path / "monitoring_password"
    password.write_text(PASSWORD)
    http = load_yaml(AMTOOL_DIR / "http.yml")
    assert http["basic_auth"]["password_file"] == "/run/secrets/monitoring_password"
    http["basic_auth"]["password_file"] = str(password)
    (tmp_path / "http.yml").write_text(yaml.safe_dump(http))
    config = load_yaml(AMTOOL_DIR / "config.yml")
    assert config["http.config.file"] == "/etc/amtool/http.yml"
    config["http.config.file"] = str(tmp_path / "http.yml")
    home = tmp_path / "home"
    (home / ".config" / "prometheus").mkdir(parents=True)
    refused = _amtool(alertmanager.url, home)
    assert refused.returncode != 0 and "401" in refused.stderr + refused.stdout
    (home / ".config" / "prometheus" / "amtool.yml").write_text(yaml.safe_dump(config))
    logged_in = _amtool(alertmanager.url, home)
    assert logged_in.returncode == 0, logged_in.stderr


def test_the_runbooks_login_in_the_url_works_for_amtool_and_curl(
    alertmanager: Server, prometheus: Server, tmp_path: Path
) -> None:
    """runbooks/README.md: PROMETHEUS_URL and ALERTMANAGER_URL carry the login."""

    def with_login(server: Server) -> str:
        return server.url.replace("http://", f"http://{USER}:{PASSWORD}@")

    assert _amtool(with_login(alertmanager), tmp_path).returncode == 0
    for server, path in ((prometheus, "/api/v1/rules"), (alertmanager, "/api/v2/alerts")):
        code = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", with_login(server) + path],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert code == "200", (server.name, code)
