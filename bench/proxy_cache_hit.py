"""Cache hits through ef_proxy against nginx serving the same file alone, side by side in one run.

Behind ef_proxy the backend answers a cache hit with ``X-Accel-Redirect`` and an empty body, and
nginx sends the cached file itself. This starts the real thing: ef_tts (Piper), the backend
(``EF_ACCEL_REDIRECT_PREFIX=/_ef_cache/``, rate limit off) and Debian's nginx with the project's
templates rendered as the image renders them (``tests/proxy/nginx.py``), plus one plain static
server in the same nginx (same workers and http settings) whose root is the audio cache. The
three routes that answer from the cache are primed (``POST /api/v1/speech``, the OpenAI
``POST /v1/audio/speech``, ``GET /api/v1/jobs/{id}/audio``), each with its own sentence as a
WAV of about 140 kB (the issue's reference file; ``--openai-format mp3`` gives the OpenAI route
its default format, a file ten times smaller that nginx alone sends far faster), then ``wrk``
bursts rotate over, for each route, (a) its cache hit through the proxy and (b) ``GET`` of the
same cache file from the static server, and (c) for context the native hit straight to the
backend (its X-Accel-Redirect answer, no body). Each round gives each route's ratio a/b; the
median is reported. Target (docs/performance.md): a/b at least 0.1x for every route.

So that (a) cannot silently measure something else: before and after the bursts the backend's
own answer must be an empty body with ``X-Accel-Redirect`` naming the file, the proxy's answer
and the static one must be that file byte for byte, and every proxied request of the route in
nginx's access log must have sent the file's full size with status 200. The proxy's per-client
limits are raised (``EF_PROXY_RATE``, ``EF_PROXY_BURST``, ``EF_PROXY_CONN_LIMIT``): one wrk is
one client.

    .venv/bin/python bench/proxy_cache_hit.py                       # what `make bench` runs
    .venv/bin/python bench/proxy_cache_hit.py --rounds 5 --duration 3 --json out.json
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
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
from tests.proxy.nginx import start_proxy
from tests.utils.procs import free_port

TARGET = 0.1
ACCEL_PREFIX = "/_ef_cache/"
SPEECH = "/api/v1/speech"
#: Kept apart from the trusted proxy's address, as the backend insists.
ADMIN_CIDRS = "127.0.0.2/32"
#: About 3 s of speech each, a WAV of about 140 kB (the issue measured with one of 95 kB); one
#: sentence a route, so that each has its own cache file.
TEXT = "Hello there, this is a cached sentence for the benchmark."
OPENAI_TEXT = "Hello there, this is a cached sentence for the OpenAI route."
JOB_TEXT = "Hello there, this is a cached sentence for the job audio route."
BODY: dict[str, object] = {"text": TEXT, "format": "wav"}
#: One wrk is one client address: the per-client limits would otherwise answer 429.
UNLIMITED = {
    "EF_PROXY_RATE": "1000000r/s",
    "EF_PROXY_BURST": "100000",
    "EF_PROXY_CONN_LIMIT": "1000",
}


def extra_conf(out: Path, port: int, root: Path) -> Path:
    """What the bench adds to nginx's http context: a log of what the backend answered each
    proxied request (its X-Accel-Redirect, as nginx saw it) and a plain static server for the
    cache directory (no proxy, no limits, no headers; only the image's usual access log, so the
    extra log is a cost on the proxied side alone)."""
    out.mkdir(parents=True, exist_ok=True)
    conf = out / "bench.conf"
    conf.write_text(
        "log_format ef_accel '$upstream_http_x_accel_redirect $status $body_bytes_sent $request';\n"
        f"access_log {out}/accel.log ef_accel;\n"
        f"server {{\n    listen 127.0.0.1:{port};\n    root {root};\n"
        f"    access_log {out}/access.log;\n}}\n"
    )
    return conf


@dataclass(frozen=True)
class Hit:
    """A route's cache hit: a POST of ``body`` to ``path``, or a GET when there is none."""

    path: str
    body: dict[str, object] | None = None

    @property
    def method(self) -> str:
        return "GET" if self.body is None else "POST"

    def send(self, base: str) -> httpx.Response:
        return httpx.request(self.method, base + self.path, json=self.body, timeout=120)


def prime(proxy: str, openai_format: str) -> dict[str, Hit]:
    """Each route's answer made a cache hit (through the proxy, as users make them)."""
    openai_body: dict[str, object] = {
        "model": "tts-1",
        "input": OPENAI_TEXT,
        "voice": "alloy",
        "response_format": openai_format,
    }
    speech, openai = Hit(SPEECH, BODY), Hit("/v1/audio/speech", openai_body)
    for hit in (speech, openai):
        hit.send(proxy).raise_for_status()  # the synthesis
    job_body = {"text": JOB_TEXT, "format": "wav"}
    with httpx.Client(base_url=proxy, timeout=30) as client:
        job = client.post("/api/v1/jobs", json=job_body).raise_for_status().json()
        wait_job(client, job["id"])
    return {"speech": speech, "openai": openai, "job_audio": Hit(f"/api/v1/jobs/{job['id']}/audio")}


def check_accel(hit: Hit, backend: str, proxy: str, static: str, cache_dir: Path) -> str:
    """The cache file's path relative to the cache, once (a) is shown to go via X-Accel."""
    direct = hit.send(backend)
    accel = str(direct.headers.get("x-accel-redirect", ""))
    if direct.status_code != 200 or direct.content or not accel.startswith(ACCEL_PREFIX):
        raise RuntimeError(f"the backend did not answer with X-Accel-Redirect: {direct.headers}")
    relative = accel.removeprefix(ACCEL_PREFIX)
    data = (cache_dir / relative).read_bytes()
    via = hit.send(proxy)
    alone = httpx.get(f"{static}/{relative}", timeout=30)
    if via.status_code != 200 or via.content != data or "x-accel-redirect" in via.headers:
        raise RuntimeError(f"the proxy did not send the cache file: {via.status_code}")
    if alone.status_code != 200 or alone.content != data:
        raise RuntimeError(f"the static server did not send the cache file: {alone.status_code}")
    return relative


def check_log(lines: list[str], hit: Hit, relative: str, size: int, cut: int) -> int:
    """How many proxied hits of ``hit`` nginx sent as the file after the backend's
    X-Accel-Redirect.

    Every proxied request of the route must show the backend's X-Accel-Redirect for the file;
    all but ``cut`` (the requests open when a wrk burst ends: 499 or a partial body) sent the
    whole file. ``lines``: the log since the bursts began (the priming synthesis was a miss)."""
    sent = [line.split(maxsplit=3)[:3] for line in lines if f" {hit.method} {hit.path} " in line]
    header = ACCEL_PREFIX + relative
    whole = sum(1 for p in sent if p == [header, "200", str(size)])
    others = [p for p in sent if p != [header, "200", str(size)]]
    # Cut before the backend answered: 499 and no header; after: the header, part of the file.
    bad = [p for p in others if p[:2] != ["-", "499"] and (p[0] != header or int(p[2]) >= size)]
    if bad or len(others) > cut or not whole:
        raise RuntimeError(
            f"{len(others)} of {len(sent)} proxied hits of {hit.path} were not the file: {bad}"
        )
    return whole


def main() -> int:
    parser = burst_parser(__doc__)
    parser.add_argument(
        "--openai-format", default="wav", help="the OpenAI route's response_format (wav)"
    )
    args = parser.parse_args()

    with workdir(args.keep) as root, stack(root) as running:
        running.engine()
        backend = running.backend(
            EF_ACCEL_REDIRECT_PREFIX=ACCEL_PREFIX,
            EF_TRUSTED_PROXIES="127.0.0.1/32",  # as in production: the proxy's own address
            EF_ADMIN_CIDRS=ADMIN_CIDRS,
        )
        cache_dir = root / "data-backend" / "audio-cache"
        out, static_port = root / "nginx", free_port()
        nginx, ports = start_proxy(
            out,
            {
                "EF_BACKEND_UPSTREAM": f"127.0.0.1:{backend.port}",
                "EF_FRONTEND_UPSTREAM": f"127.0.0.1:{free_port()}",  # not used here
                "EF_PROXY_CACHE_DIR": str(cache_dir),
                "EF_ADMIN_CIDRS": ADMIN_CIDRS,
                **UNLIMITED,
            },
            includes=[extra_conf(out, static_port, cache_dir)],
        )
        running.servers.append(nginx)
        proxy, static = f"http://127.0.0.1:{ports['http']}", f"http://127.0.0.1:{static_port}"
        nginx.wait_ready("/health/ready", timeout=30)
        hits = prime(proxy, args.openai_format)
        files = {
            route: check_accel(hit, backend.url, proxy, static, cache_dir)
            for route, hit in hits.items()
        }
        sizes = {route: (cache_dir / relative).stat().st_size for route, relative in files.items()}
        accel_log = out / "accel.log"
        start = accel_log.stat().st_size
        targets: dict[str, tuple[str, dict[str, object] | None]] = {}
        for route, hit in hits.items():
            targets[f"{route} via proxy"] = (proxy + hit.path, hit.body)
            targets[f"{route} file alone"] = (f"{static}/{files[route]}", None)
        targets["speech straight to backend"] = (backend.url + SPEECH, BODY)
        names = list(targets)
        groups = {
            g: srv.proc.pid for g, srv in (("nginx", nginx), ("backend", backend)) if srv.proc
        }
        rates: dict[str, list[float]] = {name: [] for name in names}
        # CPU microseconds per request of each server, per burst: robust to a busy machine.
        cpu: dict[str, dict[str, list[float]]] = {n: {g: [] for g in groups} for n in names}
        for round_no in range(args.rounds):
            for name in rotated(names, round_no):
                url, body = targets[name]
                before = {g: cpu_seconds(pgid) for g, pgid in groups.items()}
                rate = wrk(
                    url,
                    duration=args.duration,
                    connections=args.connections,
                    body=body,
                    scripts=root,
                )
                rates[name].append(rate)
                for g, pgid in groups.items():
                    used = cpu_seconds(pgid) - before[g]
                    cpu[name][g].append(used * 1e6 / (rate * max(1, round(args.duration))))
        for hit in hits.values():
            check_accel(hit, backend.url, proxy, static, cache_dir)
        with accel_log.open("rb") as log:
            log.seek(start)
            lines = log.read().decode().splitlines()
        proxied = {
            route: check_log(lines, hit, files[route], sizes[route], args.rounds * args.connections)
            for route, hit in hits.items()
        }

    def paired(name: str, alone: str) -> list[float]:
        return [a / b for a, b in zip(rates[name], rates[alone], strict=True)]

    ratios = {
        f"{route}/static": paired(f"{route} via proxy", f"{route} file alone") for route in hits
    }
    ratios["backend/static"] = paired("speech straight to backend", "speech file alone")
    print(
        f"Cache hits through ef_proxy (X-Accel-Redirect) vs nginx serving the same file, "
        f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.duration:g} s; files: "
        + ", ".join(f"{route} {sizes[route]} bytes" for route in hits)
        + "; proxied hits sent whole by nginx after X-Accel-Redirect: "
        + ", ".join(f"{route} {count}" for route, count in proxied.items())
    )
    print()
    print("| target | req/s (median) | per round | CPU per request: nginx | backend |")
    print("|---|---|---|---|---|")
    for name in names:
        per_round = ", ".join(f"{rate:.0f}" for rate in rates[name])
        us = {g: f"{statistics.median(v):.0f} µs" for g, v in cpu[name].items()}
        print(
            f"| {name} | {statistics.median(rates[name]):.0f} | {per_round} "
            f"| {us['nginx']} | {us['backend']} |"
        )
    print()
    print("| ratio (median of paired rounds) | measured | target | |")
    print("|---|---|---|---|")
    met = True
    for route in hits:
        value = statistics.median(ratios[f"{route}/static"])
        met &= value >= TARGET
        print(ratio_row(f"{route}/static", value, f">= {TARGET}", value >= TARGET))
    context = statistics.median(ratios["backend/static"])
    print(f"| backend/static (context) | {context:.3f} | - | |")
    write_json(
        args.json,
        {
            "req_per_s": rates,
            "cpu_us_per_request": cpu,
            "ratios": ratios,
            "target": TARGET,
            "file_bytes": sizes,
            "proxied_hits": proxied,
        },
    )
    print("all targets met" if met else "some targets MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
