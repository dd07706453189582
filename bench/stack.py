"""What the end-to-end benchmarks share: a real stack on loopback, wrk, percentiles, a report.

The servers are the ones the tests start (``tests/utils/procs.py``): ef_tts with Piper and the
joe voice, and ``ef-backend serve``, each on a free port with its log in the work directory.
Every benchmark prints a Markdown table and can write its figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from tests.utils.procs import Server, free_port, start_ef_backend, start_ef_tts  # noqa: E402

__all__ = [
    "REPO",
    "Server",
    "Stack",
    "bench_parser",
    "burst_parser",
    "cpu_seconds",
    "otlp_sink",
    "percentile",
    "ratio_row",
    "rotated",
    "stack",
    "workdir",
    "write_json",
    "wrk",
]


class Stack:
    """ef_tts replicas and a backend started for a benchmark; stopped by `stack`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[Server] = []
        self.engines: list[Server] = []

    def engine(self, port: int | None = None, **env: str) -> Server:
        server = start_ef_tts(
            "ef_tts", self.root / "logs", {"EF_TTS_ENGINE": "piper", **env}, port=port
        )
        self.servers.append(server)
        self.engines.append(server)
        return server.wait_ready("/health", timeout=120)

    def restart(self, engine: Server) -> Server:
        """Stop ``engine`` and start a new one on its port (the backend's EF_TTS_URL holds)."""
        engine.stop()
        self.engines.remove(engine)
        return self.engine(port=engine.port)

    def backend(self, tts_url: str | None = None, *, name: str = "backend", **env: str) -> Server:
        data = self.root / f"data-{name}"
        data.mkdir(parents=True, exist_ok=True)
        urls = tts_url or ",".join(e.url for e in self.engines)
        server = start_ef_backend(
            "ef_backend",
            self.root / "logs",
            data_dir=data,
            tts_url=urls,
            env={"EF_RATE_LIMIT": "0", "EF_LOG_LEVEL": "WARNING", **env},
        )
        self.servers.append(server)
        return server.wait_ready("/health/ready", timeout=120)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@contextlib.contextmanager
def workdir(keep: Path | None = None) -> Iterator[Path]:
    """A scratch directory for logs and data (``keep`` to look at them afterwards)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="ef-bench-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def stack(root: Path) -> Iterator[Stack]:
    running = Stack(root)
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """bench/otlp_sink.py on a free port, for backends that export their traces; its URL."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(REPO / "bench/otlp_sink.py"), str(port)])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def wrk(
    url: str,
    *,
    duration: float,
    connections: int = 16,
    body: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
    scripts: Path,
) -> float:
    """Requests per second from ``wrk -t1`` (POST ``body`` as JSON when given); fails on any
    non-2xx answer, so a benchmark never reports the speed of errors."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    if body is not None or headers:
        lines = []
        if body is not None:
            lines += [
                'wrk.method = "POST"',
                f"wrk.body = {json.dumps(json.dumps(body))}",
                'wrk.headers["Content-Type"] = "application/json"',
            ]
        lines += [
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()
        ]
        scripts.mkdir(parents=True, exist_ok=True)
        script = scripts / f"wrk-{abs(hash((url, json.dumps(body), str(headers))))}.lua"
        script.write_text("\n".join(lines) + "\n")
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses from {url}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(rate.group(1))


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark has (``--json``, ``--keep``), its docstring's first paragraph
    as the description."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="keep logs and data here")
    return parser


def burst_parser(doc: str, *, rounds: int = 4) -> argparse.ArgumentParser:
    """`bench_parser` for a benchmark made of wrk bursts in rounds."""
    parser = bench_parser(doc)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of wrk per burst")
    parser.add_argument("--connections", type=int, default=16)
    return parser


def rotated(names: Sequence[str], round_no: int) -> list[str]:
    """The order of round ``round_no``: each name goes first in turn, so that none is always
    measured right after the same other one."""
    shift = round_no % len(names)
    return [*names[shift:], *names[:shift]]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a server and its children (nginx's workers)."""
    server = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [server, *server.children(recursive=True)])


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[round(q * 1000) - 1]


def ratio_row(name: str, measured: float, target: str, met: bool) -> str:
    return f"| {name} | {measured:.3f} | {target} | {'met' if met else 'MISSED'} |"


def write_json(path: Path | None, data: Mapping[str, object]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
