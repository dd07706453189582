"""Coalescing and memory, on one real stack (the cost of a scrape is bench/scrape.py).

1. Coalescing: 50 identical requests at once make exactly one synthesis (counted
   by the backend's ``ef_tts_synthesis_duration_seconds_count``, one per sentence).
2. Memory: the backend's resident memory idle (after start-up and one request of each kind)
   and after ``--requests`` more (``wrk``: cache hits, then /health/live); ef_tts's with Piper
   loaded. Target: backend growth under 10 %.

    .venv/bin/python bench/capacity.py                        # what `make bench` runs
    .venv/bin/python bench/capacity.py --requests 20000       # shorter
"""

from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_parser, stack, workdir, write_json, wrk

TEXT = "Fifty callers ask for exactly these words at the same moment."


def _syntheses(backend_url: str) -> float:
    """Engine calls the backend's workers made (its health probe's sample is not counted)."""
    text = httpx.get(f"{backend_url}/metrics", timeout=30).text
    pattern = r"^ef_tts_synthesis_duration_seconds_count\{[^}]*\} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, flags=re.M))


def _rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    total: int = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    return total / 2**20


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()

    with workdir(args.keep) as root, stack(root) as running:
        engine = running.engine()
        backend = running.backend()
        assert backend.proc is not None and engine.proc is not None
        base = backend.url
        # 1. Coalescing.
        before = _syntheses(base)
        with ThreadPoolExecutor(50) as pool:
            answers = list(
                pool.map(
                    lambda _: httpx.post(f"{base}/api/v1/speech", json={"text": TEXT}, timeout=300),
                    range(50),
                )
            )
        statuses = sorted({r.status_code for r in answers})
        syntheses = _syntheses(base) - before
        # 2. Memory (one request of each kind made already).
        for path in ("/health/live", "/metrics", "/api/admin/queue", "/api/v1/voices"):
            httpx.get(base + path, timeout=30)
        idle = _rss_mb(backend.proc.pid)
        started, served = time.monotonic(), 0
        while served < args.requests:
            # Bursts of hits and of /health/live until the count is reached (wrk counts by time).
            rate = wrk(f"{base}/api/v1/speech", duration=5, body={"text": TEXT}, scripts=root)
            served += int(rate * 5)
            rate = wrk(f"{base}/health/live", duration=5, scripts=root)
            served += int(rate * 5)
        loaded = _rss_mb(backend.proc.pid)
        engine_rss = _rss_mb(engine.proc.pid)
        elapsed = time.monotonic() - started

    growth = loaded / idle - 1
    print(
        f"Coalescing: 50 identical concurrent requests -> statuses {statuses}, "
        f"{syntheses:.0f} engine synthesis call(s) (target: exactly 1 per sentence, 1 here)"
    )
    print(
        f"Memory: backend RSS idle {idle:.1f} MB, after ~{served} requests ({elapsed:.0f} s) "
        f"{loaded:.1f} MB, growth {growth * 100:.1f} % (target < 10 %); "
        f"ef_tts with Piper {engine_rss:.1f} MB"
    )
    write_json(
        args.json,
        {
            "coalescing": {"statuses": statuses, "syntheses": syntheses},
            "memory_mb": {"idle": idle, "loaded": loaded, "requests": served, "ef_tts": engine_rss},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
