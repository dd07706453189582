"""One trace from an HTTP request to the speech engine, across ef_backend and ef_tts.

Both services run as real processes with the SDK's OTLP exporter (``OTEL_TRACES_EXPORTER=otlp``)
pointed at a local receiver (tests/utils/otlp.py), which decodes every
``ExportTraceServiceRequest`` and keeps the spans in memory; the whole module runs once over
http/protobuf and once over gRPC (``OTEL_EXPORTER_OTLP_PROTOCOL``). The client sends its own W3C
``traceparent``, so the test knows the trace id to follow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.api.helpers import unique_text
from tests.utils.otlp import PROTOCOLS, OtlpReceiver, ReceivedSpan
from tests.utils.poll import poll_until
from tests.utils.procs import (
    Server,
    start_ef_backend,
    start_ef_tts,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
CLIENT_KIND = 3


@pytest.fixture(scope="module", params=PROTOCOLS)
def receiver(request: pytest.FixtureRequest) -> Iterator[OtlpReceiver]:
    rec = OtlpReceiver(protocol=request.param).start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def traced_tts(receiver: OtlpReceiver, session_tmp: Path) -> Iterator[Server]:
    server = start_ef_tts(
        "ef_tts-traced", session_tmp / "logs", {"EF_TTS_ENGINE": "piper", **receiver.env()}
    )
    try:
        yield server.wait_ready("/health", timeout=120)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traced_backend(
    traced_tts: Server, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("traced-backend")
    server = start_ef_backend(
        "ef_backend-traced",
        workdir / "logs",
        data_dir=workdir / "data",
        tts_url=traced_tts.url,
        env={"EF_RATE_LIMIT": "0", **receiver.env()},
    )
    try:
        yield server.wait_ready("/health/ready", timeout=60)
    finally:
        server.stop()


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def test_one_trace_from_request_to_engine(traced_backend: Server, receiver: OtlpReceiver) -> None:
    trace_id = os.urandom(16).hex()
    caller_span = os.urandom(8).hex()
    text = unique_text("Follow this request into the engine")
    response = httpx.post(
        traced_backend.url + "/api/v1/speech",
        json={"text": text},
        headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-ef-cache"] == "miss"

    def engine_synthesis_arrived(spans: list[ReceivedSpan]) -> bool:
        # Both services export on their own schedule: wait for the engine's span and for the
        # backend's request and job spans (which end after all their children).
        mine = in_trace(spans, trace_id)
        return any(
            s.service == "ef_tts" and s.kind == SERVER_KIND and "/api/tts" in s.name for s in mine
        ) and {"job.process", "POST /api/v1/speech"} <= {s.name for s in mine}

    spans = in_trace(receiver.wait_for(engine_synthesis_arrived, timeout=30), trace_id)
    by_id = {s.span_id: s for s in spans}

    (root,) = [s for s in spans if s.parent_span_id == caller_span]
    assert (root.service, root.kind) == ("ef_backend", SERVER_KIND)
    assert root.name == "POST /api/v1/speech"
    assert root.attributes["http.route"] == "/api/v1/speech"
    assert root.attributes["http.response.status_code"] == 200

    # Every span of the trace hangs off the request: one tree, across both services.
    for span in spans:
        node, hops = span, 0
        while node.span_id != root.span_id:
            assert node.parent_span_id in by_id, f"{node.service}/{node.name} is cut off"
            node, hops = by_id[node.parent_span_id], hops + 1
            assert hops < 50

    names = {(s.service, s.name) for s in spans}
    for expected in ("cache.lookup", "queue.wait", "engine.synthesize"):
        assert ("ef_backend", expected) in names, f"missing span {expected}: {sorted(names)}"

    # The engine's server span is the child of the backend's client span for that call.
    tts_spans = [s for s in spans if s.service == "ef_tts" and "/api/tts" in s.name]
    for tts in tts_spans:
        caller = by_id[tts.parent_span_id]
        assert caller.service == "ef_backend" and caller.kind == CLIENT_KIND
    assert text not in json.dumps([s.attributes for s in spans]), "no span records the text"


def test_the_engine_call_continues_in_ef_tts(
    traced_backend: Server, receiver: OtlpReceiver
) -> None:
    """The worker's engine call carries W3C trace context and ef_tts continues that trace."""
    text = unique_text("The engine continues the worker's trace")
    response = httpx.post(traced_backend.url + "/api/v1/speech", json={"text": text}, timeout=60)
    assert response.status_code == 200, response.text

    def chains(spans: list[ReceivedSpan]) -> list[tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan]]:
        by_id = {s.span_id: s for s in spans}
        found = []
        for tts in spans:
            if tts.service != "ef_tts" or tts.kind != SERVER_KIND or "/api/tts" not in tts.name:
                continue
            client = by_id.get(tts.parent_span_id)
            if client is None or client.kind != CLIENT_KIND:
                continue
            node = client
            while node.parent_span_id in by_id and node.name != "job.process":
                node = by_id[node.parent_span_id]
            if node.name == "job.process" and node.attributes.get("ef.text_chars") == len(text):
                found.append((node, client, tts))
        return found

    spans = receiver.wait_for(lambda spans: bool(chains(spans)), timeout=30)
    job, client, tts = chains(spans)[0]
    assert job.service == client.service == "ef_backend"
    assert job.trace_id == client.trace_id == tts.trace_id
    # The httpx instrumentation's client span (stable HTTP conventions), continued by ef_tts.
    assert client.name == "POST"
    assert client.attributes["http.request.method"] == "POST"
    assert str(client.attributes["url.full"]).endswith("/api/tts")
    assert client.attributes["http.response.status_code"] == 200
    assert tts.attributes["http.route"] == "/api/tts"
    assert text not in json.dumps([s.attributes for s in spans]), "no span records the text"


def test_the_otlp_exporter_delivers_spans_of_both_services(
    traced_backend: Server, receiver: OtlpReceiver
) -> None:
    trace_id = os.urandom(16).hex()
    response = httpx.get(
        traced_backend.url + "/api/v1/voices",
        headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"},
        timeout=30,
    )
    assert response.status_code == 200, response.text

    def voices_span(spans: list[ReceivedSpan]) -> bool:
        return any(
            s.kind == SERVER_KIND and s.attributes.get("http.route") == "/api/v1/voices"
            for s in in_trace(spans, trace_id)
        )

    spans = receiver.wait_for(voices_span, timeout=30)
    assert receiver.requests >= 1
    assert {"ef_backend", "ef_tts"} <= {s.service for s in spans}
    (server,) = [
        s for s in in_trace(spans, trace_id) if s.kind == SERVER_KIND and s.service == "ef_backend"
    ]
    assert server.name == "GET /api/v1/voices"


def test_logs_carry_the_trace_id_of_the_request(
    traced_backend: Server, receiver: OtlpReceiver
) -> None:
    trace_id = os.urandom(16).hex()
    text = unique_text("The log knows which trace this was")
    response = httpx.post(
        traced_backend.url + "/api/v1/speech",
        json={"text": text},
        headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01", "X-Request-ID": "e2e-1"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "e2e-1"

    # The access line is written once the response has gone out: give it a moment.
    def access_lines() -> list[dict[str, Any]]:
        log_text = traced_backend.log_path.read_text(errors="replace")
        lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
        return [
            d for d in lines if d.get("logger") == "ef.access" and d.get("request_id") == "e2e-1"
        ]

    access = poll_until(access_lines, timeout=10, what="the access-log line")
    log_text = traced_backend.log_path.read_text(errors="replace")
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert len(access) == 1
    assert access[0]["trace_id"] == trace_id
    assert access[0]["route"] == "/api/v1/speech" and access[0]["status"] == 200
    assert any(d.get("trace_id") == trace_id and d["logger"] != "ef.access" for d in lines), (
        "application logs inside the request carry the trace id too"
    )
    assert text not in log_text
