"""The lean tracer (ef_common.spans) behaves as the OpenTelemetry SDK where it is observable,
and its protobuf (ef_common.otlp_proto) is byte-for-byte what the SDK's OTLP encoder means.

The encoder is checked by decoding its output with the official generated protobuf classes and
comparing with what ``opentelemetry-exporter-otlp-proto-common`` builds from the same span.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from ef_common import otlp_proto
from ef_common.spans import LeanSpan, LeanTracerProvider, sampler_from_env
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, Status, StatusCode
from opentelemetry.trace.span import SpanContext, TraceFlags, TraceState

RESOURCE = {"service.name": "ef-test", "telemetry.sdk.language": "python", "replicas": 2}


class Collect:
    """A span processor that keeps finished spans."""

    def __init__(self) -> None:
        self.spans: list[LeanSpan] = []

    def on_end(self, span: LeanSpan) -> None:
        self.spans.append(span)

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        return True

    def shutdown(self) -> None:
        return None


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LeanTracerProvider, Collect]]:
    for name in (
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    ):
        monkeypatch.delenv(name, raising=False)
    collect = Collect()
    yield LeanTracerProvider(collect, RESOURCE), collect


def sdk_span(span: LeanSpan) -> ReadableSpan:
    """The SDK's view of the same span, for its encoder."""
    parent = None
    if span.parent_id is not None:
        parent = SpanContext(
            span.trace_id, span.parent_id, span.parent_is_remote, TraceFlags(1), span.trace_state
        )
    status = Status(span.status_code, span.status_description)
    scope = span.scope
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=parent,
        resource=Resource(RESOURCE),
        attributes=dict(span.attributes),
        events=tuple(Event(name, attrs, timestamp=when) for name, when, attrs in span.events),
        links=tuple(span.links),
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=InstrumentationScope(scope.name, scope.version),
    )


def ours(spans: list[LeanSpan]) -> ExportTraceServiceRequest:
    scope = spans[0].scope
    body = otlp_proto.encode_request(
        otlp_proto.encode_resource(RESOURCE),
        [
            (
                otlp_proto.encode_scope(scope.name, scope.version, scope.attributes),
                [otlp_proto.encode_span(s) for s in spans],
            )
        ],
    )
    return ExportTraceServiceRequest.FromString(body)


def without_link_state(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for link in span.links:
                    link.ClearField("trace_state")
    return request


def test_encoding_matches_the_sdk_encoder(provider: tuple[LeanTracerProvider, Collect]) -> None:
    tp, collect = provider
    tracer = tp.get_tracer("ef.test", "1.2.3")
    carrier = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=abc,other=x-y",
    }
    remote = propagate.extract(carrier)
    linked = SpanContext(0x1234, 0x5678, True, TraceFlags(1), TraceState([("k", "v")]))
    with tracer.start_as_current_span(
        "GET /api/v1/speech",
        context=remote,
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "negative": -42,
            "big": 2**63 - 1,
            "ratio": 0.25,
            "flag": True,
            "off": False,
            "names": ["a", "b"],
            "numbers": [1, 2, 3],
            "unicode": "Grüße, 世界",
        },
        links=[Link(linked, {"why": "retry"})],
        start_time=1_700_000_000_000_000_000,
    ) as server:
        server.add_event("queued", {"depth": 3}, timestamp=1_700_000_000_100_000_000)
        with tracer.start_as_current_span(
            "engine.synthesize", start_time=1_700_000_000_200_000_000
        ) as inner:
            inner.set_status(Status(StatusCode.ERROR, "engine said 500"))
            inner.end(1_700_000_000_300_000_000)
        server.set_status(StatusCode.OK)
        server.end(1_700_000_000_400_000_000)
    inner_span, server_span = collect.spans
    assert server_span.parent_is_remote and not inner_span.parent_is_remote
    # One deliberate difference: the SDK's encoder leaves out a link's trace state (the proto
    # has the field); ours writes it.
    link = ours([server_span]).resource_spans[0].scope_spans[0].spans[0].links[0]
    assert link.trace_state == "k=v"
    for span in (server_span, inner_span):
        assert without_link_state(ours([span])) == encode_spans([sdk_span(span)]), span.name
    both = without_link_state(ours(collect.spans))
    assert both == encode_spans([sdk_span(s) for s in collect.spans])
    # The trace continued the caller's: same trace id, its span as parent, its trace state.
    decoded = ours([server_span]).resource_spans[0].scope_spans[0].spans[0]
    assert decoded.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert decoded.parent_span_id.hex() == "b7ad6b7169203331"
    assert decoded.trace_state == "vendor=abc,other=x-y"
    assert decoded.flags == 0x300, "parent is remote, and says so"


def test_request_spans_and_long_bodies_match_the_sdk_encoder(
    provider: tuple[LeanTracerProvider, Collect],
) -> None:
    """The request span's fast path (SERVER kind, status unset) and span bodies whose length
    needs one, two and three varint bytes (the lengths 127/128 and 16383/16384 at the edges)."""
    tp, collect = provider
    tracer = tp.get_tracer("ef_common.asgi")
    request = tracer.start_request_span(
        "GET", None, {"http.request.method": "GET", "url.path": "/x", "url.scheme": "http"}
    )
    request.end_request("GET /x", {"http.route": "/x", "http.response.status_code": 200}, False)
    base = len(otlp_proto.encode_span(_sized(tracer, 0)))
    for edge in (128, 16384):
        for padding in range(edge - base - 4, edge - base + 4):
            _sized(tracer, padding)
    lengths = {len(otlp_proto.encode_span(s)) for s in collect.spans}
    assert {127, 128, 16383, 16384} <= lengths, sorted(lengths)
    assert ours(collect.spans) == encode_spans([sdk_span(s) for s in collect.spans])
    assert otlp_proto._len(b"x" * 2**21) == b"\x80\x80\x80\x01"  # three bytes and more


def test_the_encoding_caches_keep_no_long_values(
    provider: tuple[LeanTracerProvider, Collect],
) -> None:
    """Paths come from clients: the caches of encoded attributes and names stay small."""
    tp, collect = provider
    long_path = "/" + "a" * 5000
    span = tp.get_tracer("t").start_span(long_path, attributes={"url.path": long_path})
    span.end()
    decoded = ours(collect.spans).resource_spans[0].scope_spans[0].spans[0]
    assert decoded.name == long_path and decoded.attributes[0].value.string_value == long_path
    assert ("url.path", long_path) not in otlp_proto._SPAN_ATTRIBUTES
    assert long_path not in otlp_proto._NAMES
    short = tp.get_tracer("t").start_span("GET /x", attributes={"url.path": "/x"})
    short.end()
    ours(collect.spans[1:])
    assert ("url.path", "/x") in otlp_proto._SPAN_ATTRIBUTES and "GET /x" in otlp_proto._NAMES


def _sized(tracer: Any, padding: int) -> LeanSpan:
    span = tracer.start_span("sized", attributes={"pad": "p" * max(padding, 0)}, start_time=1)
    span.end(2)
    assert isinstance(span, LeanSpan)
    return span


def test_events_and_links_of_one_span_are_its_own(
    provider: tuple[LeanTracerProvider, Collect],
) -> None:
    """Spans without events or links share one empty value; the first event or link of a span
    must not appear on any other."""
    tp, collect = provider
    tracer = tp.get_tracer("t")
    first, second = tracer.start_span("first"), tracer.start_span("second")
    other = SpanContext(0xAB, 0xCD, True, TraceFlags(1))
    first.add_event("only mine", {"n": 1})
    first.add_link(other, {"why": "test"})
    third = tracer.start_span("third")
    for span in (first, second, third):
        span.end()
    done = {span.name: span for span in collect.spans}
    assert [e[0] for e in done["first"].events] == ["only mine"]
    assert [link.context.span_id for link in done["first"].links] == [0xCD]
    for name in ("second", "third"):
        assert not done[name].events and not done[name].links, name
    decoded = {s.name: s for s in ours(collect.spans).resource_spans[0].scope_spans[0].spans}
    assert len(decoded["first"].events) == 1 and len(decoded["first"].links) == 1
    assert not decoded["second"].events and not decoded["third"].links


def test_dropped_counts_are_encoded(
    provider: tuple[LeanTracerProvider, Collect], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    collect = Collect()
    tracer = LeanTracerProvider(collect, RESOURCE).get_tracer("t")
    span = tracer.start_span("limited", attributes={"a": 1, "b": 2, "c": 3})
    span.set_attribute("d", 4)
    span.set_attribute("a", 10)  # an existing key is updated, not dropped
    span.add_event("one")
    span.add_event("two")
    span.end()
    (done,) = collect.spans
    assert done.attributes == {"a": 10, "b": 2}
    decoded = ours([done]).resource_spans[0].scope_spans[0].spans[0]
    assert decoded.dropped_attributes_count == 2
    assert [e.name for e in decoded.events] == ["one"] and decoded.dropped_events_count == 1


def test_invalid_attribute_values_are_dropped(provider: tuple[LeanTracerProvider, Collect]) -> None:
    tp, collect = provider
    span = tp.get_tracer("t").start_span(
        "s", attributes={"ok": "yes", "none": None, "mixed": [1, "a"], "nested": {"a": 1}}
    )
    span.set_attributes({"tuple": ("x", "y"), "obj": object()})
    span.end()
    assert collect.spans[0].attributes == {"ok": "yes", "tuple": ("x", "y")}


def test_children_nest_and_exceptions_are_recorded(
    provider: tuple[LeanTracerProvider, Collect],
) -> None:
    tp, collect = provider
    tracer = tp.get_tracer("t")
    with pytest.raises(ValueError), tracer.start_as_current_span("parent") as parent:
        assert trace.get_current_span() is parent
        with tracer.start_as_current_span("child"):
            raise ValueError("bad input")
    child, parent_span = collect.spans
    assert child.trace_id == parent_span.trace_id
    assert child.parent_id == parent_span.span_id and parent_span.parent_id is None
    for span in (child, parent_span):
        assert span.status_code is StatusCode.ERROR
        assert span.status_description == "ValueError: bad input"
        (event,) = span.events
        assert event[0] == "exception"
        assert event[2]["exception.type"] == "ValueError"
        assert "bad input" in event[2]["exception.stacktrace"]
    assert trace.get_current_span() is trace.INVALID_SPAN, "context restored"


def test_status_rules_follow_the_sdk(provider: tuple[LeanTracerProvider, Collect]) -> None:
    tp, _ = provider
    span = tp.get_tracer("t").start_span("s")
    span.set_status(StatusCode.UNSET)
    assert span.status_code is StatusCode.UNSET
    span.set_status(StatusCode.ERROR, "first")
    span.set_status(Status(StatusCode.OK))
    assert span.status_code is StatusCode.OK and span.status_description is None
    span.set_status(StatusCode.ERROR, "too late")
    assert span.status_code is StatusCode.OK, "OK is final"
    span.end()
    span.set_attribute("after", "end")
    span.update_name("renamed")
    assert "after" not in span.attributes and span.name == "s" and not span.is_recording()


def _span_in(parent: Any, tp: LeanTracerProvider) -> trace.Span:
    return tp.get_tracer("t").start_span("s", context=parent)


@pytest.mark.parametrize(
    ("sampler", "arg", "root", "sampled_parent", "unsampled_parent"),
    [
        ("", "", True, True, False),  # default: parentbased_always_on
        ("always_on", "", True, True, True),
        ("always_off", "", False, False, False),
        ("parentbased_always_off", "", False, True, False),
        ("traceidratio", "0", False, False, False),
        ("parentbased_traceidratio", "1", True, True, False),
    ],
)
def test_samplers_from_env(
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    arg: str,
    root: bool,
    sampled_parent: bool,
    unsampled_parent: bool,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    tp = LeanTracerProvider(Collect(), RESOURCE)
    parents = {
        "root": None,
        "sampled": trace.set_span_in_context(
            NonRecordingSpan(SpanContext(7, 8, True, TraceFlags(1)))
        ),
        "unsampled": trace.set_span_in_context(
            NonRecordingSpan(SpanContext(7, 8, True, TraceFlags(0)))
        ),
    }
    expected = {"root": root, "sampled": sampled_parent, "unsampled": unsampled_parent}
    for name, parent in parents.items():
        span = _span_in(parent, tp)
        assert span.is_recording() is expected[name], name
        ctx = span.get_span_context()
        assert ctx.is_valid and ctx.trace_flags.sampled is expected[name], name
        if parent is not None:
            assert ctx.trace_id == 7, "a dropped span still carries the trace on"


def test_ratio_sampler_keeps_the_same_traces_as_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    _, decide = sampler_from_env()
    sdk = ParentBased(TraceIdRatioBased(0.25))
    rng = random.Random(4)
    kept = 0
    for _ in range(2000):
        trace_id = rng.getrandbits(128)
        theirs = sdk.should_sample(None, trace_id, "s").decision.is_sampled()
        assert decide(None, trace_id) is theirs
        kept += theirs
    assert 400 < kept < 600, "about a quarter"


def test_bad_sampler_settings_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER='jaeger_remote': unsupported"):
        sampler_from_env()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many")
    with pytest.raises(ValueError, match="OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT='many'"):
        LeanTracerProvider(Collect(), RESOURCE)


def test_stock_instrumentation_libraries_work_on_it(
    provider: tuple[LeanTracerProvider, Collect],
) -> None:
    """opentelemetry-instrumentation-fastapi drives spans only through the API."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    tp, collect = provider
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=tp)
    with TestClient(app) as client:
        assert client.get("/items/1").status_code == 200
    names = {s.name for s in collect.spans}
    assert "GET /items/{item_id}" in names
    server = next(s for s in collect.spans if s.kind is SpanKind.SERVER)
    assert all(s.trace_id == server.trace_id for s in collect.spans)
    assert server.attributes["http.route"] == "/items/{item_id}"
