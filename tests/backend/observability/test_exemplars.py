"""Every latency histogram of the backend links its observations to the trace they were made in."""

from __future__ import annotations

from ef_backend.observability import metrics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.exposition import generate_latest


def exemplar_lines(trace_id: str) -> list[str]:
    text = generate_latest(REGISTRY).decode()
    return [line for line in text.splitlines() if f'trace_id="{trace_id}"' in line]


def test_observations_in_a_sampled_span_carry_its_trace_id() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("job.process") as span:
        metrics.tts_synthesis_duration_seconds.labels("piper", "exemplar-voice").observe(0.3)
        metrics.tts_request_duration_seconds.labels("miss").observe(0.7)
        metrics.db_query_duration_seconds.labels("select").observe(0.0002)
    trace_id = f"{span.get_span_context().trace_id:032x}"
    lines = exemplar_lines(trace_id)
    families = {line.split("{", 1)[0] for line in lines}
    assert families == {
        "ef_tts_synthesis_duration_seconds_bucket",
        "ef_tts_request_duration_seconds_bucket",
        "ef_db_query_duration_seconds_bucket",
    }
    # The exemplar sits on the bucket the value fell in, with the observed value.
    (synth,) = [line for line in lines if 'voice="exemplar-voice"' in line]
    assert 'le="0.5"' in synth and synth.rstrip().split(" ")[-2] == "0.3"


def test_unsampled_or_untraced_observations_carry_none() -> None:
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    with tracer.start_as_current_span("not sampled") as span:
        metrics.tts_first_audio_seconds.observe(0.2)
    assert span.get_span_context().trace_id != 0
    assert exemplar_lines(f"{span.get_span_context().trace_id:032x}") == []
    assert metrics.trace_exemplar() is None
