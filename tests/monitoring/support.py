"""Helpers for the monitoring tests: the versioned rules and dashboards, PromQL metric names,
real Prometheus / Alertmanager processes (the Debian binaries) and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitoring.mixin.usage import metric_names
from tests.utils.poll import poll_until
from tests.utils.procs import REPO, VENV_BIN, Server, free_port, start_ef_backend, start_server

ALERTS_DIR = REPO / "alerts"
RECORDING_DIR = REPO / "monitoring" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "dashboards"
RUNBOOKS_DIR = REPO / "runbooks" / "alerts"
PROMETHEUS_YML = REPO / "monitoring" / "prometheus" / "prometheus.yml"
ALERTMANAGER_YML = REPO / "monitoring" / "alertmanager" / "alertmanager.yml"
RENDER_SH = REPO / "monitoring" / "alertmanager" / "render.sh"
BLACKBOX_YML = REPO / "monitoring" / "blackbox" / "blackbox.yml"

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"


# ------------------------------------------------------------------------- versioned rule files


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_files() -> list[Path]:
    return sorted(ALERTS_DIR.glob("*.rules.yml"))


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in alert_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def recording_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RECORDING_DIR.glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON, for every committed dashboard."""
    boards = [
        json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))
    ]
    return {board["uid"]: board for board in boards}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every query of every panel."""
    return [
        (uid, panel["title"], target["expr"])
        for uid, board in dashboards().items()
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


# ----------------------------------------------------------------------------- PromQL metric names


def used_metric_names() -> set[str]:
    """Every raw metric name the rules and dashboards read (recording rules resolved)."""
    recorded = {rule["record"] for rule in recording_rules()}
    exprs = [rule["expr"] for rule in alert_rules() + recording_rules()]
    exprs += [expr for _, _, expr in dashboard_queries()]
    return {name for expr in exprs for name in metric_names(expr) if name not in recorded}


def exposed_names(text: str) -> set[str]:
    """Sample names in a Prometheus text exposition (``_bucket``, ``_count``... included)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# --------------------------------------------------------------------------- EchoForge services


def start_backend(
    workdir: Path,
    *,
    port: int,
    tts_url: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
) -> Server:
    """A real ef_backend (``ef serve``) against a real ef_tts; call wait_ready.

    Its Wyoming listener is on (on a free port), as in the compose stack: the rules and the
    dashboards read ``ef_wyoming_listener_up``.
    """
    wyoming = {"EF_WYOMING_ENABLED": "true", "EF_WYOMING_PORT": str(free_port())}
    return start_ef_backend(
        "ef_backend",
        workdir / "logs",
        data_dir=data_dir,
        tts_url=tts_url,
        env={**wyoming, **(env or {})},
        port=port,
    )


def start_disk_exporter(workdir: Path, *, port: int, paths: list[Path]) -> Server:
    return start_server(
        "ef_disk_exporter",
        [str(VENV_BIN / "ef-disk-exporter")],
        port=port,
        log_dir=workdir / "logs",
        env={
            "EF_DISK_PATHS": ",".join(str(p) for p in paths),
            "EF_DISK_EXPORTER_HOST": "127.0.0.1",
            "EF_DISK_EXPORTER_PORT": str(port),
        },
    ).wait_ready("/metrics", timeout=30)


# --------------------------------------------------------------------------- Prometheus and AM


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    return poll_until(
        check,
        timeout=timeout,
        what=what,
        interval=interval,
        ignore=(httpx.HTTPError, KeyError, ValueError),
    )


def start_prometheus(
    workdir: Path, config: dict[str, Any], *, port: int, env: dict[str, str] | None = None
) -> Server:
    """The Debian Prometheus on 127.0.0.1:``port`` with ``config`` and a fresh TSDB; ``env``
    fills the ``${VAR}`` of the external labels, as compose does."""
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return start_server(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage,expand-external-labels",
            "--web.enable-lifecycle",
            # Alerts evaluated before Alertmanager is discovered (discovery settles after ~5 s)
            # are dropped and only re-sent after this delay (1m by default).
            "--rules.alert.resend-delay=1s",
        ],
        port=port,
        log_dir=workdir / "logs",
        env=env,
    ).wait_ready("/-/ready", timeout=60)


def blackbox_config(api_key_file: Path) -> dict[str, Any]:
    """The versioned blackbox.yml with the probe's API key read from ``api_key_file``."""
    config: dict[str, Any] = load_yaml(BLACKBOX_YML)
    config["modules"]["http_speech"]["http"]["bearer_token_file"] = str(api_key_file)
    return config


def start_blackbox(workdir: Path, config: dict[str, Any], *, port: int) -> Server:
    """The Debian prometheus-blackbox-exporter on 127.0.0.1:``port``."""
    config_path = workdir / "blackbox.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return start_server(
        "blackbox",
        [BLACKBOX, f"--config.file={config_path}", f"--web.listen-address=127.0.0.1:{port}"],
        port=port,
        log_dir=workdir / "logs",
    ).wait_ready("/-/healthy", timeout=30)


def start_alertmanager(
    workdir: Path,
    config: dict[str, Any],
    *,
    port: int,
    webhooks: dict[str, str] | None = None,
    external_url: str | None = None,
) -> Server:
    """The Debian Alertmanager on 127.0.0.1:``port``, clustering off, started as the container
    starts it: through monitoring/alertmanager/render.sh, which fills in the webhook URLs
    (``webhooks``: EF_WATCHDOG_PING_URL, EF_ALERT_WEBHOOK_URL)."""
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    templates = workdir / "templates"
    if not templates.exists():
        shutil.copytree(ALERTMANAGER_YML.parent / "templates", templates)
    return start_server(
        "alertmanager",
        [
            "sh",
            str(RENDER_SH),
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={external_url or f'http://127.0.0.1:{port}'}/",
            "--cluster.listen-address=",
        ],
        port=port,
        log_dir=workdir / "logs",
        env={
            "EF_ALERTMANAGER_SOURCE": str(config_path),
            "EF_ALERTMANAGER_RENDERED": str(workdir / "rendered"),
            "ALERTMANAGER_BIN": ALERTMANAGER,
            **(webhooks or {}),
        },
    ).wait_ready("/-/ready", timeout=60)


def alertmanager_for_test(smtp: SmtpSink, password_file: Path) -> dict[str, Any]:
    """The versioned alertmanager.yml with the smarthost, login, secret path and timings of the
    test; the password itself is only in ``password_file``."""
    config: dict[str, Any] = load_yaml(ALERTMANAGER_YML)
    glob = config["global"]
    glob["smtp_smarthost"] = f"127.0.0.1:{smtp.port}"
    glob["smtp_auth_username"] = smtp.username
    glob["smtp_require_tls"] = False
    glob["smtp_auth_password_file"] = str(password_file)
    for route in [config["route"], *config["route"]["routes"]]:
        route["group_wait"] = "1s"
        route["group_interval"] = "1s"
    return config


def query(prometheus: Server, expr: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (raises on a query error)."""
    response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"query failed: {expr}\n{body}")
    result = body["data"]["result"]
    return result if isinstance(result, list) else [result]


# -------------------------------------------------------------------------------------- SMTP


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) that requires a login and keeps every message."""

    username: str = "alerts@echoforge.test"
    password: str = "s3cret-for-the-test-only"
    port: int = field(default_factory=free_port)
    messages: list[EmailMessage] = field(default_factory=list)
    #: When each message arrived (``time.monotonic()``), in the order of ``messages``.
    arrived: list[float] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    #: With a context the server offers STARTTLS and refuses mail before it.
    tls_context: ssl.SSLContext | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # Enforced here rather than with auth_required=True, which warns about plain-text AUTH
        # (loopback only, for the test) and the warning would fail the test run.
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        arrived = time.monotonic()
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.arrived.append(arrived)
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        if ok:
            with self._lock:
                self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            # Alertmanager takes the first mechanism offered; its LOGIN expects the challenge
            # "Username:", aiosmtpd sends "User Name". PLAIN is what real smarthosts use anyway.
            auth_exclude_mechanism=["LOGIN"],
            tls_context=self.tls_context,
            require_starttls=self.tls_context is not None,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def snapshot(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def timed(self) -> list[tuple[float, EmailMessage]]:
        """Every message with its arrival time (``time.monotonic()``)."""
        with self._lock:
            return list(zip(self.arrived, self.messages, strict=True))

    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], *, timeout: float, what: str
    ) -> EmailMessage:
        def found() -> EmailMessage | None:
            return next((m for m in self.snapshot() if predicate(m)), None)

        return wait_for(found, timeout=timeout, what=what)  # type: ignore[no-any-return]


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part is not None else ""


# ------------------------------------------------------------------------------ webhook sink


class WebhookSink:
    """A real HTTP server that records the JSON bodies POSTed to it (Alertmanager webhooks)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/heartbeat"

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class StaticSite:
    """A real HTTP server for a folder: the runbooks as a browsable repository serves them."""

    def __init__(self, root: Path) -> None:
        handler = partial(_QuietFiles, directory=str(root))
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def iter_alert_names() -> Iterator[str]:
    seen: set[str] = set()
    for rule in alert_rules():
        if rule["alert"] not in seen:
            seen.add(rule["alert"])
            yield rule["alert"]
