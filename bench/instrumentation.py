"""What instrumentation costs on the cache-hit path: req/s of a cached ``POST /api/v1/speech``
with instrumentation off, metrics only, everything on (every request traced), and everything on
at 10 % sampling, side by side in one run.

One ef_tts (Piper) serves a backend per configuration (``bench/apps.py``), each with its own
data directory and its answer made a cache hit first; traces go to a do-nothing OTLP/HTTP
receiver (``bench/otlp_sink.py``), so they are really encoded and sent. The backends are loaded
with ``wrk`` in short bursts, one after the other in a rotating order, several rounds: each
round gives a paired cost per configuration, and the median is reported. The cost is computed
from the server's CPU time per request (user + system, read with psutil around each burst),
1 - cpu_off / cpu: the throughput a CPU-bound server loses. Unlike req/s it barely moves when
other programs load the machine; req/s is printed too.
Target (docs/performance.md): metrics only at most 5 %.

    .venv/bin/python bench/instrumentation.py                   # what `make bench` runs
    .venv/bin/python bench/instrumentation.py --rounds 6 --duration 3 --json out.json
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.apps import CONFIGS
from bench.cache_hit import TEXT
from bench.stack import (
    REPO,
    burst_parser,
    otlp_sink,
    ratio_row,
    rotated,
    stack,
    workdir,
    write_json,
    wrk,
)
from tests.utils.procs import Server, free_port, start_server

TARGETS = {"metrics": 0.05}
BODY = {"text": TEXT, "format": "wav"}


def config_env(config: str, tts_url: str, sink: str) -> dict[str, str]:
    env = {
        "BENCH_CONFIG": config,
        "PYTHONPATH": str(REPO),
        "EF_TTS_URL": tts_url,
        "EF_RATE_LIMIT": "0",
        # The access log is part of "everything on" only.
        "EF_LOG_LEVEL": "INFO" if config.startswith("all") else "WARNING",
    }
    if config.startswith("all"):
        env |= {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink}
    if config == "all-10pct":
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    return env


def start_backend(config: str, root: Path, tts_url: str, sink: str, **extra: str) -> Server:
    """A backend of ``config`` (``extra``: more environment) with its cache hit primed."""
    port = free_port()
    data = root / f"data-{config}"
    data.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "uvicorn", "bench.apps:create", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = config_env(config, tts_url, sink) | {"EF_DATA_DIR": str(data), **extra}
    server = start_server(f"backend-{config}", cmd, port=port, log_dir=root / "logs", env=env)
    server.wait_ready("/health/ready", timeout=120)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for _ in range(2):
            client.post("/api/v1/speech", json=BODY).raise_for_status()
        if client.post("/api/v1/speech", json=BODY).headers.get("x-ef-cache") != "hit":
            raise RuntimeError(f"{config}: the request is not a cache hit")
    return server


def main() -> int:
    parser = burst_parser(__doc__, rounds=5)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if "off" not in configs or set(configs) - set(CONFIGS):
        parser.error(f"--configs: a subset of {', '.join(CONFIGS)} that includes off")

    with workdir(args.keep) as root, stack(root) as running, otlp_sink() as sink:
        engine = running.engine()
        backends = {}
        for config in configs:
            backends[config] = start_backend(config, root, engine.url, sink)
            running.servers.append(backends[config])
        rates: dict[str, list[float]] = {config: [] for config in configs}
        cpu_us: dict[str, list[float]] = {config: [] for config in configs}
        for round_no in range(args.rounds):
            for config in rotated(configs, round_no):
                url = backends[config].url + "/api/v1/speech"
                server_proc = backends[config].proc
                assert server_proc is not None
                process = psutil.Process(server_proc.pid)
                before = sum(process.cpu_times()[:2])
                rates[config].append(
                    wrk(
                        url,
                        duration=args.duration,
                        connections=args.connections,
                        body=BODY,
                        scripts=root,
                    )
                )
                used = sum(process.cpu_times()[:2]) - before
                cpu_us[config].append(1e6 * used / (rates[config][-1] * args.duration))
    costs = {
        config: [1 - off / cpu for cpu, off in zip(cpu_us[config], cpu_us["off"], strict=True)]
        for config in configs
        if config != "off"
    }
    print(
        f"Cached POST /api/v1/speech (a WAV of about 100 kB), wrk -t1 -c{args.connections}, "
        f"{args.rounds} rounds of {args.duration:g} s bursts"
    )
    print()
    print("| configuration | req/s (median) | server CPU µs per request (median) |")
    print("|---|---|---|")
    for config in configs:
        rate, cpu = statistics.median(rates[config]), statistics.median(cpu_us[config])
        print(f"| {config} | {rate:.0f} | {cpu:.0f} |")
    print()
    print("| cost against off (median of paired rounds) | measured | target | |")
    print("|---|---|---|---|")
    for config, values in costs.items():
        value = statistics.median(values)
        target = TARGETS.get(config)
        if target is None:
            print(f"| {config} | {value:.3f} | reported | |")
        else:
            print(ratio_row(config, value, f"<= {target:.0%}", value <= target))
    write_json(
        args.json,
        {"req_per_s": rates, "cpu_us_per_request": cpu_us, "cost": costs, "targets": TARGETS},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
