"""Tracing is configured only from the standard OTEL_* variables.

A tracer provider can be installed once per process, so each case runs a small real app in a
fresh interpreter with the variables set, and reads what its console exporter wrote on stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from ef_common.tracing import exporters_from_env

from tests.utils.procs import REPO, make_env

APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry import trace
    from ef_common.asgi import RequestContextMiddleware
    from ef_common.tracing import instrument_app, shutdown_tracing

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        with trace.get_tracer("inner").start_as_current_span("inner.work"):
            return {"id": item_id}

    tracing = instrument_app(app, service="ef-demo")
    app.add_middleware(RequestContextMiddleware, tracer_provider=tracing.tracer_provider)
    on = tracing.enabled
    with TestClient(app) as client:
        assert client.get("/items/42", params={"text": "spoken words"}).status_code == 200
    shutdown_tracing()
    print("tracing", on)
    """
)


def run_app(**env: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    proc = subprocess.run(
        [sys.executable, "-c", APP],
        env=make_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    spans = []
    for line in proc.stderr.splitlines():
        if line.startswith("{"):
            spans.append(json.loads(line))
    return proc, spans


def test_tracing_is_off_by_default() -> None:
    proc, spans = run_app()
    assert proc.returncode == 0, proc.stderr
    assert "tracing False" in proc.stdout
    assert spans == []


def test_console_exporter_writes_one_json_span_per_line_on_stderr() -> None:
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console")
    assert proc.returncode == 0, proc.stderr
    assert "tracing True" in proc.stdout
    assert proc.stdout.count("{") == 0, "spans must not go to stdout (the JSON log stream)"
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"GET /items/{item_id}", "inner.work"}, (
        "one request span (FastAPI's own telemetry off) plus the app's span"
    )
    server = by_name["GET /items/{item_id}"]
    assert server["kind"] == "SpanKind.SERVER"
    assert server["resource"]["attributes"]["service.name"] == "ef-demo"
    assert server["attributes"]["http.route"] == "/items/{item_id}"
    assert server["attributes"]["url.path"] == "/items/42"
    assert "spoken words" not in json.dumps(server), "the query string is not recorded"
    inner = by_name["inner.work"]
    assert inner["context"]["trace_id"] == server["context"]["trace_id"]
    assert inner["parent_id"] == server["context"]["span_id"]


def test_service_name_and_sampler_come_from_otel_variables() -> None:
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="renamed")
    assert proc.returncode == 0, proc.stderr
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"renamed"}
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console", OTEL_TRACES_SAMPLER="always_off")
    assert proc.returncode == 0, proc.stderr
    assert spans == []


def test_sdk_disabled_turns_tracing_off() -> None:
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stderr
    assert "tracing False" in proc.stdout and spans == []


def test_unsupported_settings_fail_with_a_clear_message() -> None:
    proc, _ = run_app(OTEL_TRACES_EXPORTER="zipkin")
    assert proc.returncode != 0
    assert "OTEL_TRACES_EXPORTER='zipkin': unsupported exporter 'zipkin'" in proc.stderr
    proc, _ = run_app(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert proc.returncode != 0
    assert "only http/protobuf is supported" in proc.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", []), ("none", []), ("otlp", ["otlp"]), (" OTLP , console ", ["otlp", "console"])],
)
def test_exporter_list(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert exporters_from_env() == expected


def test_sampler_ratio_comes_from_otel_variables() -> None:
    """parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG: 0 keeps nothing, 1 everything."""
    sampler = {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    proc, none = run_app(**sampler, OTEL_TRACES_SAMPLER_ARG="0")
    assert proc.returncode == 0, proc.stderr
    assert none == []
    proc, every = run_app(**sampler, OTEL_TRACES_SAMPLER_ARG="1")
    assert proc.returncode == 0, proc.stderr
    assert {s["name"] for s in every} == {"GET /items/{item_id}", "inner.work"}


def test_stock_fastapi_instrumentation_on_request() -> None:
    """EF_TRACING_INSTRUMENTATION=fastapi swaps our request span for the library's own."""
    proc, lean = run_app(OTEL_TRACES_EXPORTER="console")
    assert proc.returncode == 0, proc.stderr
    proc, stock = run_app(OTEL_TRACES_EXPORTER="console", EF_TRACING_INSTRUMENTATION="fastapi")
    assert proc.returncode == 0, proc.stderr
    (lean_server,) = [s for s in lean if s["kind"] == "SpanKind.SERVER"]
    stock_servers = [s for s in stock if s["kind"] == "SpanKind.SERVER"]
    assert [s["name"] for s in stock_servers] == ["GET /items/{item_id}"]
    # The library writes the older semantic conventions (http.target, http.flavor); ours not.
    assert "http.flavor" in stock_servers[0]["attributes"]
    assert "http.flavor" not in lean_server["attributes"]
    inner = next(s for s in stock if s["name"] == "inner.work")
    assert inner["context"]["trace_id"] == stock_servers[0]["context"]["trace_id"]
    proc, _ = run_app(OTEL_TRACES_EXPORTER="console", EF_TRACING_INSTRUMENTATION="zipkin")
    assert proc.returncode != 0
    assert "EF_TRACING_INSTRUMENTATION='zipkin': use one of lean, fastapi" in proc.stderr
