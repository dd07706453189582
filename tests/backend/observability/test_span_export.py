"""Spans leave the process over real OTLP/HTTP (ef_common.span_export), and losing the
collector loses spans in a bounded, logged way, never requests or memory.

Every case exports to a real local OTLP receiver that decodes the protobuf with the official
classes (tests/backend/observability/otlp.py).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator

import pytest
from ef_common.span_export import BatchExporter, ConsoleExporter, OtlpHttpExporter
from ef_common.spans import LeanTracerProvider
from opentelemetry.trace import SpanKind

from tests.backend.observability.otlp import OtlpReceiver
from tests.utils.procs import free_port

RESOURCE = {"service.name": "ef-export-test"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    rec = OtlpReceiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch, receiver: OtlpReceiver) -> OtlpReceiver:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    return receiver


def make(
    exporter: OtlpHttpExporter | ConsoleExporter, **batch: int
) -> tuple[LeanTracerProvider, BatchExporter]:
    processor = BatchExporter([exporter], schedule_delay_s=3600, **batch)
    return LeanTracerProvider(processor, RESOURCE), processor


def emit(provider: LeanTracerProvider, count: int, prefix: str = "span") -> None:
    tracer = provider.get_tracer("ef.test")
    for n in range(count):
        with tracer.start_as_current_span(f"{prefix}-{n}", kind=SpanKind.SERVER) as span:
            span.set_attribute("n", n)


def test_spans_arrive_in_batches_with_headers_and_gzip(
    otlp_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret,x-team=ops")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    provider, processor = make(OtlpHttpExporter(RESOURCE), max_batch_size=4)
    emit(provider, 10)
    assert processor.force_flush()
    spans = otlp_env.snapshot()
    assert sorted(s.name for s in spans) == sorted(f"span-{n}" for n in range(10))
    assert {s.service for s in spans} == {"ef-export-test"}
    assert {s.attributes["n"] for s in spans} == set(range(10))
    assert otlp_env.requests == 3, "batches of at most 4"
    headers = otlp_env.headers[0]
    assert headers["authorization"] == "Bearer s3cret" and headers["x-team"] == "ops"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"] == "application/x-protobuf"
    provider.shutdown()


def test_a_full_batch_wakes_the_export_thread(otlp_env: OtlpReceiver) -> None:
    """No flush and an hour's schedule delay: a full batch alone gets the spans out."""
    provider, _ = make(OtlpHttpExporter(RESOURCE), max_batch_size=5)
    emit(provider, 5)
    spans = otlp_env.wait_for(lambda got: len(got) == 5, timeout=10)
    assert len({s.span_id for s in spans}) == 5
    provider.shutdown()


def test_shutdown_sends_what_is_left(otlp_env: OtlpReceiver) -> None:
    provider, _ = make(OtlpHttpExporter(RESOURCE))
    emit(provider, 3)
    assert otlp_env.snapshot() == []
    provider.shutdown()
    assert len(otlp_env.snapshot()) == 3


def test_overloaded_collector_is_retried(
    otlp_env: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_env.failures.extend([503, 429])
    provider, processor = make(OtlpHttpExporter(RESOURCE))
    emit(provider, 2)
    assert processor.force_flush()
    assert len(otlp_env.snapshot()) == 2, "delivered after two refusals, once"
    assert "could not export" not in caplog.text
    provider.shutdown()


def test_rejected_batch_is_dropped_with_a_warning_and_export_goes_on(
    otlp_env: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_env.failures.append(400)
    provider, processor = make(OtlpHttpExporter(RESOURCE))
    emit(provider, 2, "rejected")
    with caplog.at_level(logging.WARNING, logger="ef_common.span_export"):
        assert processor.force_flush() is False
    assert "could not export 2 spans" in caplog.text and "HTTP 400" in caplog.text
    emit(provider, 1, "later")
    assert processor.force_flush()
    assert [s.name for s in otlp_env.snapshot()] == ["later-0"]
    provider.shutdown()


def test_unreachable_collector_gives_up_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")  # milliseconds, as the spec says
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret")
    exporter = OtlpHttpExporter(RESOURCE)
    assert exporter.timeout_s == 0.5
    provider, processor = make(exporter)
    emit(provider, 1)
    with caplog.at_level(logging.WARNING, logger="ef_common.span_export"):
        assert processor.force_flush() is False
    assert "could not export 1 spans" in caplog.text and "ConnectionRefusedError" in caplog.text
    assert "s3cret" not in caplog.text
    provider.shutdown()


def test_a_full_queue_drops_new_spans_and_says_so(
    otlp_env: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    provider, processor = make(OtlpHttpExporter(RESOURCE), max_queue_size=5, max_batch_size=5)
    with processor._export_lock:  # the export thread is busy (a slow collector)
        emit(provider, 8)
    assert processor.dropped == 3
    with caplog.at_level(logging.WARNING, logger="ef_common.span_export"):
        assert processor.force_flush()
    assert "dropped 3 spans" in caplog.text
    assert [s.name for s in otlp_env.snapshot()] == [f"span-{n}" for n in range(5)]
    provider.shutdown()


def _child(endpoint: str) -> None:
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    provider = _FORKED[0]
    emit(provider, 2, f"child-{os.getpid()}")
    provider.shutdown()


_FORKED: list[LeanTracerProvider] = []


def test_forked_workers_export_their_own_spans(otlp_env: OtlpReceiver) -> None:
    """A provider made before fork (uvicorn/gunicorn workers) exports from each child."""
    provider, _ = make(OtlpHttpExporter(RESOURCE), max_batch_size=2)
    _FORKED[:] = [provider]
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_child, args=(otlp_env.endpoint,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    spans = otlp_env.wait_for(lambda got: len(got) == 4, timeout=10)
    assert len({s.name.split("-")[1] for s in spans}) == 2, "spans from both children"
    provider.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "use gzip or none"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT='soon'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "is not an http(s) URL"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "Bearer s3cret"}, "each entry must be key=value"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE='0': must be positive"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "8"}, "must not exceed OTEL_BSP_MAX_QUEUE_SIZE (8)"),
    ],
)
def test_bad_settings_fail_clearly(
    otlp_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        BatchExporter([OtlpHttpExporter(RESOURCE)])
    assert "s3cret" not in str(err.value)


def test_traces_endpoint_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert OtlpHttpExporter(RESOURCE).url == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://tempo.lan/otlp/v1/traces")
    assert OtlpHttpExporter(RESOURCE).url == "https://tempo.lan/otlp/v1/traces"


def test_a_kept_alive_connection_the_collector_dropped_is_replaced(
    otlp_env: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector restarts between two batches: the next batch still goes, first time."""
    provider, processor = make(OtlpHttpExporter(RESOURCE))
    emit(provider, 1, "before")
    assert processor.force_flush()
    otlp_env.stop()  # closes the kept-alive connection under the exporter
    restarted = OtlpReceiver(port=otlp_env.port).start()
    try:
        emit(provider, 1, "after")
        with caplog.at_level(logging.WARNING, logger="ef_common.span_export"):
            assert processor.force_flush()
        assert [s.name for s in restarted.snapshot()] == ["after-0"]
        assert "could not export" not in caplog.text
    finally:
        provider.shutdown()
        restarted.stop()
