"""Cache hits through ef_proxy against nginx serving the same file alone, side by side in one run.

Behind ef_proxy the backend answers a cache hit with ``X-Accel-Redirect`` and an empty body, and
nginx sends the cached file itself. This starts the real thing: ef_tts (Piper), the backend
(``EF_ACCEL_REDIRECT_PREFIX=/_ef_cache/``, rate limit off) and Debian's nginx with the project's
templates rendered as the image renders them (``tests/proxy/nginx.py``), plus one plain static
server in the same nginx (same workers and http settings) whose root is the audio cache. After
one synthesis, ``wrk`` bursts rotate over (a) the cache-hit ``POST /api/v1/speech`` through the
proxy, (b) ``GET`` of that same cache file from the static server and (c) for context the same
hit straight to the backend (its X-Accel-Redirect answer, no body). Each round gives the ratio
a/b; the median is reported. Target (docs/performance.md): a/b at least 0.1x.

So that (a) cannot silently measure something else: before and after the bursts the backend's
own answer must be an empty body with ``X-Accel-Redirect`` naming the file, the proxy's answer
and the static one must be that file byte for byte, and every proxied request in nginx's access
log must have sent the file's full size with status 200. The proxy's per-client limits are
raised (``EF_PROXY_RATE``, ``EF_PROXY_BURST``, ``EF_PROXY_CONN_LIMIT``): one wrk is one client.

    .venv/bin/python bench/proxy_cache_hit.py                       # what `make bench` runs
    .venv/bin/python bench/proxy_cache_hit.py --rounds 5 --duration 3 --json out.json
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
from tests.proxy.nginx import start_proxy
from tests.utils.procs import free_port

TARGET = 0.1
ACCEL_PREFIX = "/_ef_cache/"
SPEECH = "/api/v1/speech"
#: Kept apart from the trusted proxy's address, as the backend insists.
ADMIN_CIDRS = "127.0.0.2/32"
#: About 2.5 s of speech, a WAV of about 100 kB: the size the issue measured.
BODY: dict[str, object] = {
    "text": "Hello there, this is a cached sentence for the benchmark.",
    "format": "wav",
}
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


def check_accel(backend: str, proxy: str, static: str, cache_dir: Path) -> str:
    """The cache file's path relative to the cache, once (a) is shown to go via X-Accel."""
    direct = httpx.post(backend + SPEECH, json=BODY, timeout=30)
    accel = str(direct.headers.get("x-accel-redirect", ""))
    if direct.status_code != 200 or direct.content or not accel.startswith(ACCEL_PREFIX):
        raise RuntimeError(f"the backend did not answer with X-Accel-Redirect: {direct.headers}")
    relative = accel.removeprefix(ACCEL_PREFIX)
    data = (cache_dir / relative).read_bytes()
    via = httpx.post(proxy + SPEECH, json=BODY, timeout=30)
    alone = httpx.get(f"{static}/{relative}", timeout=30)
    if via.status_code != 200 or via.content != data or "x-accel-redirect" in via.headers:
        raise RuntimeError(f"the proxy did not send the cache file: {via.status_code}")
    if alone.status_code != 200 or alone.content != data:
        raise RuntimeError(f"the static server did not send the cache file: {alone.status_code}")
    return relative


def check_log(accel_log: Path, start: int, relative: str, size: int, cut: int) -> int:
    """How many proxied hits nginx sent as the file after the backend's X-Accel-Redirect.

    Every proxied POST must show the backend's X-Accel-Redirect for the file; all but ``cut``
    (the requests open when a wrk burst ends: 499 or a partial body) sent the whole file.
    ``start``: the log's size before the bursts (the priming synthesis was a miss)."""
    with accel_log.open("rb") as log:
        log.seek(start)
        lines = log.read().decode().splitlines()
    posts = [line.split(maxsplit=3)[:3] for line in lines if f" POST {SPEECH} " in line]
    header = ACCEL_PREFIX + relative
    whole = sum(1 for p in posts if p == [header, "200", str(size)])
    others = [p for p in posts if p != [header, "200", str(size)]]
    # Cut before the backend answered: 499 and no header; after: the header, part of the file.
    bad = [p for p in others if p[:2] != ["-", "499"] and (p[0] != header or int(p[2]) >= size)]
    if bad or len(others) > cut or not whole:
        raise RuntimeError(f"{len(others)} of {len(posts)} proxied hits were not the file: {bad}")
    return whole


def main() -> int:
    args = burst_parser(__doc__).parse_args()

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
        httpx.post(proxy + SPEECH, json=BODY, timeout=120).raise_for_status()  # the synthesis
        relative = check_accel(backend.url, proxy, static, cache_dir)
        size = (cache_dir / relative).stat().st_size
        accel_log = out / "accel.log"
        start = accel_log.stat().st_size
        targets: dict[str, tuple[str, dict[str, object] | None]] = {
            "proxy": (proxy + SPEECH, BODY),
            "static": (f"{static}/{relative}", None),
            "backend": (backend.url + SPEECH, BODY),
        }
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
        check_accel(backend.url, proxy, static, cache_dir)
        proxied = check_log(accel_log, start, relative, size, cut=args.rounds * args.connections)
    ratios = {
        f"{name}/static": [a / b for a, b in zip(rates[name], rates["static"], strict=True)]
        for name in ("proxy", "backend")
    }
    print(
        f"Cache hit through ef_proxy (X-Accel-Redirect) vs nginx serving the file, "
        f"wrk -t1 -c{args.connections}, {args.rounds} rounds of {args.duration:g} s, "
        f"a {size}-byte WAV; {proxied} proxied hits sent whole by nginx after X-Accel-Redirect"
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
    value = statistics.median(ratios["proxy/static"])
    print(ratio_row("proxy/static", value, f">= {TARGET}", value >= TARGET))
    context = statistics.median(ratios["backend/static"])
    print(f"| backend/static (context) | {context:.3f} | - | |")
    write_json(
        args.json,
        {
            "req_per_s": rates,
            "cpu_us_per_request": cpu,
            "ratios": ratios,
            "target": TARGET,
            "file_bytes": size,
            "proxied_hits": proxied,
        },
    )
    print("target met" if value >= TARGET else "target MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
