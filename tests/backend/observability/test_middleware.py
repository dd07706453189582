"""The request middleware on a real FastAPI app: route labels, request ids, access log, exemplars.

These drive ``install()`` on an app built here (routes with parameters, an included router, a
static mount at ``/``, a failing route) through httpx's ASGI transport; the live backend is
covered by ``test_live_metrics.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from ef_backend.core.config import Settings
from ef_backend.observability.install import install
from ef_common.spans import LeanTracerProvider
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS

from tests.backend.observability.support import captured_logs, json_lines, value
from tests.backend.observability.test_spans import Collect

HEX32 = re.compile(r"[0-9a-f]{32}")


def build_app(
    tmp_path: Path, *, tracer_provider: TracerProvider | LeanTracerProvider | None = None
) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api/v1/jobs")

    @router.get("/{job_id}")
    async def get_job(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    app.include_router(router)
    settings = Settings(data_dir=tmp_path / "data", trusted_proxies="10.9.0.0/16")
    install(app, settings, lambda: None, tracer_provider=tracer_provider)
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>hi</h1>")
    app.mount("/", StaticFiles(directory=static, html=True), name="frontend")
    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(tmp_path), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def scrape() -> str:
    return generate_latest(REGISTRY).decode()


async def test_route_label_is_the_template_not_the_path(client: httpx.AsyncClient) -> None:
    before = scrape()
    for job in ("a1", "b2", "c3"):
        assert (await client.get(f"/api/v1/jobs/{job}")).status_code == 200
    after = scrape()
    labels = {"method": "GET", "route": "/api/v1/jobs/{job_id}", "status": "200"}
    assert (
        value(after, "ef_http_requests_total", **labels)
        - value(before, "ef_http_requests_total", **labels)
        == 3
    )
    assert 'route="/api/v1/jobs/a1"' not in after
    hist = {"method": "GET", "route": "/api/v1/jobs/{job_id}"}
    assert (
        value(after, "ef_http_request_duration_seconds_count", **hist)
        - value(before, "ef_http_request_duration_seconds_count", **hist)
        == 3
    )


async def test_unknown_paths_share_one_label_even_behind_the_static_mount(
    client: httpx.AsyncClient,
) -> None:
    before = scrape()
    assert (await client.get("/no/such/page")).status_code == 404
    assert (await client.get("/api/v1/nothing-here")).status_code == 404
    assert (await client.get("/index.html")).status_code == 200
    after = scrape()
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert (
        value(after, "ef_http_requests_total", **unmatched)
        - value(before, "ef_http_requests_total", **unmatched)
        == 2
    )
    static = {"method": "GET", "route": "/{path}", "status": "200"}
    assert (
        value(after, "ef_http_requests_total", **static)
        - value(before, "ef_http_requests_total", **static)
        == 1
    )


async def test_unknown_methods_are_one_label(tmp_path: Path) -> None:
    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    install(app, Settings(data_dir=tmp_path), lambda: None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        before = scrape()
        assert (await c.request("BREW", "/health/live")).status_code == 405
        assert (await c.request("POST", "/health/live")).status_code == 405
        after = scrape()
    for method in ("OTHER", "POST"):
        labels = {"method": method, "route": "/health/live", "status": "405"}
        assert (
            value(after, "ef_http_requests_total", **labels)
            - value(before, "ef_http_requests_total", **labels)
            == 1
        )
    assert 'method="BREW"' not in after


async def test_a_crash_counts_as_500_and_in_progress_returns_to_zero(
    client: httpx.AsyncClient,
) -> None:
    before = scrape()
    assert (await client.get("/boom")).status_code == 500
    after = scrape()
    labels = {"method": "GET", "route": "/boom", "status": "500"}
    assert (
        value(after, "ef_http_requests_total", **labels)
        - value(before, "ef_http_requests_total", **labels)
        == 1
    )
    assert value(after, "ef_http_requests_in_progress") == value(
        before, "ef_http_requests_in_progress"
    )


async def test_request_id_is_kept_when_valid_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    with captured_logs() as out:
        kept = await client.get("/health/live", headers={"X-Request-ID": "ha-automation.42"})
        spaced = await client.get("/health/live", headers={"X-Request-ID": "evil id\tinjected"})
        huge = await client.get("/health/live", headers={"X-Request-ID": "x" * 200})
        none = await client.get("/health/live")
    assert kept.headers["x-request-id"] == "ha-automation.42"
    for response in (spaced, huge, none):
        assert HEX32.fullmatch(response.headers["x-request-id"])
    assert len({r.headers["x-request-id"] for r in (spaced, huge, none)}) == 3
    docs = [d for d in json_lines(out.getvalue()) if d["logger"] == "ef.access"]
    assert [d["request_id"] for d in docs] == [
        r.headers["x-request-id"] for r in (kept, spaced, huge, none)
    ]
    assert "evil id" not in out.getvalue()


async def test_access_log_has_the_fields_and_no_query_string(client: httpx.AsyncClient) -> None:
    secret_text = "words that must not reach the log"
    with captured_logs() as out:
        response = await client.get(
            "/api/v1/jobs/j9", params={"text": secret_text}, headers={"X-Forwarded-For": "1.2.3.4"}
        )
    assert response.status_code == 200
    (doc,) = [d for d in json_lines(out.getvalue()) if d["logger"] == "ef.access"]
    assert doc["method"] == "GET"
    assert doc["route"] == "/api/v1/jobs/{job_id}"
    assert doc["path"] == "/api/v1/jobs/j9"
    assert doc["status"] == 200
    assert isinstance(doc["duration_ms"], float) and doc["duration_ms"] >= 0
    # The ASGI test client is 127.0.0.1, not a trusted proxy: its X-Forwarded-For is ignored.
    assert doc["client_ip"] == "127.0.0.1"
    assert "words that must not" not in out.getvalue()


async def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    transport = httpx.ASGITransport(app=app, client=("10.9.0.5", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        with captured_logs() as out:
            await c.get("/health/live", headers={"X-Forwarded-For": "6.6.6.6, 192.168.1.20"})
    (doc,) = [d for d in json_lines(out.getvalue()) if d["logger"] == "ef.access"]
    assert doc["client_ip"] == "192.168.1.20"


async def test_latency_histogram_carries_the_trace_id_as_exemplar(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build_app(tmp_path, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        with captured_logs() as out:
            assert (await c.get("/api/v1/jobs/traced-1")).status_code == 200
        plain = await c.get("/metrics")
        om = await c.get("/metrics", headers={"Accept": OPENMETRICS})
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "GET /api/v1/jobs/{job_id}"]
    trace_id = f"{span.context.trace_id:032x}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/api/v1/jobs/{job_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert plain.headers["content-type"].startswith("text/plain")
    assert f'trace_id="{trace_id}"' in om.text
    assert "trace_id=" not in plain.text
    bucket_lines = [line for line in om.text.splitlines() if f'trace_id="{trace_id}"' in line]
    assert bucket_lines and bucket_lines[0].startswith("ef_http_request_duration_seconds_bucket{")
    (access,) = [d for d in json_lines(out.getvalue()) if d["logger"] == "ef.access"]
    assert access["trace_id"] == trace_id
    assert access["span_id"] == f"{span.context.span_id:016x}"


async def test_incoming_traceparent_is_continued(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = build_app(tmp_path, tracer_provider=provider)
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_span = "00f067aa0ba902b7"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.get("/health/live", headers={"traceparent": f"00-{parent_trace}-{parent_span}-01"})
        await c.get("/boom")
    live, boom = exporter.get_finished_spans()
    assert f"{live.context.trace_id:032x}" == parent_trace
    assert live.parent is not None and f"{live.parent.span_id:016x}" == parent_span
    assert boom.parent is None
    assert boom.status.status_code.name == "ERROR"
    assert boom.attributes is not None and boom.attributes["http.response.status_code"] == 500


async def test_our_request_span_ends_after_the_turn_with_the_response_time(
    tmp_path: Path,
) -> None:
    """With our tracer the request span is named, given its route and status, and ended in the
    batch after the response, with the response's end time; logs and exemplars link to it."""
    collect = Collect()
    app = build_app(tmp_path, tracer_provider=LeanTracerProvider(collect, {"service.name": "t"}))
    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    # Called directly, the app returns before the event loop's turn: no span has ended yet.
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health/live",
        "raw_path": b"/health/live",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert [s.name for s in collect.spans if s.name.startswith("GET /health")] == []
    await asyncio.sleep(0)
    assert [s.name for s in collect.spans] == ["GET /health/live"]

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with captured_logs() as out:
            headers = {"traceparent": f"00-{parent_trace}-{parent_span}-01"}
            assert (await c.get("/api/v1/jobs/lean-1", headers=headers)).status_code == 200
            assert (await c.get("/boom")).status_code == 500
        om = await c.get("/metrics", headers={"Accept": OPENMETRICS})
    job, boom = collect.spans[1:3]
    assert job.name == "GET /api/v1/jobs/{job_id}" and job.kind.name == "SERVER"
    assert job.attributes["http.route"] == "/api/v1/jobs/{job_id}"
    assert job.attributes["http.response.status_code"] == 200
    assert job.attributes["url.path"] == "/api/v1/jobs/lean-1"
    assert f"{job.trace_id:032x}" == parent_trace and f"{job.parent_id:016x}" == parent_span
    assert job.parent_is_remote and job.status_code.name == "UNSET"
    assert boom.name == "GET /boom" and boom.status_code.name == "ERROR"
    assert boom.attributes["http.response.status_code"] == 500 and boom.parent_id is None
    access = {d["path"]: d for d in json_lines(out.getvalue()) if d["logger"] == "ef.access"}
    line = access["/api/v1/jobs/lean-1"]
    assert line["trace_id"] == parent_trace and line["span_id"] == f"{job.span_id:016x}"
    assert job.end_time is not None
    assert abs((job.end_time - job.start_time) / 1e6 - line["duration_ms"]) < 0.002
    assert f'trace_id="{parent_trace}"' in om.text
