"""Throughput of a trivial endpoint under each instrumentation configuration, side by side.

Each configuration (see ``bench/apps.py``) runs as its own uvicorn process (one worker) on
loopback and is loaded with ``wrk``. In each round every configuration's server is started
afresh, and then loaded in short bursts, one configuration after the other, several times over:
so background load on a shared machine, which changes from one minute to the next, hits the
configurations alike, and each burst cycle gives a paired comparison. Medians are reported.

    .venv/bin/python bench/run.py                      # what `make bench` runs
    .venv/bin/python bench/run.py --rounds 5 --bursts 6 --duration 3 --app minimal

Prints, per configuration, requests per second and the server's CPU time per request (from
its user + system time during the run), and the cost against "off" computed from CPU time,
1 - cpu_off / cpu: the throughput a CPU-bound server loses. CPU time is what instrumentation
adds, and unlike req/s it barely moves when other programs load the machine. Targets
(docs/performance.md): metrics <= 10 %, everything <= 20 %.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.apps import CONFIGS  # noqa: E402

TARGETS = {"metrics": 0.10, "all": 0.20}
LOGGED = ("logs", "all", "all-10pct")
ENDPOINT = "/health/live"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", cpu, *cmd]


def run_wrk(url: str, *, duration: float, connections: int, cpu: str | None) -> tuple[float, int]:
    """Requests per second and the number of requests wrk completed."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    out = subprocess.run(pinned(cmd, cpu), capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ", out)
    if not rate or not total:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses:\n{out}")
    return float(rate.group(1)), int(total.group(1))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the server process so far (threads included)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def bench_env(config: str, app: str, sink_port: int, workdir: Path) -> dict[str, str]:
    """The environment of one configuration (server or in-process run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EF_", "OTEL_"))}
    env.update(
        BENCH_CONFIG=config,
        BENCH_APP=app,
        PYTHONPATH=str(REPO),
        EF_DATA_DIR=str(workdir / f"data-{config}"),
        EF_TTS_URL="http://127.0.0.1:9",  # nothing listens: the trivial endpoint needs no engine
        EF_RATE_LIMIT="0",
        # The access log is part of "logs" and "everything on" only; elsewhere it stays silent.
        EF_LOG_LEVEL="INFO" if config in LOGGED else "WARNING",
    )
    if config in ("all", "all-10pct"):
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
        )
    if config == "all-10pct":
        env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
    return env


def in_process(
    config: str, app: str, sink_port: int, workdir: Path, cpu: str | None, requests: int
) -> list[float]:
    """CPU microseconds per request of each repeat, the app called directly
    (bench/inprocess.py)."""
    out = workdir / f"{config}-inprocess.json"
    cmd = [sys.executable, str(REPO / "bench/inprocess.py"), "--requests", str(requests)]
    cmd += ["--repeats", "3"]
    with open(workdir / f"{config}-inprocess.log", "ab") as log:
        subprocess.run(
            pinned([*cmd, "--out", str(out)], cpu),
            cwd=REPO,
            env=bench_env(config, app, sink_port, workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return [float(run) for run in json.loads(out.read_text())["runs"]]


def start_server(
    config: str, app: str, sink_port: int, workdir: Path, cpu: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = bench_env(config, app, sink_port, workdir)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.apps:create",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    log = open(workdir / f"{config}.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        pinned(cmd, cpu), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bursts", type=int, default=4, help="load bursts per configuration and round"
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of wrk per burst")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--app",
        choices=("auto", "real", "minimal"),
        default="auto",
        help="real: ef_backend.main:create_app; minimal: a bare FastAPI app; auto: real if present",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server/wrk to CPUs")
    parser.add_argument(
        "--inprocess-requests", type=int, default=20000, help="per in-process measurement"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs: {', '.join(sorted(unknown))}")
    app = args.app
    if app == "auto":
        app = "real" if (REPO / "backend/ef_backend/main.py").exists() else "minimal"
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk (make system-deps)", file=sys.stderr)
        return 2
    cpus = os.cpu_count() or 1
    server_cpu, wrk_cpu = (None, None) if args.no_pin or cpus < 2 else ("0", "1")

    rates: dict[str, list[float]] = {c: [] for c in configs}
    cpu_us: dict[str, list[float]] = {c: [] for c in configs}
    inproc: dict[str, list[float]] = {c: [] for c in configs}  # median of each round's repeats
    inproc_runs: dict[str, list[float]] = {c: [] for c in configs}  # every repeat
    with tempfile.TemporaryDirectory(prefix="ef-bench-") as tmp:
        workdir = Path(tmp)
        sink_port = free_port()
        sink = subprocess.Popen(
            # On the load generator's CPU: the collector is another machine's work.
            pinned([sys.executable, str(REPO / "bench/otlp_sink.py"), str(sink_port)], wrk_cpu),
            stderr=subprocess.DEVNULL,
        )
        try:
            for round_no in range(1, args.rounds + 1):
                servers = {c: start_server(c, app, sink_port, workdir, server_cpu) for c in configs}
                try:
                    urls = {
                        c: f"http://127.0.0.1:{port}{ENDPOINT}" for c, (_, port) in servers.items()
                    }
                    for config in configs:
                        wait_ready(urls[config], servers[config][0])
                        if args.warmup > 0:
                            run_wrk(
                                urls[config],
                                duration=args.warmup,
                                connections=args.connections,
                                cpu=wrk_cpu,
                            )
                    for burst in range(args.bursts):
                        # Rotate the order each burst: no configuration always comes first.
                        shift = (round_no + burst) % len(configs)
                        for config in configs[shift:] + configs[:shift]:
                            proc = servers[config][0]
                            before = cpu_seconds(proc.pid)
                            rps, requests = run_wrk(
                                urls[config],
                                duration=args.duration,
                                connections=args.connections,
                                cpu=wrk_cpu,
                            )
                            used = cpu_seconds(proc.pid) - before
                            rates[config].append(rps)
                            cpu_us[config].append(used / requests * 1e6)
                        print(
                            f"round {round_no} burst {burst + 1}: "
                            + " ".join(f"{c} {cpu_us[c][-1]:.1f}" for c in configs)
                            + " CPU us/request",
                            file=sys.stderr,
                        )
                except Exception:
                    for config in configs:
                        log = (workdir / f"{config}.log").read_text()[-2000:]
                        print(f"--- {config}\n{log}", file=sys.stderr)
                    raise
                finally:
                    for proc, _ in servers.values():
                        stop(proc)
                # The in-process runs interleave too, one per configuration per round.
                for config in configs:
                    runs = in_process(
                        config, app, sink_port, workdir, server_cpu, args.inprocess_requests
                    )
                    inproc[config].append(statistics.median(runs))
                    inproc_runs[config].extend(runs)
                    print(
                        f"round {round_no} in-process {config:15s} "
                        f"{inproc[config][-1]:7.1f} CPU us/request",
                        file=sys.stderr,
                    )
        finally:
            sink.terminate()
            sink.wait()

    med_rate = {c: statistics.median(v) for c, v in rates.items()}
    med_cpu = {c: statistics.median(v) for c, v in cpu_us.items()}
    print(
        f"\nGET {ENDPOINT} ({app} app), uvicorn 1 worker, wrk -t1 -c{args.connections} "
        f"-d{args.duration:g}s, {args.rounds} rounds x {args.bursts} interleaved bursts, medians\n"
    )
    print(
        "| configuration | req/s | req/s vs off | server CPU us/request | cost (CPU) "
        "| cost, paired bursts: median (min-max) | cost, best bursts | target |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for config in configs:
        rate_ratio = med_rate[config] / med_rate["off"] if "off" in med_rate else float("nan")
        # The server is CPU-bound on one core: the throughput it loses is 1 - cpu_off/cpu.
        cost = 1 - med_cpu["off"] / med_cpu[config] if "off" in med_cpu else float("nan")
        # The same, burst cycle by burst cycle (the configurations of one cycle ran within
        # seconds of each other): its median is the least disturbed by slow drifts.
        paired = [1 - off / cpu for off, cpu in zip(cpu_us["off"], cpu_us[config], strict=True)]
        spread = (
            f"{statistics.median(paired):.1%} ({min(paired):.1%} to {max(paired):.1%})"
            if config != "off"
            else "-"
        )
        # Neighbours on a shared machine only ever add CPU time: each configuration's lowest
        # CPU per request is its least disturbed burst (timeit's reasoning for taking the min).
        best = 1 - min(cpu_us["off"]) / min(cpu_us[config]) if "off" in cpu_us else float("nan")
        target = TARGETS.get(config)
        verdict = f"<= {target:.0%}: {'met' if cost <= target else 'MISSED'}" if target else ""
        print(
            f"| {config} | {med_rate[config]:.0f} | {rate_ratio:.2f} | {med_cpu[config]:.1f} "
            f"| {cost:.1%} | {spread} | {best:.1%} | {verdict} |"
        )
    med_inproc = {c: statistics.median(v) for c, v in inproc.items() if v}
    if "off" in med_inproc and "off" in med_cpu:
        full = med_cpu["off"]
        print(
            f"\nIn-process (the app called directly, {args.inprocess_requests} requests x 3 per "
            f"round, median of {args.rounds} interleaved rounds, and the least disturbed "
            "repeat): CPU added per request, and its cost to a server spending what the 'off' "
            f"row above does per request without instrumentation ({full:.0f} us, median; "
            f"{min(cpu_us['off']):.0f} us, best burst).\n"
        )
        print(
            "| configuration | CPU us/request | added us | cost (of a full request) "
            "| best: CPU us/request | added us | cost | target |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        best_off = min(cpu_us["off"])
        for config in configs:
            added = med_inproc[config] - med_inproc["off"]
            cost = 1 - full / (full + added)
            lowest = min(inproc_runs[config])
            best_added = lowest - min(inproc_runs["off"])
            best_cost = 1 - best_off / (best_off + best_added)
            target = TARGETS.get(config)
            verdict = f"<= {target:.0%}: {'met' if cost <= target else 'MISSED'}" if target else ""
            print(
                f"| {config} | {med_inproc[config]:.1f} | {added:+.1f} | {cost:.1%} "
                f"| {lowest:.1f} | {best_added:+.1f} | {best_cost:.1%} | {verdict} |"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "app": app,
                    "req_per_s": rates,
                    "server_cpu_us_per_request": cpu_us,
                    "inprocess_cpu_us_per_request": inproc,
                    "inprocess_runs_cpu_us_per_request": inproc_runs,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
