"""Start real servers as subprocesses on loopback and wait until they answer.

Every server-backed test uses these helpers, so that ports, logs and clean-up work the same way
everywhere: a free port is picked, output goes to a log file under the test's tmp dir (shown
when the server fails to start), and the process group is killed on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
COQUI_BIN = REPO / ".venv-coqui" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running subprocess and where it listens."""

    name: str
    args: list[str]
    port: int
    log_path: Path
    env: dict[str, str]
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )
        return self

    def wait_ready(
        self, path: str = "/health/live", timeout: float = 60.0, status: int = 200
    ) -> Server:
        """Poll ``path`` until it returns ``status``; on timeout fail with the server log."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code == status:
                    self._check_own_port()
                    return self
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready at {path} after {timeout}s ({last}):\n{self.log()}"
        )

    def _check_own_port(self) -> None:
        """Fail if the answer came from a process outside this server's tree: the port
        `free_port` picked was taken meanwhile by another test run on this machine, and the
        test would go on talking to that one (seen: jobs made on a foreign backend)."""
        if self.proc is None:
            return
        try:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return  # cannot tell: trust the answer
        for proc in tree:
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue  # a child that has just exited
            except psutil.Error:
                return  # cannot tell: trust the answer
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in conns):
                return
        raise RuntimeError(
            f"{self.name}: port {self.port} answers, but not from this server (pid "
            f"{self.proc.pid}); another process took the port:\n{self.log()}"
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group (uvicorn workers included) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it lingers."""
        self.kill(signal.SIGTERM)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


def make_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without settings that could leak in, plus ``extra``.

    EF_, OTEL_ and PROMETHEUS_MULTIPROC_DIR: a server started by a test gets only what the test
    gives it (a shared metrics directory would mix the samples of unrelated servers).
    """
    leaks = ("EF_", "OTEL_", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaks)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_server(
    name: str,
    args: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
) -> Server:
    """Start ``args`` as a server; call ``wait_ready`` on the result."""
    server = Server(
        name=name,
        args=list(args),
        port=port,
        log_path=log_dir / f"{name}-{port}.log",
        env=make_env(env),
        host=host,
    )
    return server.start()


def start_ef_tts(
    name: str,
    log_dir: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    python: str = sys.executable,
) -> Server:
    """Start ``python -m ef_tts`` on loopback (a free port unless given); not yet waited for."""
    port = port or free_port()
    full_env = {"EF_TTS_HOST": "127.0.0.1", "EF_TTS_PORT": str(port), **env}
    return start_server(name, [python, "-m", "ef_tts"], port=port, log_dir=log_dir, env=full_env)


def start_ef_backend(
    name: str,
    log_dir: Path,
    *,
    data_dir: Path,
    tts_url: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Server:
    """Start ``ef serve`` on loopback (a free port unless given); not yet waited for.

    The Wyoming listener is off unless ``env`` turns it on (on a free port: the default 10200
    would be shared by every backend the tests start).
    """
    port = port or free_port()
    full_env = {
        "EF_HOST": "127.0.0.1",
        "EF_PORT": str(port),
        "EF_DATA_DIR": str(data_dir),
        "EF_TTS_URL": tts_url,
        "EF_WYOMING_ENABLED": "false",
        **(env or {}),
    }
    args = [str(VENV_BIN / "ef"), "serve"]
    return start_server(name, args, port=port, log_dir=log_dir, env=full_env)
