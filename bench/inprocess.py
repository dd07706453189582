"""CPU time per request of one configuration, driving the ASGI app in-process.

No sockets and no HTTP parser: the app of ``bench/apps.py`` (``BENCH_CONFIG``) is started
through its ASGI lifespan as uvicorn starts it, then called with ready-made ASGI messages, and
the process CPU time (all threads, so the span exporter's too) is divided by the number of
requests. This isolates what the instrumentation adds per request far
more steadily than a load test on a shared machine; ``bench/run.py`` reports both.

    BENCH_CONFIG=metrics python bench/inprocess.py --requests 20000 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.apps import create  # noqa: E402

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/health/live",
    "raw_path": b"/health/live",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "state": {},
}


async def _drive(app: Any, requests: int, per_turn: int) -> float:
    """CPU microseconds per request over ``requests`` calls, ``per_turn`` per event-loop turn."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for done in range(0, requests, per_turn):
        for _ in range(min(per_turn, requests - done)):
            # Each request gets its own copy of the lifespan state, as uvicorn gives it.
            await app({**SCOPE, "state": SCOPE["state"].copy()}, receive, send)
        # Then one turn of the event loop, as a server under load makes after answering the
        # requests that were ready: the work deferred to the end of the turn runs, and the
        # select() releases the GIL, so other threads (the span exporter) run as they would
        # in a server. Without it they starve, drop spans and burn CPU waiting for the GIL.
        await asyncio.sleep(0)
    used = time.process_time() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return used / requests * 1e6


class _Lifespan:
    """The app's ASGI lifespan, driven as a server drives it (start-up before the first
    request, shutdown after the last)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        reply = await self.outbox.get()
        if reply["type"] != f"lifespan.{event}.complete":
            raise RuntimeError(f"lifespan {event} failed: {reply.get('message', reply)}")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": SCOPE["state"]}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        assert self.task is not None
        await self.task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--per-turn",
        type=int,
        default=16,
        help="requests answered per event-loop turn (a server under wrk -c16 answers up to 16)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    app = create()
    lifespan = _Lifespan(app)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(lifespan.startup())
        loop.run_until_complete(_drive(app, 2000, args.per_turn))  # warm caches, label children
        runs = [
            loop.run_until_complete(_drive(app, args.requests, args.per_turn))
            for _ in range(args.repeats)
        ]
        loop.run_until_complete(lifespan.shutdown())
    finally:
        loop.close()
    args.out.write_text(json.dumps({"cpu_us": statistics.median(runs), "runs": runs}))


if __name__ == "__main__":
    main()
