"""The request middleware on a real FastAPI app: route labels, request ids, access log, exemplars.

These drive ``install()`` on an app built here (routes with parameters, an included router, a
static mount at ``/``, a failing route) through httpx's ASGI transport; the live backend is
covered by ``test_live_metrics.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from ef_backend.core.config import Settings
from ef_backend.observability.install import install
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS

from tests.backend.observability.support import value
from tests.utils.logs import captured_logs, json_lines

HEX32 = re.compile(r"[0-9a-f]{32}")


def build_app(tmp_path: Path) -> FastAPI:
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
    install(app, settings, lambda: None)
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


async def test_a_plain_starlette_route_is_labelled_with_its_path(
    client: httpx.AsyncClient,
) -> None:
    """FastAPI's ``/openapi.json`` is a Starlette ``Route``, which does not put itself in the
    scope as FastAPI's routes do."""
    before = scrape()
    assert (await client.get("/openapi.json")).status_code == 200
    after = scrape()
    labels = {"method": "GET", "route": "/openapi.json", "status": "200"}
    assert (
        value(after, "ef_http_requests_total", **labels)
        - value(before, "ef_http_requests_total", **labels)
        == 1
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


async def test_latency_histogram_carries_the_trace_id_as_exemplar(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    app = build_app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        with captured_logs() as out:
            assert (await c.get("/api/v1/jobs/traced-1")).status_code == 200
        plain = await c.get("/metrics")
        om = await c.get("/metrics", headers={"Accept": OPENMETRICS})
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /api/v1/jobs/{job_id}"]
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
    # /metrics is never traced (a scrape says nothing about a user).
    assert [s.name for s in spans.get_finished_spans() if "metrics" in s.name] == []


async def test_request_spans_continue_the_caller_and_follow_the_http_conventions(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """One SERVER span per request from opentelemetry-instrumentation-fastapi, no per-message
    send/receive spans, the stable HTTP semantic-convention attributes, health probes untraced,
    and no query string (ef_tts takes the spoken text there)."""
    app = build_app(tmp_path)
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_span = "00f067aa0ba902b7"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("10.1.2.3", 5))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test:8080") as c:
        headers = {"traceparent": f"00-{parent_trace}-{parent_span}-01", "User-Agent": "ha/2024"}
        assert (
            await c.get("/api/v1/jobs/j1", headers=headers, params={"text": "secret"})
        ).status_code == 200
        assert (await c.get("/boom")).status_code == 500
        assert (await c.get("/health/live")).status_code == 200
    job, boom = spans.get_finished_spans()
    assert job.name == "GET /api/v1/jobs/{job_id}" and job.kind.name == "SERVER"
    assert f"{job.context.trace_id:032x}" == parent_trace
    assert job.parent is not None and f"{job.parent.span_id:016x}" == parent_span
    assert job.attributes is not None
    assert job.attributes["http.request.method"] == "GET"
    assert job.attributes["http.route"] == "/api/v1/jobs/{job_id}"
    assert job.attributes["http.response.status_code"] == 200
    assert job.attributes["url.path"] == "/api/v1/jobs/j1"
    # The instrumentation takes server.address from the Host header as sent (port included).
    assert job.attributes["server.address"] == "api.test:8080"
    assert job.attributes["server.port"] == 8080
    assert job.attributes["client.address"] == "10.1.2.3"
    assert job.attributes["user_agent.original"] == "ha/2024"
    assert job.attributes["url.query"] == "REDACTED"
    assert "secret" not in str(dict(job.attributes))
    assert "error.type" not in job.attributes and job.status.status_code.name == "UNSET"
    assert boom.name == "GET /boom" and boom.parent is None
    assert boom.status.status_code.name == "ERROR"
    assert boom.attributes is not None and boom.attributes["http.response.status_code"] == 500
    assert boom.attributes["error.type"] == "500"


def test_the_slo_status_series_exist_from_the_start(tmp_path: Path) -> None:
    """The first 503 of a speech route after a restart is a rate() increase from 0, not a new
    series that rate() cannot see: install() creates those series before any request."""
    build_app(tmp_path)
    for method, route in (("POST", "/api/v1/speech"), ("GET", "/api/v1/jobs/{job_id}/audio")):
        for status in ("500", "503"):
            labels = {"method": method, "route": route, "status": status}
            assert REGISTRY.get_sample_value("ef_http_requests_total", labels) is not None, labels
    labels = {"method": "POST", "route": "/api/v1/jobs", "status": "202"}
    assert REGISTRY.get_sample_value("ef_http_requests_total", labels) is not None
