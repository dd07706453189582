"""Tracing on the OpenTelemetry SDK, configured only from the standard OTEL_* variables.

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
    from ef_common.tracing import instrument_app

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        with trace.get_tracer("inner").start_as_current_span("inner.work"):
            return {"id": item_id}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    on = instrument_app(app, service="ef-demo")
    app.add_middleware(RequestContextMiddleware)
    with TestClient(app) as client:
        assert client.get("/items/42", params={"text": "spoken words"}).status_code == 200
        assert client.get("/health/live").status_code == 200
    provider = trace.get_tracer_provider()
    print("tracing", on, type(provider).__name__)
    if hasattr(provider, "shutdown"):
        provider.shutdown()
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
    spans = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    return proc, spans


def test_tracing_is_off_by_default_and_costs_no_provider() -> None:
    proc, spans = run_app()
    assert proc.returncode == 0, proc.stderr
    assert "tracing False ProxyTracerProvider" in proc.stdout
    assert spans == []


def test_console_exporter_writes_one_json_span_per_line_on_stderr() -> None:
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console")
    assert proc.returncode == 0, proc.stderr
    assert "tracing True TracerProvider" in proc.stdout
    assert proc.stdout.count("{") == 0, "spans must not go to stdout (the JSON log stream)"
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"GET /items/{item_id}", "inner.work"}, (
        "one request span (no send/receive spans, FastAPI's own telemetry off, the health "
        "probe not traced) plus the app's span"
    )
    server = by_name["GET /items/{item_id}"]
    assert server["kind"] == "SpanKind.SERVER"
    assert server["resource"]["attributes"]["service.name"] == "ef-demo"
    assert server["attributes"]["http.route"] == "/items/{item_id}"
    assert server["attributes"]["url.path"] == "/items/42"
    assert server["attributes"]["url.query"] == "REDACTED"
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


def test_sampler_ratio_comes_from_otel_variables() -> None:
    """parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG: 0 keeps nothing, 1 everything."""
    sampler = {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    proc, none = run_app(**sampler, OTEL_TRACES_SAMPLER_ARG="0")
    assert proc.returncode == 0, proc.stderr
    assert none == []
    proc, every = run_app(**sampler, OTEL_TRACES_SAMPLER_ARG="1")
    assert proc.returncode == 0, proc.stderr
    assert {s["name"] for s in every} == {"GET /items/{item_id}", "inner.work"}


def test_sdk_disabled_turns_tracing_off() -> None:
    proc, spans = run_app(OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stderr
    assert "tracing False" in proc.stdout and spans == []


def test_unsupported_settings_fail_with_a_clear_message() -> None:
    proc, _ = run_app(OTEL_TRACES_EXPORTER="zipkin")
    assert proc.returncode != 0
    assert "OTEL_TRACES_EXPORTER='zipkin': unsupported exporter 'zipkin'" in proc.stderr
    proc, _ = run_app(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    assert proc.returncode != 0
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='http/json': use one of http/protobuf, grpc" in proc.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", []), ("none", []), ("otlp", ["otlp"]), (" OTLP , console ", ["otlp", "console"])],
)
def test_exporter_list(monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert exporters_from_env() == expected
