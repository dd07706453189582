"""The cost of a Prometheus scrape of a backend with 50 route templates after 100,000 requests.

The real app (its middleware, metrics and scrape-time collector) with synthetic routes added
until it has ``--routes`` route templates (``bench/apps.py``, ``BENCH_EXTRA_ROUTES``), on a real
Piper ef_tts; tracing off as the compose files run it (``--config all-10pct``: on, exported to
bench/otlp_sink.py, so that Prometheus gets OpenMetrics with exemplars). ``wrk`` sends a
round-robin mix: every cheap real operation (cache hits of the speech and OpenAI routes, job and
admin reads, health, docs, the frontend), a few errors (404 of an unknown job and of an unknown
path, 422 of a bad body or path parameter) and every synthetic route with a new ``item_id`` each
time (the raw paths never repeat, the templates do). The run fails if any request got a status
the mix does not expect (a 5xx, say).

At each checkpoint (start-up, one pass of the mix, half of ``--requests`` and all of them,
counted by the backend's own ``ef_http_requests_total``) it reports the route label values that
served traffic and the series in ``/metrics``; after half and after all of the requests,
p50 / p95 of ``--scrapes`` sequential scrapes with the Accept header Prometheus sends, the body
size, and the server's own mean time per scrape (its ``ef_http_request_duration_seconds`` of
``/metrics``). Target (issue 18): p95 under 20 ms, and series bounded: the same count after half
and after all of the requests.

    .venv/bin/python bench/scrape.py                          # what `make bench` runs
    .venv/bin/python bench/scrape.py --requests 20000         # shorter
    .venv/bin/python bench/scrape.py --config all-10pct       # tracing on (10 % sampled)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.apps import CONFIGS, extra_route
from bench.cache_hit import TEXT
from bench.instrumentation import BODY, start_backend
from bench.stack import bench_parser, otlp_sink, percentile, stack, workdir, write_json
from tests.backend.api.helpers import wait_job

#: What Prometheus 2.42 (Debian's, the one monitoring/ is tested with) asks for.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
OPENAI_BODY = {"model": "tts-1", "input": TEXT, "response_format": "wav"}
UNKNOWN_JOB = "00000000-0000-0000-0000-000000000000"
UNMATCHED = "<unmatched>"
TARGET_P95_MS = 20.0
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Call:
    """One request of the mix, the route template it must be counted under and its status.
    ``numbered``: the request's sequence number is appended to the path (a new raw path)."""

    method: str
    path: str
    route: str
    status: int
    body: Mapping[str, object] | None = None
    numbered: bool = False


@dataclass
class Checkpoint:
    requests: int
    routes: list[str]
    series: int
    load: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    server_mean_ms: float | None = None
    body_bytes: int | None = None
    content_type: str | None = None


def real_calls(job_id: str) -> list[Call]:
    """Every cheap operation of the app, and a few of its errors."""
    job, admin_job = "/api/v1/jobs/{job_id}", "/api/admin/jobs/{job_id}"
    calls = [
        Call("POST", "/api/v1/speech", "/api/v1/speech", 200, BODY),
        Call("POST", "/api/v1/speech", "/api/v1/speech", 422, {"text": ""}),
        Call("POST", "/v1/audio/speech", "/v1/audio/speech", 200, OPENAI_BODY),
        Call("POST", "/api/v1/jobs", "/api/v1/jobs", 422, {}),
        Call("GET", f"/api/v1/jobs/{job_id}", job, 200),
        Call("GET", f"/api/v1/jobs/{UNKNOWN_JOB}", job, 404),
        Call("DELETE", f"/api/v1/jobs/{UNKNOWN_JOB}", job, 404),
        Call("GET", f"/api/v1/jobs/{job_id}/audio", job + "/audio", 200),
        Call("GET", f"/api/admin/jobs/{job_id}", admin_job, 200),
        Call("DELETE", f"/api/admin/jobs/{UNKNOWN_JOB}", admin_job, 404),
        Call("POST", f"/api/admin/jobs/{UNKNOWN_JOB}/retry", admin_job + "/retry", 404),
        Call("GET", "/", "/{path}", 200),
        Call("GET", "/no/such/page", UNMATCHED, 404),
    ]
    plain = (
        "/api/v1/jobs /api/v1/voices /api/v1/limits /v1/models /api/admin/queue "
        "/api/admin/jobs/failed /api/admin/jobs /api/admin/cache /api/admin/cache/hit-ratio "
        "/api/admin/links /api/admin/errors /health /health/ready /health/live /health/tts "
        "/docs /redoc /openapi.json"
    )
    return calls + [Call("GET", path, path, 200) for path in plain.split()]


def extra_calls(count: int) -> list[Call]:
    """Each synthetic route with a new item id per request, and one 422 (not a number)."""
    calls = [
        Call("GET", extra_route(n).replace("{item_id}", ""), extra_route(n), 200, numbered=True)
        for n in range(count)
    ]
    if count:
        calls.append(Call("GET", extra_route(0).replace("{item_id}", "x"), extra_route(0), 422))
    return calls


def synthetic_count(routes: int) -> int:
    """Synthetic routes needed for ``routes`` templates with traffic (``/metrics`` included)."""
    real = {call.route for call in real_calls("")} - {UNMATCHED} | {"/metrics"}
    return max(0, routes - len(real))


def wrk_script(calls: Iterable[Call]) -> str:
    """A wrk script that sends ``calls`` round robin (formatted once, numbered paths each time)."""
    rows = []
    for call in calls:
        body = "nil" if call.body is None else json.dumps(json.dumps(call.body))
        numbered = "true" if call.numbered else "false"
        rows.append(f'  {{m = "{call.method}", p = "{call.path}", b = {body}, n = {numbered}}},')
    return "\n".join(
        [
            "local calls = {",
            *rows,
            "}",
            'local json = {["Content-Type"] = "application/json"}',
            "local i = 0",
            "init = function(args)",
            "  for _, c in ipairs(calls) do",
            "    if not c.n then c.f = wrk.format(c.m, c.p, c.b and json or nil, c.b) end",
            "  end",
            "end",
            "request = function()",
            "  i = i + 1",
            "  local c = calls[i % #calls + 1]",
            "  if c.n then return wrk.format(c.m, c.p .. i) end",
            "  return c.f",
            "end",
            "",
        ]
    )


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> None:
    """``wrk`` for ``seconds``; statuses are checked on the server's counters afterwards."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if not re.search(r"\d+ requests in", out):
        raise RuntimeError(f"cannot read wrk output:\n{out}")


def served(text: str) -> dict[Key, float]:
    """``ef_http_requests_total`` by (method, route, status), the series above zero."""
    counts = {}
    for family in text_string_to_metric_families(text):
        if family.name == "ef_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value > 0:
                    labels = sample.labels
                    counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    return counts


def scrape_seconds(text: str) -> tuple[float, float]:
    """(sum, count) of the server's own duration histogram of ``GET /metrics``."""
    found = {"sum": 0.0, "count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "ef_http_request_duration_seconds":
            for sample in family.samples:
                kind = sample.name.rpartition("_")[2]
                if kind in found and sample.labels.get("route") == "/metrics":
                    found[kind] = sample.value
    return found["sum"], found["count"]


def checkpoint(client: httpx.Client, scrapes: int = 0) -> Checkpoint:
    """Series, route label values and requests served now; ``scrapes`` timed scrapes."""
    text = client.get("/metrics").text
    counts = served(text)
    point = Checkpoint(
        requests=int(sum(counts.values())),
        routes=sorted({route for _, route, _ in counts}),
        series=sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        load=os.getloadavg()[0],
    )
    if scrapes:
        before = scrape_seconds(text)
        times = []
        for _ in range(scrapes):
            started = time.perf_counter()
            answer = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
            times.append(time.perf_counter() - started)
        after = scrape_seconds(client.get("/metrics").text)
        point.p50_ms = percentile(times, 0.5) * 1000
        point.p95_ms = percentile(times, 0.95) * 1000
        point.server_mean_ms = 1000 * (after[0] - before[0]) / (after[1] - before[1])
        point.body_bytes = len(answer.content)
        point.content_type = answer.headers["content-type"]
    return point


def prepare(client: httpx.Client) -> str:
    """Make the OpenAI answer a cache hit and one finished job; its id."""
    for _ in range(2):
        client.post("/v1/audio/speech", json=OPENAI_BODY).raise_for_status()
    job_id = str(client.post("/api/v1/jobs", json=BODY).raise_for_status().json()["id"])
    wait_job(client, job_id)
    return job_id


def serve(client: httpx.Client, url: str, script: Path, target: int, connections: int) -> None:
    """wrk bursts until the backend has counted ``target`` requests (sized by the last rate)."""
    done, rate = int(sum(served(client.get("/metrics").text).values())), 0.0
    while done < target:
        seconds = 1 if rate == 0 else max(1, min(30, round((target - done) / rate)))
        started = time.monotonic()
        run_wrk(url, script, seconds, connections)
        now = int(sum(served(client.get("/metrics").text).values()))
        rate, done = (now - done) / (time.monotonic() - started), now


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--routes", type=int, default=50, help="route templates with traffic")
    parser.add_argument("--scrapes", type=int, default=100)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--config", choices=[c for c in CONFIGS if c != "off"], default="metrics")
    args = parser.parse_args()

    extra = synthetic_count(args.routes)
    points: dict[str, Checkpoint] = {}
    with workdir(args.keep) as root, stack(root) as running, otlp_sink() as sink:
        engine = running.engine()
        backend = start_backend(args.config, root, engine.url, sink, BENCH_EXTRA_ROUTES=str(extra))
        running.servers.append(backend)
        with httpx.Client(base_url=backend.url, timeout=120) as client:
            points["start-up"] = checkpoint(client)
            calls = real_calls(prepare(client)) + extra_calls(extra)
            for call in calls:  # one pass, each status checked
                path = call.path + ("1" if call.numbered else "")
                status = client.request(call.method, path, json=call.body).status_code
                if status != call.status:
                    raise RuntimeError(f"{call.method} {path}: {status}, not {call.status}")
            points["one pass of the mix"] = checkpoint(client)
            script = root / "mix.lua"
            script.write_text(wrk_script(calls))
            for name, target in (("half", args.requests // 2), ("all", args.requests)):
                serve(client, backend.url, script, target, args.connections)
                points[name] = checkpoint(client, args.scrapes)
            final = served(client.get("/metrics").text)

    expected = {(c.method, c.route, str(c.status)) for c in calls}
    expected |= {("GET", "/metrics", "200"), ("POST", "/api/v1/jobs", "202")}  # prepare()'s job
    unexpected = {key: count for key, count in final.items() if key not in expected}
    if unexpected:
        raise RuntimeError(f"statuses the mix does not expect: {unexpected}")
    _report(points, args, extra, len(calls))
    write_json(
        args.json,
        {
            "synthetic_routes": extra,
            "checkpoints": {name: asdict(point) for name, point in points.items()},
            "target_p95_ms": TARGET_P95_MS,
        },
    )
    return 0


def _report(points: dict[str, Checkpoint], args: argparse.Namespace, extra: int, mix: int) -> None:
    last, half = points["all"], points["half"]
    print(
        f"GET /metrics of the app ({args.config}) with {extra} synthetic routes added, after a "
        f"round-robin mix of {mix} requests (wrk -t1 -c{args.connections}); {args.scrapes} "
        f"sequential scrapes with Prometheus's Accept header, answered as {last.content_type}"
    )
    print()
    print(
        "| after | requests served | route label values | series | scrape p50 / p95 "
        "| server mean | body | load avg (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, point in points.items():
        timed = ["", "", ""]
        if point.p50_ms is not None and point.p95_ms is not None:
            timed = [
                f"{point.p50_ms:.1f} / {point.p95_ms:.1f} ms",
                f"{point.server_mean_ms:.1f} ms",
                f"{(point.body_bytes or 0) / 1024:.0f} kB",
            ]
        print(
            f"| {name} | {point.requests:,} | {len(point.routes)} | {point.series} | "
            f"{' | '.join(timed)} | {point.load:.1f} |"
        )
    p95 = last.p95_ms or 0.0
    print()
    print("| target | measured | |")
    print("|---|---|---|")
    print(f"| p95 < {TARGET_P95_MS:.0f} ms | {p95:.1f} ms | {_met(p95 < TARGET_P95_MS)} |")
    print(
        f"| series bounded (half = all) | {half.series} = {last.series} | "
        f"{_met(half.series == last.series)} |"
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
