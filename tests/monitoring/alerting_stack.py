"""The whole alert path on loopback, with the versioned configuration, for the e2e alerting test
and the alert detection benchmark (bench/alert_detection.py).

A real ef_backend (against a given real ef_tts), the disk exporter, the Debian blackbox exporter,
Prometheus and Alertmanager (started through render.sh, as the container starts it) and an SMTP
server (aiosmtpd, with a login); the runbooks are served over HTTP as a browsable repository
serves them. Only what cannot be the same on one machine is rewritten, in a copy: targets become
127.0.0.1 ports (the probes go to the backend, not through a proxy), scrape and evaluation
intervals 1 s, EFBackendDown's ``for:`` 2 s, the smarthost and its password file, group waits
1 s (support.alertmanager_for_test). The link base URLs and webhooks come from the environment,
as .env gives them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from monitoring.mixin import config as mixin
from tests.monitoring.support import (
    ALERTS_DIR,
    PROMETHEUS_YML,
    RECORDING_DIR,
    SmtpSink,
    StaticSite,
    WebhookSink,
    alertmanager_for_test,
    blackbox_config,
    load_yaml,
    start_alertmanager,
    start_backend,
    start_blackbox,
    start_disk_exporter,
    start_prometheus,
    text_body,
)
from tests.utils.procs import REPO, Server, free_port

#: Where the emails' links point, as .env would set them (no Grafana runs here: its links are
#: checked against the generated dashboards).
GRAFANA_URL = "http://grafana.test:3000"

#: The only alert whose ``for:`` is shortened: the one the test and the benchmark wait for.
SHORT_FOR = {"EFBackendDown": "2s"}


@dataclass
class AlertingStack:
    workdir: Path
    smtp: SmtpSink
    heartbeat: WebhookSink
    runbooks: StaticSite
    tts: Server
    backend: Server
    disk: Server
    blackbox: Server
    alertmanager: Server
    prometheus: Server
    data_dir: Path
    #: What Prometheus and Alertmanager run with (the rewritten copies), and the rule files.
    prometheus_config: dict[str, Any]
    alertmanager_config: dict[str, Any]
    rules_dir: Path
    backend_env: dict[str, str] = field(default_factory=dict)

    @property
    def backend_instance(self) -> str:
        return f"127.0.0.1:{self.backend.port}"

    def restart_backend(self) -> None:
        """A new backend on the same port and data (the scrape target holds)."""
        self.backend.stop()  # closes its log; a no-op kill when it is already dead
        self.backend = start_backend(
            self.workdir,
            port=self.backend.port,
            tts_url=self.tts.url,
            data_dir=self.data_dir,
            env=self.backend_env,
        ).wait_ready("/health/ready", timeout=120)


def rules_for_test(target: Path) -> Path:
    """Copies of the versioned rules: group intervals follow the global 1 s, and only the
    alerts in SHORT_FOR get a short ``for:``."""
    target.mkdir()
    for source in [*sorted(ALERTS_DIR.glob("*.rules.yml")), *sorted(RECORDING_DIR.glob("*.yml"))]:
        rules = load_yaml(source)
        for group in rules["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if rule.get("alert") in SHORT_FOR:
                    rule["for"] = SHORT_FOR[rule["alert"]]
        (target / source.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def prometheus_for_test(
    rules_dir: Path, ports: dict[str, int], am_port: int, probe_targets: dict[str, str]
) -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules_dir / "*.yml")]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
    ]
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert sorted(jobs) == sorted([*ports, *probe_targets]), "a scrape job changed: map it here"
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in probe_targets:  # probed through the blackbox exporter
            job.update(scrape_interval="2s", scrape_timeout="2s")
            job["static_configs"] = [{"targets": [probe_targets[name]]}]
            for relabel in job["relabel_configs"]:
                if relabel.get("target_label") == "__address__":
                    relabel["replacement"] = f"127.0.0.1:{ports[mixin.JOB_BLACKBOX]}"
        else:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
        job.pop("basic_auth", None)  # these test servers run without a web config
    return config


@contextlib.contextmanager
def alerting_stack(
    workdir: Path, tts: Server, *, backend_env: Mapping[str, str] | None = None
) -> Iterator[AlertingStack]:
    """Start everything (``tts`` is already running and stays so); stop it all on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    smtp = SmtpSink().start()
    heartbeat = WebhookSink().__enter__()
    runbooks = StaticSite(REPO).__enter__()
    env = dict(backend_env or {})
    started: list[Server] = []
    stack: AlertingStack | None = None
    try:
        backend = start_backend(
            workdir, port=free_port(), tts_url=tts.url, data_dir=data_dir, env=env
        ).wait_ready("/health/ready", timeout=120)
        started.append(backend)
        disk = start_disk_exporter(workdir, port=free_port(), paths=[data_dir])
        started.append(disk)
        key_file = workdir / "probe_api_key"
        key_file.write_text("any key: API keys are off in this backend")
        blackbox = start_blackbox(workdir, blackbox_config(key_file), port=free_port())
        started.append(blackbox)

        password = workdir / "smtp_password"
        password.write_text(smtp.password)  # no newline: Alertmanager sends the file as is
        am_port = free_port()
        am_dir = workdir / "alertmanager"
        am_dir.mkdir()
        am_config = alertmanager_for_test(smtp, password)
        alertmanager = start_alertmanager(
            am_dir, am_config, port=am_port, webhooks={"EF_WATCHDOG_PING_URL": heartbeat.url}
        )
        started.append(alertmanager)

        prom_port = free_port()
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir()
        ports = {
            mixin.JOB_BACKEND: backend.port,
            mixin.JOB_TTS: tts.port,
            mixin.JOB_DISK: disk.port,
            mixin.JOB_PROMETHEUS: prom_port,
            mixin.JOB_ALERTMANAGER: am_port,
            mixin.JOB_BLACKBOX: blackbox.port,
        }
        probes = {
            mixin.JOB_PROBE_READY: f"{backend.url}/health/ready",
            mixin.JOB_PROBE_SPEECH: f"{backend.url}/api/v1/speech",
            mixin.JOB_PROBE_ENGINE: f"{backend.url}/health/tts",
        }
        rules_dir = rules_for_test(prom_dir / "rules")
        config = prometheus_for_test(rules_dir, ports, am_port, probes)
        links = {"EF_GRAFANA_URL": GRAFANA_URL, "EF_RUNBOOKS_URL": f"{runbooks.url}/runbooks"}
        prometheus = start_prometheus(prom_dir, config, port=prom_port, env=links)
        started.append(prometheus)
        stack = AlertingStack(
            workdir,
            smtp,
            heartbeat,
            runbooks,
            tts,
            backend,
            disk,
            blackbox,
            alertmanager,
            prometheus,
            data_dir,
            prometheus_config=config,
            alertmanager_config=am_config,
            rules_dir=rules_dir,
            backend_env=env,
        )
        yield stack
    finally:
        if stack is not None:
            started[0] = stack.backend  # the one running now, if it was restarted
        for server in reversed(started):
            server.stop()
        runbooks.__exit__(None, None, None)
        heartbeat.__exit__(None, None, None)
        smtp.stop()


def is_backend_down_email(message: EmailMessage, status: str, instance: str) -> bool:
    """The EFBackendDown email of ``status`` for this backend ``instance``. Under load the first
    rule evaluation can come before the first scrape: ``absent(up)`` then fires briefly with no
    instance, and that early email (and its resolution) is not the one to wait for."""
    subject = str(message["Subject"])
    return "EFBackendDown" in subject and f"[{status}" in subject and instance in text_body(message)
