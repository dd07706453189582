"""Uncached synthesis through the backend against the raw engine call, interleaved.

Each iteration asks for a text nobody asked for before (a counter in it), once from ef_tts
directly (``POST /api/tts``, what the backend's worker sends) and once through ``POST
/api/v1/speech`` (normalise, plan, queue, worker, engine, encode, cache, reply), alternating
which goes first. p50 and p95 of each and their ratio are reported for a short phrase and for a
5-sentence paragraph; for the paragraph also the first audio byte of the streaming endpoint
against the whole raw synthesis. Targets (docs/performance.md): backend/engine at most 1.10x
at p50 and 1.20x at p95; time to first audio at most 0.35x.

    .venv/bin/python bench/synthesis.py                      # what `make bench` runs
    .venv/bin/python bench/synthesis.py --iterations 40 --json out.json
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import bench_parser, percentile, ratio_row, stack, workdir, write_json

SHORT = "The parcel number {n} arrived at the door this morning."
# Every sentence carries the counter, so none of them is in the sentence cache either.
PARAGRAPH = (
    "Parcel {n} left the warehouse at dawn. Parcel {n} crossed the river before noon. "
    "The driver of parcel {n} stopped once for fuel. Rain began as parcel {n} reached the hills. "
    "By evening parcel {n} was safely at the door."
)
TARGETS = {"p50": 1.10, "p95": 1.20, "first_audio": 0.35}


def _engine(client: httpx.Client, text: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/tts", data={"text": text, "speaker_id": "", "style_wav": ""})
    response.raise_for_status()
    return time.perf_counter() - started


def _backend(client: httpx.Client, text: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/speech", json={"text": text, "format": "wav"})
    response.raise_for_status()
    if response.headers["x-ef-cache"] != "miss":
        raise RuntimeError("the benchmark text was cached already")
    return time.perf_counter() - started


def _first_audio(client: httpx.Client, text: str) -> float:
    started = time.perf_counter()
    body = {"text": text, "format": "pcm", "stream": True}
    with client.stream("POST", "/api/v1/speech", json=body) as response:
        response.raise_for_status()
        first = None
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the stream sent no audio")
    return first


def run(engine_url: str, backend_url: str, iterations: int, offset: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        k: [] for k in ("short_engine", "short_backend", "para_engine", "para_backend", "ttfa")
    }
    with (
        httpx.Client(base_url=engine_url, timeout=120) as engine,
        httpx.Client(base_url=backend_url, timeout=120) as backend,
    ):
        for kind, template in (("short", SHORT), ("para", PARAGRAPH)):
            _engine(engine, template.format(n="warm-up"))  # first call warms Piper's caches
            for i in range(iterations):
                n = offset + i
                calls: list[tuple[str, Callable[[str], float]]] = [
                    (f"{kind}_engine", lambda t: _engine(engine, t)),
                    (f"{kind}_backend", lambda t: _backend(backend, t)),
                ]
                if kind == "para":
                    calls.append(("ttfa", lambda t: _first_audio(backend, t)))
                if i % 2:
                    calls.reverse()
                for name, call in calls:
                    # The streaming request gets a text of its own (nothing cached yet).
                    text = template.format(n=f"{n}-stream" if name == "ttfa" else n)
                    times[name].append(call(text))
    return times


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args()

    with workdir(args.keep) as root, stack(root) as running:
        engine = running.engine()
        backend = running.backend()
        times = run(engine.url, backend.url, args.iterations, offset=int(time.time()))
    print(f"Uncached synthesis, {args.iterations} interleaved iterations (seconds)")
    print()
    print("| what | engine p50 | backend p50 | engine p95 | backend p95 |")
    print("|---|---|---|---|---|")
    ratios: dict[str, float] = {}
    for kind, label in (("short", "short phrase"), ("para", "5-sentence paragraph")):
        eng, back = times[f"{kind}_engine"], times[f"{kind}_backend"]
        p = {q: (percentile(eng, q), percentile(back, q)) for q in (0.5, 0.95)}
        print(
            f"| {label} | {p[0.5][0]:.3f} | {p[0.5][1]:.3f} | {p[0.95][0]:.3f} | {p[0.95][1]:.3f} |"
        )
        ratios[f"{kind}_p50"] = p[0.5][1] / p[0.5][0]
        ratios[f"{kind}_p95"] = p[0.95][1] / p[0.95][0]
    ratios["first_audio"] = statistics.median(times["ttfa"]) / percentile(times["para_engine"], 0.5)
    print()
    print("| ratio | measured | target | |")
    print("|---|---|---|---|")
    for name, value in ratios.items():
        target = TARGETS[name.split("_", 1)[1] if name != "first_audio" else name]
        print(ratio_row(name, value, f"<= {target}", value <= target))
    first = statistics.median(times["ttfa"])
    print(f"\nfirst audio byte (paragraph, streamed pcm): p50 {first:.3f} s")
    write_json(args.json, {"seconds": times, "ratios": ratios, "targets": TARGETS})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
