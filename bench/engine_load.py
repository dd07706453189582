"""The engine under load: is it kept busy, and does a second replica add throughput?

1. Engine busy: a backend with ``EF_TTS_CONCURRENCY`` workers gets 4x as many distinct jobs at
   once; the engine's busy share is the time the workers spent in engine calls (the backend's
   ``ef_tts_synthesis_duration_seconds_sum``) over workers x the wall time from submitting to
   the last job's end. Target: at least 90 % (no idle gaps between jobs).
2. Replicas: the same batch through one ef_tts with one worker, then through two ef_tts
   replicas (``EF_TTS_URL`` listing both) with one worker each. Target: at least 1.7x the jobs
   per second. Needs a core per replica to show anything.

    .venv/bin/python bench/engine_load.py                 # what `make bench` runs
    .venv/bin/python bench/engine_load.py --workers 2 --per-worker 4
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_parser, stack, workdir, write_json


def _engine_seconds(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    pattern = r"^ef_tts_synthesis_duration_seconds_sum\{[^}]*\} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, flags=re.M))


def batch(base: str, jobs: int, tag: str) -> tuple[float, float]:
    """Submit ``jobs`` distinct one-sentence jobs at once; (wall seconds, engine seconds)."""
    engine_before = _engine_seconds(base)
    with httpx.Client(base_url=base, timeout=120) as client:
        started = time.monotonic()
        ids = [
            client.post(
                "/api/v1/jobs",
                json={"text": f"Load test {tag}, job number {n}, spoken once and cached."},
            ).json()["id"]
            for n in range(jobs)
        ]
        pending = set(ids)
        while pending:
            for job_id in list(pending):
                status = client.get(f"/api/v1/jobs/{job_id}").json()["status"]
                if status == "succeeded":
                    pending.discard(job_id)
                elif status in ("failed", "cancelled"):
                    raise RuntimeError(f"job {job_id} {status}")
            time.sleep(0.05)
        wall = time.monotonic() - started
    return wall, _engine_seconds(base) - engine_before


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="EF_TTS_CONCURRENCY for step 1")
    parser.add_argument("--per-worker", type=int, default=4, help="jobs per worker")
    args = parser.parse_args()
    jobs = args.workers * args.per_worker
    tag = str(int(time.time()))

    with workdir(args.keep) as root, stack(root) as running:
        first = running.engine()
        second = running.engine()
        busy_backend = running.backend(first.url, name="busy", EF_TTS_CONCURRENCY=str(args.workers))
        batch(busy_backend.url, 2, f"{tag} warm-up")
        wall, engine = batch(busy_backend.url, jobs, f"{tag} busy")
        busy = engine / (args.workers * wall)
        one = running.backend(first.url, name="one", EF_TTS_CONCURRENCY="1")
        two = running.backend(f"{first.url},{second.url}", name="two", EF_TTS_CONCURRENCY="2")
        batch(two.url, 2, f"{tag} warm-up")  # each replica's first call warms its Piper
        one_wall, _ = batch(one.url, jobs, f"{tag} one replica")
        two_wall, _ = batch(two.url, jobs, f"{tag} two replicas")
    scaling = one_wall / two_wall
    print(
        f"Engine busy: {jobs} jobs on {args.workers} workers, {wall:.1f} s wall, "
        f"{engine:.1f} s in engine calls: {busy * 100:.0f} % busy (target >= 90 %)"
    )
    print(
        f"Replicas: {jobs} jobs, one replica {jobs / one_wall:.2f} jobs/s, two replicas "
        f"{jobs / two_wall:.2f} jobs/s: {scaling:.2f}x (target >= 1.7x)"
    )
    write_json(
        args.json,
        {
            "busy": busy,
            "wall_s": wall,
            "engine_s": engine,
            "one_s": one_wall,
            "two_s": two_wall,
            "scaling": scaling,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
