"""The soak: a mixed load for ten minutes, with one engine restart in the middle.

A few client threads loop over what users and operators do: cache hits, new texts (misses),
streamed speech, jobs (submit, poll, fetch the audio), admin reads and /metrics scrapes. Half
way through ef_tts is stopped and started again on the same port. Expected answers during the
restart are 503 ``engine_unavailable`` (and 504 for a request that waited it out); anything else
that is not 2xx is an unexpected error. At the end the queue must drain. The backend's resident
memory, open file descriptors and threads are sampled every ``--sample`` seconds; the baseline is
taken after a warm-up of the same mixed load (``--warmup``), when the thread pools, database
connections and caches have grown to their working size. Targets (docs/reliability.md): zero
unexpected errors, RSS growth under 10 % from the baseline, the queue drained, no descriptor or
thread growth (the second half of the run never above the first half's peak, +2 allowed).

    .venv/bin/python bench/soak.py                    # ten minutes (what `make bench` runs)
    .venv/bin/python bench/soak.py --duration 120     # a shorter run; say so with its figures
"""

from __future__ import annotations

import collections
import itertools
import random
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_parser, stack, workdir, write_json

HITS = [f"Soak test phrase number {n} that stays in the cache." for n in range(8)]
EXPECTED_DURING_RESTART = {503, 504}


class Load:
    """The client threads and what they saw."""

    def __init__(self, base: str, seconds: float) -> None:
        self.base = base
        self.deadline = time.monotonic() + seconds
        self.warming = threading.Event()
        self.counts: collections.Counter[str] = collections.Counter()
        self.unexpected: list[str] = []
        self.restarting = threading.Event()
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def _note(self, action: str, response: httpx.Response) -> None:
        ok = response.status_code < 400
        expected = self.restarting.is_set() and response.status_code in EXPECTED_DURING_RESTART
        with self._lock:
            if not self.warming.is_set():
                self.counts[f"{action} {'ok' if ok else response.status_code}"] += 1
            if not ok and not expected:
                self.unexpected.append(f"{action}: {response.status_code} {response.text[:200]}")

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=120) as client:
            while time.monotonic() < self.deadline:
                action = rng.choices(
                    ["hit", "miss", "stream", "job", "admin", "metrics"],
                    weights=[50, 8, 6, 6, 10, 20],
                )[0]
                try:
                    getattr(self, f"_{action}")(client, rng)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.unexpected.append(f"{action}: {type(exc).__name__} {exc}")
                time.sleep(0.02)

    def _hit(self, client: httpx.Client, rng: random.Random) -> None:
        self._note("hit", client.post("/api/v1/speech", json={"text": rng.choice(HITS)}))

    def _miss(self, client: httpx.Client, rng: random.Random) -> None:
        text = f"A new soak sentence, number {next(self._ids)}, {rng.random():.6f}."
        self._note("miss", client.post("/api/v1/speech", json={"text": text}))

    def _stream(self, client: httpx.Client, rng: random.Random) -> None:
        text = f"Streamed soak text {next(self._ids)}. It has two sentences {rng.random():.6f}."
        body = {"text": text, "format": "pcm", "stream": True}
        with client.stream("POST", "/api/v1/speech", json=body) as response:
            for _ in response.iter_raw():
                pass
        self._note("stream", response)

    def _job(self, client: httpx.Client, rng: random.Random) -> None:
        text = f"A soak job, number {next(self._ids)}, {rng.random():.6f}."
        created = client.post("/api/v1/jobs", json={"text": text, "format": "mp3"})
        self._note("job", created)
        if created.status_code != 202:
            return
        job_id = created.json()["id"]
        until = time.monotonic() + 180
        while time.monotonic() < until:
            job = client.get(f"/api/v1/jobs/{job_id}")
            self._note("job poll", job)
            if job.json().get("status") == "succeeded":
                self._note("job audio", client.get(f"/api/v1/jobs/{job_id}/audio"))
                return
            if job.json().get("status") in ("failed", "cancelled"):
                with self._lock:
                    self.unexpected.append(f"job {job_id} ended {job.json()}")
                return
            time.sleep(0.25)

    def _admin(self, client: httpx.Client, rng: random.Random) -> None:
        path = rng.choice(["/api/admin/queue", "/api/admin/cache", "/health/ready"])
        self._note("admin", client.get(path))

    def _metrics(self, client: httpx.Client, rng: random.Random) -> None:
        self._note("metrics", client.get("/metrics"))


def _usage(pid: int) -> dict[str, float]:
    process = psutil.Process(pid)
    return {
        "rss_mb": process.memory_info().rss / 2**20,
        "fds": float(process.num_fds()),
        "threads": float(process.num_threads()),
    }


class Sampler:
    """The backend's RSS, descriptors and threads every ``interval`` seconds, on a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append({"t": time.monotonic() - self._started, **_usage(self.pid)})

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def _no_growth(samples: list[dict[str, float]], key: str, allowed: float) -> bool:
    """The second half of the run never above the first half's peak (+ ``allowed``)."""
    half = len(samples) // 2
    first, second = samples[:half], samples[half:]
    if not first or not second:
        return True
    return max(s[key] for s in second) <= max(s[key] for s in first) + allowed


def _drained(base: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = httpx.get(f"{base}/api/admin/queue", timeout=30).json()["counts"]
        if counts.get("queued", 0) == counts.get("running", 0) == 0:
            return True
        time.sleep(1)
    return False


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of load before")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()

    with workdir(args.keep) as root, stack(root) as running:
        engine = running.engine()
        backend = running.backend(EF_QUEUE_MAX="1000")
        assert backend.proc is not None
        with httpx.Client(base_url=backend.url, timeout=120) as client:
            for text in HITS:
                client.post("/api/v1/speech", json={"text": text}).raise_for_status()
        # The warm-up is the same mixed load, not counted: the baseline is its working size.
        load = Load(backend.url, args.warmup + args.duration)
        load.warming.set()
        threads = [
            threading.Thread(target=load.run, args=(seed,), daemon=True)
            for seed in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(args.warmup)
        load.warming.clear()
        before = _usage(backend.proc.pid)
        sampler = Sampler(backend.proc.pid, args.sample)
        started = time.monotonic()
        time.sleep(args.duration / 2)
        restart_at = time.monotonic() - started
        load.restarting.set()
        engine = running.restart(engine)
        time.sleep(5)  # the backend's probe and the workers find it again
        load.restarting.clear()
        for thread in threads:
            thread.join()
        drained = _drained(backend.url, timeout=300)
        after = _usage(backend.proc.pid)
        samples = [*sampler.stop(), {"t": time.monotonic() - started, **after}]

    growth = after["rss_mb"] / before["rss_mb"] - 1
    print(
        f"Soak: {args.duration:.0f} s after {args.warmup:.0f} s of warm-up, "
        f"{args.clients} clients, engine restart at {restart_at:.0f} s"
    )
    print()
    quarters = [samples[max(0, round(len(samples) * q) - 1)] for q in (0.25, 0.5, 0.75, 1.0)]
    print("| what | after warm-up | " + " | ".join(f"{s['t']:.0f} s" for s in quarters) + " |")
    print("|---|---|" + "---|" * len(quarters))
    for key in ("rss_mb", "fds", "threads"):
        row = " | ".join(f"{s[key]:.1f}" for s in quarters)
        print(f"| {key} | {before[key]:.1f} | {row} |")
    print()
    print(f"requests: {sum(load.counts.values())}; by outcome: {dict(sorted(load.counts.items()))}")
    print(f"unexpected errors: {len(load.unexpected)}")
    for line in load.unexpected[:20]:
        print(f"  {line}")
    verdicts = {
        "zero unexpected errors": not load.unexpected,
        "RSS growth < 10 %": growth < 0.10,
        "queue drained": drained,
        "no fd growth": _no_growth(samples, "fds", 2),
        "no thread growth": _no_growth(samples, "threads", 2),
    }
    print(f"RSS growth: {growth * 100:.1f} %")
    for name, met in verdicts.items():
        print(f"| {name} | {'met' if met else 'MISSED'} |")
    write_json(
        args.json,
        {
            "duration_s": args.duration,
            "before": before,
            "after": after,
            "samples": samples,
            "warmup_s": args.warmup,
            "counts": dict(load.counts),
            "unexpected": load.unexpected,
            "verdicts": verdicts,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
