"""Cache hits against ``GET /health/live`` on the same backend, side by side in one run.

A cache hit is what users wait for most. Three routes answer from the cache: ``POST
/api/v1/speech``, the OpenAI ``POST /v1/audio/speech`` and ``GET /api/v1/jobs/{id}/audio``.
Each is primed once (one real Piper synthesis), then all four URLs are loaded with ``wrk`` in
short bursts, one after the other in a rotating order, several rounds: each round gives a
paired ratio (hit req/s over /health/live req/s), and the median ratio is reported.
Target (docs/performance.md): every route at least 0.5x /health/live.

    .venv/bin/python bench/cache_hit.py                       # what `make bench` runs
    .venv/bin/python bench/cache_hit.py --rounds 5 --duration 3 --json out.json
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import (
    burst_parser,
    cpu_seconds,
    ratio_row,
    rotated,
    stack,
    workdir,
    write_json,
    wrk,
)
from tests.backend.api.helpers import wait_job

TARGET = 0.5
#: About 2.9 s of speech, a WAV of 139 kB (the issue measured with one of 95 kB).
TEXT = "Hello there, this is a cached sentence for the benchmark."


def prime(base: str) -> dict[str, tuple[str, dict[str, object] | None]]:
    """Make each route's answer a cache hit; the URL (and body) that hits it."""
    speech: dict[str, object] = {"text": TEXT, "format": "wav"}
    openai: dict[str, object] = {
        "model": "tts-1",
        "input": TEXT,
        "voice": "alloy",
        "response_format": "mp3",
    }
    with httpx.Client(base_url=base, timeout=120) as client:
        for path, body in (("/api/v1/speech", speech), ("/v1/audio/speech", openai)):
            client.post(path, json=body).raise_for_status()
            again = client.post(path, json=body)
            again.raise_for_status()
            if again.headers.get("x-ef-cache") not in (None, "hit"):
                raise RuntimeError(f"{path} is not a cache hit the second time")
        job = client.post("/api/v1/jobs", json={**speech, "format": "flac"}).json()
        wait_job(client, job["id"])
        client.get(f"/api/v1/jobs/{job['id']}/audio").raise_for_status()
    return {
        "health": ("/health/live", None),
        "speech": ("/api/v1/speech", speech),
        "openai": ("/v1/audio/speech", openai),
        "job_audio": (f"/api/v1/jobs/{job['id']}/audio", None),
    }


def main() -> int:
    args = burst_parser(__doc__).parse_args()

    with workdir(args.keep) as root, stack(root) as running:
        running.engine()
        backend = running.backend()
        targets = prime(backend.url)
        names = list(targets)
        rates: dict[str, list[float]] = {name: [] for name in names}
        cpu_us: dict[str, list[float]] = {name: [] for name in names}
        assert backend.proc is not None
        for round_no in range(args.rounds):
            for name in rotated(names, round_no):
                path, body = targets[name]
                before = cpu_seconds(backend.proc.pid)
                rate = wrk(
                    backend.url + path,
                    duration=args.duration,
                    connections=args.connections,
                    body=body,
                    scripts=root,
                )
                used = cpu_seconds(backend.proc.pid) - before
                rates[name].append(rate)
                cpu_us[name].append(used / (rate * max(1, round(args.duration))) * 1e6)
    ratios = {
        name: [hit / live for hit, live in zip(rates[name], rates["health"], strict=True)]
        for name in names
        if name != "health"
    }
    print(f"Cache hits vs GET /health/live, wrk -t1 -c{args.connections}, {args.rounds} rounds")
    print()
    print("| route | req/s (median) | server CPU µs per request (median) |")
    print("|---|---|---|")
    for name in names:
        print(
            f"| {name} | {statistics.median(rates[name]):.0f} "
            f"| {statistics.median(cpu_us[name]):.0f} |"
        )
    print()
    print("| ratio to /health/live (median of paired rounds) | measured | target | |")
    print("|---|---|---|---|")
    met = True
    for name, values in ratios.items():
        value = statistics.median(values)
        met &= value >= TARGET
        print(ratio_row(name, value, f">= {TARGET}", value >= TARGET))
    # The same ratio from CPU time (what a CPU-bound server can do), steadier on a busy machine.
    print()
    print("| CPU per /health/live request over CPU per hit (median) | measured | target | |")
    print("|---|---|---|---|")
    health_cpu = statistics.median(cpu_us["health"])
    for name in ratios:
        value = health_cpu / statistics.median(cpu_us[name])
        print(ratio_row(name, value, f">= {TARGET}", value >= TARGET))
    write_json(
        args.json,
        {"req_per_s": rates, "cpu_us_per_request": cpu_us, "ratios": ratios, "target": TARGET},
    )
    print("all targets met" if met else "some targets MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
