"""scripts/deploy.sh and scripts/rollback.sh, run for real against a stand-in `docker` on PATH
(tests/scripts/standin_docker.py says why) and a stand-in stack: a loopback HTTP server that
answers /health/ready and /api/v1/speech as the version the stand-in last brought up would.

The scripts run from an unrelated working directory, on a copy of the deploy directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.utils.procs import REPO

SCRIPTS = ("deploy.sh", "rollback.sh", "deploy-lib.sh")


@dataclass
class Homelab:
    dir: Path
    running: Path
    log: Path
    env: dict[str, str]
    unhealthy: set[str] = field(default_factory=set)
    mute: set[str] = field(default_factory=set)
    #: When set, the stack wants ``Authorization: Bearer <key>`` on synthesis (EF_API_KEYS on).
    api_key: str = ""

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        elsewhere = self.dir.parent / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        return subprocess.run(
            [str(self.dir / "scripts" / script), *args],
            cwd=elsewhere,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[tuple[str, str]]:
        """(command, tag) per docker call: ``("compose pull", "v1.1.0")``."""
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        for row in rows:
            assert row["cwd"] == str(self.dir), "docker ran outside the deploy directory"
        return [(" ".join(row["argv"][:2]), row["tag"]) for row in rows]

    def state(self, name: str) -> str:
        path = self.dir / ".deploy" / name
        return path.read_text().strip() if path.exists() else ""

    def env_tag(self) -> str:
        lines = (self.dir / ".env").read_text().splitlines()
        return [line for line in lines if line.startswith("EF_TAG=")][-1][7:]


def _stack_handler(lab: Homelab) -> type[BaseHTTPRequestHandler]:
    class Stack(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, media: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            running = lab.running.read_text() if lab.running.exists() else ""
            ok = self.path == "/health/ready" and running and running not in lab.unhealthy
            self._answer(200 if ok else 503, b"{}", "application/json")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            running = lab.running.read_text()
            if lab.api_key and self.headers.get("Authorization") != f"Bearer {lab.api_key}":
                self._answer(401, b'{"detail": "API key missing or invalid"}', "application/json")
            elif self.path == "/api/v1/speech" and running not in lab.mute:
                self._answer(200, b"RIFF....WAVEfmt ", "audio/wav")
            else:
                self._answer(502, b'{"detail": "engine failed"}', "application/json")

    return Stack


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Homelab]:
    """A deploy directory running v1.0.0 (deployed by hand: EF_TAG in .env, no record)."""
    deploy = tmp_path / "homelab"
    (deploy / "scripts").mkdir(parents=True)
    for name in SCRIPTS:
        shutil.copy2(REPO / "scripts" / name, deploy / "scripts" / name)
    shutil.copy(REPO / "docker-compose.yml", deploy)
    env_file = deploy / ".env"
    env_file.write_text("EF_LAN_BIND=127.0.0.1\nEF_TAG=v1.0.0\n")
    env_file.chmod(0o600)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    standin = REPO / "tests" / "scripts" / "standin_docker.py"
    docker.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "$@"\n')
    docker.chmod(0o755)
    running = tmp_path / "running"
    running.write_text("v1.0.0")
    lab = Homelab(dir=deploy, running=running, log=tmp_path / "docker.log", env={})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _stack_handler(lab))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    lab.env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "STANDIN_DOCKER_LOG": str(lab.log),
        "STANDIN_DOCKER_RUNNING": str(running),
        "EF_DEPLOY_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "EF_DEPLOY_TIMEOUT_S": "2",
        "EF_DEPLOY_POLL_S": "0.1",
    }
    try:
        yield lab
    finally:
        server.shutdown()
        server.server_close()


UP = ("compose pull", "compose up")


def _bring_up(tag: str) -> list[tuple[str, str]]:
    return [(cmd, tag) for cmd in UP]


def _backup(tag: str) -> list[tuple[str, str]]:
    """What a deploy runs first while ``tag`` runs: is ef_backend up? then ``ef backup`` in it."""
    return [("compose ps", tag), ("compose exec", tag)]


def test_good_deploy_records_the_new_version(lab: Homelab) -> None:
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 0, result.stderr
    assert lab.calls() == [*_backup("v1.0.0"), *_bring_up("v1.1.0")]
    rows = [json.loads(line) for line in lab.log.read_text().splitlines()]
    assert rows[1]["argv"] == ["compose", "exec", "-T", "ef_backend", "ef", "backup"]
    assert (lab.state("current"), lab.state("previous")) == ("v1.1.0", "v1.0.0")
    assert lab.env_tag() == "v1.1.0"
    assert stat.S_IMODE((lab.dir / ".env").stat().st_mode) == 0o600
    log = (lab.dir / ".deploy" / "deploy.log").read_text()
    for step in (
        "deploying v1.1.0 (running now: v1.0.0)",
        "backing up the database (ef backup in ef_backend)",
        "pulling images for v1.1.0",
        "starting the stack at v1.1.0",
        "ready (",
        "synthesis through the proxy: 200",
        "deployed v1.1.0",
    ):
        assert step in log, step
    assert "deployed v1.1.0" in result.stderr


def test_unhealthy_deploy_rolls_back_to_the_recorded_version(lab: Homelab) -> None:
    assert lab.run("deploy.sh", "v1.1.0").returncode == 0
    lab.unhealthy.add("v1.2.0")
    result = lab.run("deploy.sh", "v1.2.0")
    assert result.returncode == 1
    assert "deploy of v1.2.0 failed; rolled back to v1.1.0, which is running" in result.stderr
    assert "not ready after 2s (last answer: 503)" in result.stderr
    assert lab.calls() == [
        *_backup("v1.0.0"),
        *_bring_up("v1.1.0"),
        *_backup("v1.1.0"),
        *_bring_up("v1.2.0"),
        *_bring_up("v1.1.0"),
    ]
    assert lab.state("current") == "v1.1.0"
    assert lab.env_tag() == "v1.1.0"
    assert lab.running.read_text() == "v1.1.0"
    history = (lab.dir / ".deploy" / "history").read_text()
    assert " deploy v1.2.0 failed\n" in history
    assert history.rstrip().endswith("rollback v1.1.0 ok")


def test_failed_synthesis_rolls_back(lab: Homelab) -> None:
    lab.mute.add("v1.1.0")
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 1
    assert "synthesis through the proxy failed (HTTP 502)" in result.stderr
    assert lab.calls() == [*_backup("v1.0.0"), *_bring_up("v1.1.0"), *_bring_up("v1.0.0")]
    assert lab.state("current") == "v1.0.0"


def test_failed_pull_rolls_back(lab: Homelab) -> None:
    lab.env["STANDIN_DOCKER_MISSING"] = "v9.9.9"
    result = lab.run("deploy.sh", "v9.9.9")
    assert result.returncode == 1
    assert "pull of v9.9.9 failed" in result.stderr
    assert lab.calls() == [*_backup("v1.0.0"), ("compose pull", "v9.9.9"), *_bring_up("v1.0.0")]
    assert lab.env_tag() == "v1.0.0"


def test_synthesis_check_uses_the_probe_key_when_api_keys_are_on(lab: Homelab) -> None:
    lab.api_key = "probe-key-0123456789abcdef"
    refused = lab.run("deploy.sh", "v1.1.0")
    assert refused.returncode == 3  # no key: neither version passes the check
    assert "synthesis through the proxy failed (HTTP 401)" in refused.stderr
    secrets = lab.dir / "secrets"
    secrets.mkdir()
    (secrets / "probe_api_key").write_text(lab.api_key + "\n")
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 0, result.stderr
    assert lab.api_key not in result.stderr


def test_deploy_and_rollback_both_failing_exit_3(lab: Homelab) -> None:
    lab.unhealthy.update({"v1.0.0", "v1.1.0"})
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 3
    assert "the rollback to v1.0.0 failed too; see runbooks/rollback.md" in result.stderr


def test_failed_backup_stops_the_deploy_before_anything_changes(lab: Homelab) -> None:
    lab.env["STANDIN_DOCKER_FAIL_EXEC"] = "1"
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 2
    assert "the database backup failed, nothing was changed" in result.stderr
    assert "EF_DEPLOY_SKIP_BACKUP=1" in result.stderr
    assert lab.calls() == _backup("v1.0.0")
    assert lab.env_tag() == "v1.0.0"
    lab.env["EF_DEPLOY_SKIP_BACKUP"] = "1"
    skipped = lab.run("deploy.sh", "v1.1.0")
    assert skipped.returncode == 0, skipped.stderr
    assert "backup skipped (EF_DEPLOY_SKIP_BACKUP is set)" in skipped.stderr
    assert lab.calls() == [*_backup("v1.0.0"), *_bring_up("v1.1.0")]


def test_first_deploy_has_nothing_to_back_up(lab: Homelab) -> None:
    lab.running.write_text("")  # nothing runs yet
    result = lab.run("deploy.sh", "v1.1.0")
    assert result.returncode == 0, result.stderr
    assert "no running ef_backend: nothing to back up" in result.stderr
    assert lab.calls() == [("compose ps", "v1.0.0"), *_bring_up("v1.1.0")]


def test_deploy_is_idempotent(lab: Homelab) -> None:
    assert lab.run("deploy.sh", "v1.1.0").returncode == 0
    again = lab.run("deploy.sh", "v1.1.0")
    assert again.returncode == 0, again.stderr
    assert (lab.state("current"), lab.state("previous")) == ("v1.1.0", "v1.0.0")
    assert (lab.dir / ".env").read_text().count("EF_TAG=") == 1


def test_rollback_defaults_to_the_previous_version_and_is_idempotent(lab: Homelab) -> None:
    assert lab.run("deploy.sh", "v1.1.0").returncode == 0
    first = lab.run("rollback.sh")
    assert first.returncode == 0, first.stderr
    assert "rolled back to v1.0.0" in first.stderr
    assert (lab.state("current"), lab.env_tag(), lab.running.read_text()) == ("v1.0.0",) * 3
    second = lab.run("rollback.sh")
    assert second.returncode == 0, second.stderr
    assert lab.state("current") == "v1.0.0"
    assert lab.calls() == [
        *_backup("v1.0.0"),
        *_bring_up("v1.1.0"),
        *_bring_up("v1.0.0"),
        *_bring_up("v1.0.0"),
    ]


def test_rollback_to_a_named_version(lab: Homelab) -> None:
    result = lab.run("rollback.sh", "v0.9.0")
    assert result.returncode == 0, result.stderr
    assert lab.calls() == _bring_up("v0.9.0")
    assert lab.state("current") == "v0.9.0"


def test_failed_rollback_exits_1(lab: Homelab) -> None:
    lab.unhealthy.add("v0.9.0")
    result = lab.run("rollback.sh", "v0.9.0")
    assert result.returncode == 1
    assert "rollback to v0.9.0 failed; see runbooks/rollback.md" in result.stderr


def test_rollback_without_a_record_names_what_to_do(lab: Homelab) -> None:
    result = lab.run("rollback.sh")
    assert result.returncode == 2
    assert "no previous version recorded" in result.stderr
    assert "name one: scripts/rollback.sh v1.3.2" in result.stderr
    assert lab.calls() == []


@pytest.mark.parametrize("script", ["deploy.sh", "rollback.sh"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_env_readable_by_others_is_refused(lab: Homelab, script: str, mode: int) -> None:
    (lab.dir / ".env").chmod(mode)
    result = lab.run(script, "v1.1.0")
    assert result.returncode == 2
    assert f"is readable or writable by group or others (mode {mode:o}); fix it with: " in (
        result.stderr
    )
    assert f"chmod 600 {lab.dir / '.env'}" in result.stderr
    assert lab.calls() == []


@pytest.mark.parametrize("bad", ["", "v1.0.0; rm -rf /", "../v1", "-v1"])
def test_bad_version_refused(lab: Homelab, bad: str) -> None:
    result = lab.run("deploy.sh", bad)
    assert result.returncode == 2
    assert f"not a version: '{bad}'" in result.stderr
    assert lab.calls() == []


def test_usage(lab: Homelab) -> None:
    result = lab.run("deploy.sh")
    assert result.returncode == 2
    assert "usage: scripts/deploy.sh VERSION" in result.stderr
