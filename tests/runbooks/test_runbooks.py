"""Runbooks the suite executes: every ``<!-- tested -->`` shell block of every runbook runs, in
order, against one local stack (a real backend, the Piper engine, Prometheus and Alertmanager
from Debian with the versioned rules and configuration), and its expected output is checked.

Blocks run in bash with ``set -euo pipefail``; variables a block exports are seen by the later
blocks of the same runbook. The environment gives the commands what an operator's shell has:
``ef`` on the PATH, ``EF_URL``, ``EF_DATA_DIR``, ``PROMETHEUS_URL``, ``ALERTMANAGER_URL``, and
``TARGET``, a new database on a real PostgreSQL (what move-to-postgresql.md has the operator
create). When a
block stops the backend (``ef restore --stop``), the next block finds it started again, as the
runbook's homelab step (``docker compose start ef_backend``) would.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitoring.mixin import config as mixin
from tests.monitoring.support import (
    ALERTS_DIR,
    PROMETHEUS_YML,
    RECORDING_DIR,
    SmtpSink,
    alertmanager_for_test,
    load_yaml,
    start_alertmanager,
    start_prometheus,
)
from tests.runbooks.blocks import Block, missing_output, parse
from tests.utils.postgres import PostgresServer
from tests.utils.procs import REPO, VENV_BIN, Server, free_port, start_ef_backend

RUNBOOKS = REPO / "runbooks"
BLOCK_TIMEOUT_S = 300


def _runbooks() -> list[Path]:
    return sorted(RUNBOOKS.rglob("*.md"))


def _with_markers() -> list[Path]:
    return [p for p in _runbooks() if any(b.kind for b in parse(p))]


def _tested() -> list[Path]:
    return [p for p in _runbooks() if any(b.kind == "tested" for b in parse(p))]


def test_marked_runbooks_mark_every_shell_block() -> None:
    """A runbook that uses the markers says of each shell block where it runs."""
    assert len(_tested()) >= 4
    unmarked = [b.where for p in _with_markers() for b in parse(p) if b.kind is None]
    assert unmarked == []
    for path in _with_markers():
        link = "README.md#tested-blocks"
        assert link in path.read_text(), f"{path.name} does not link to {link}"


def test_expected_output_matching() -> None:
    assert (
        missing_output(["ok  checksum ...", "...: verified"], "ok  checksum sha\nx: verified")
        is None
    )
    assert missing_output(["b", "a"], "a\nb") == "a"  # in order
    assert missing_output(["exit ...4"], "exit 3") == "exit ...4"


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    """What the runbook commands talk to."""

    workdir: Path
    backend: Server
    data_dir: Path
    tts: Server
    prometheus: Server
    alertmanager: Server

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EF_", "OTEL_"))}
        env.update(
            PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            EF_URL=self.backend.url,
            EF_DATA_DIR=str(self.data_dir),
            EF_TTS_URL=self.tts.url,
            PROMETHEUS_URL=self.prometheus.url,
            ALERTMANAGER_URL=self.alertmanager.url,
        )
        return env

    def revive(self) -> None:
        """Start the backend again if a runbook block stopped it."""
        if self.backend.proc is not None and self.backend.proc.poll() is None:
            return
        self.backend.stop()
        self.backend = _backend(self.workdir, self.data_dir, self.tts, port=self.backend.port)


def _backend(workdir: Path, data_dir: Path, tts: Server, *, port: int | None = None) -> Server:
    return start_ef_backend(
        "ef_backend-runbooks",
        workdir / "logs",
        data_dir=data_dir,
        tts_url=tts.url,
        port=port,
        env={"EF_RATE_LIMIT": "0"},
    ).wait_ready("/health/ready", timeout=120)


def _prometheus_config(workdir: Path, targets: dict[str, int], am_port: int) -> dict[str, Any]:
    """The versioned prometheus.yml and rules, pointed at the loopback stack."""
    rules = workdir / "rules"
    rules.mkdir()
    for source in [*sorted(ALERTS_DIR.glob("*.rules.yml")), *sorted(RECORDING_DIR.glob("*.yml"))]:
        (rules / source.name).write_text(source.read_text())
    config: dict[str, Any] = load_yaml(PROMETHEUS_YML)
    config["global"].update(scrape_interval="2s", evaluation_interval="2s", scrape_timeout="2s")
    config["rule_files"] = [str(rules / "*.yml")]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
    ]
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]}
        for job in config["scrape_configs"]
        if job["job_name"] in targets
    ]
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, piper_tts: Server) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("runbooks")
    data_dir = workdir / "data"
    smtp = SmtpSink().start()
    started: list[Server] = []
    try:
        backend = _backend(workdir, data_dir, piper_tts)
        started.append(backend)
        for text in ("The runbooks have jobs to look at.", "And cached audio, too."):
            spoken = httpx.post(backend.url + "/api/v1/speech", json={"text": text}, timeout=120)
            assert spoken.status_code == 200, spoken.text
        password = workdir / "smtp_password"
        password.write_text(smtp.password)
        (workdir / "am").mkdir()
        am_port = free_port()
        alertmanager = start_alertmanager(
            workdir / "am", alertmanager_for_test(smtp, password), port=am_port
        )
        started.append(alertmanager)
        prom_port = free_port()
        (workdir / "prom").mkdir()
        targets = {
            mixin.JOB_BACKEND: backend.port,
            mixin.JOB_TTS: piper_tts.port,
            mixin.JOB_PROMETHEUS: prom_port,
            mixin.JOB_ALERTMANAGER: am_port,
        }
        prometheus = start_prometheus(
            workdir / "prom", _prometheus_config(workdir / "prom", targets, am_port), port=prom_port
        )
        started.append(prometheus)
        result = Stack(workdir, backend, data_dir, piper_tts, prometheus, alertmanager)
        yield result
        started[0] = result.backend
    finally:
        for server in reversed(started):
            server.stop()
        smtp.stop()


# --- running the blocks ------------------------------------------------------------------------

_PRELUDE = """set -euo pipefail
if [ -f "$EF_RUNBOOK_STATE" ]; then source "$EF_RUNBOOK_STATE"; fi
"""
_EPILOGUE = """
export -p > "$EF_RUNBOOK_STATE"
"""


def _run(
    block: Block, stack: Stack, workdir: Path, state: Path
) -> subprocess.CompletedProcess[str]:
    env = stack.env()
    env["EF_RUNBOOK_STATE"] = str(state)
    return subprocess.run(
        ["bash", "-c", _PRELUDE + block.code + _EPILOGUE],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("path", _tested(), ids=lambda p: str(p.relative_to(RUNBOOKS)))
def test_runbook_blocks_pass(
    path: Path, stack: Stack, postgres: PostgresServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.sh"
    # What an operator sets before moving to PostgreSQL: a new, empty database.
    state.write_text(f"export TARGET={shlex.quote(postgres.new_database())}\n")
    for block in (b for b in parse(path) if b.kind == "tested"):
        stack.revive()
        result = _run(block, stack, tmp_path, state)
        shown = f"{block.where}\n$ {block.code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert result.returncode == 0, f"exit {result.returncode} at {shown}"
        missing = missing_output(block.expected, result.stdout)
        assert missing is None, f"expected output line not printed: {missing!r} at {shown}"
    stack.revive()
