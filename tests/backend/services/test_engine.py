"""`EngineClient` against the real Piper ef_tts, a closed port, and an emulated older stock server.

The real current stock ``tts-server`` is covered in ``tests/tts/test_engine_client_compat.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ef_backend.core.errors import EngineRejected, EngineUnavailable
from ef_backend.services.audio import read_wav
from ef_backend.services.engine import DEFAULT_VOICE_ID, EngineClient
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tests.utils.procs import Server, free_port, start_server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def stock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An older stock tts-server with faults on demand (see its docstring for why emulated)."""
    port = free_port()
    server = start_server(
        "stock-tts-standin",
        [sys.executable, "-m", "tests.backend.services.stock_tts_standin", str(port)],
        port=port,
        log_dir=Path(tmp_path_factory.mktemp("standin")),
    )
    try:
        server.wait_ready("/health/live", timeout=30)
        yield server
    finally:
        server.stop()


def counting(client: EngineClient) -> list[str]:
    """Record every request the client sends (including retries) with an httpx event hook."""
    sent: list[str] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    client._http().event_hooks["request"].append(hook)
    return sent


async def test_voices_and_info_of_ef_tts(piper_tts: Server) -> None:
    client = EngineClient(piper_tts.url)
    try:
        voices = await client.voices()
        info = await client.info()
    finally:
        await client.aclose()
    assert voices, "ef_tts offers at least the joe voice"
    assert sum(voice.default for voice in voices) == 1
    assert all(voice.id and voice.engine == "piper" for voice in voices)
    assert info.loaded and info.status == "ok" and info.error is None
    assert info.engine == "piper" and info.model


async def test_synthesize_returns_a_wav_and_honours_speed(piper_tts: Server) -> None:
    client = EngineClient(piper_tts.url)
    try:
        normal = await client.synthesize("The washing machine has finished.", voice=None)
        fast = await client.synthesize("The washing machine has finished.", voice=None, speed=2.0)
    finally:
        await client.aclose()
    assert normal.speed_applied  # nothing to apply at 1.0
    pcm = read_wav(normal.wav)
    assert 0.5 < pcm.duration_s < 10
    assert abs(int(pcm.samples.max())) > 1000, "real speech, not silence"
    assert fast.speed_applied, "ef_tts says X-EF-Speed-Applied: 1"
    assert read_wav(fast.wav).duration_s < pcm.duration_s * 0.75


async def test_an_unknown_voice_is_rejected_not_retried(piper_tts: Server) -> None:
    client = EngineClient(piper_tts.url)
    sent = counting(client)
    try:
        with pytest.raises(EngineRejected) as caught:
            await client.synthesize("Hello.", voice="no-such-voice")
    finally:
        await client.aclose()
    assert caught.value.reason == "rejected"
    assert "refused" in caught.value.message
    assert sent == ["POST /api/tts"]


async def test_a_closed_port_is_unreachable_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = EngineClient(url, retries=2, connect_timeout_s=1.0)
    sent = counting(client)
    try:
        with pytest.raises(EngineUnavailable) as caught:
            await client.synthesize("Hello.", voice=None)
    finally:
        await client.aclose()
    assert caught.value.reason == "unreachable"
    assert url in caught.value.message and "unreachable" in caught.value.message
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert sent == ["POST /api/tts"] * 3  # the first try and two retries


async def test_a_slow_engine_times_out(piper_tts: Server) -> None:
    client = EngineClient(piper_tts.url, timeout_s=0.001)
    try:
        with pytest.raises(EngineUnavailable) as caught:
            await client.synthesize("A sentence that takes longer than a millisecond.", voice=None)
    finally:
        await client.aclose()
    assert caught.value.reason == "timeout"


async def test_stock_server_fallbacks(stock_server: Server) -> None:
    client = EngineClient(stock_server.url)
    sent = counting(client)
    try:
        voices = await client.voices()
        info = await client.info()
        result = await client.synthesize("Hello there.", voice=DEFAULT_VOICE_ID)
        seen = httpx.get(f"{stock_server.url}/_seen").json()
    finally:
        await client.aclose()
    assert [(v.id, v.engine, v.default, v.language) for v in voices] == [
        (DEFAULT_VOICE_ID, "coqui", True, "en_US")
    ]
    assert (info.engine, info.model, info.loaded) == ("coqui", "tts_models/en/ljspeech/vits", True)
    assert read_wav(result.wav).duration_s > 0.1
    assert result.speed_applied
    # POST is refused by an old stock server (405): the client falls back to GET.
    assert sent[-2:] == ["POST /api/tts", "GET /api/tts"]
    assert seen[-1]["speaker_id"] == ""  # the single speaker is the server's own default


async def test_stock_server_errors_are_engine_errors(stock_server: Server) -> None:
    client = EngineClient(stock_server.url)
    try:
        with pytest.raises(EngineUnavailable) as caught:
            await client.synthesize("explode", voice=None)
    finally:
        await client.aclose()
    assert caught.value.reason == "engine_error"
    assert "HTTP 500" in caught.value.message and "boom" in caught.value.message


async def test_trace_context_reaches_the_engine(
    stock_server: Server, spans: InMemorySpanExporter
) -> None:
    """With tracing on, the httpx instrumentation makes the call a CLIENT span of the caller's
    trace and sends its W3C context (nothing is injected by hand)."""
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    parent = SpanContext(
        trace_id=trace_id,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    client = EngineClient(stock_server.url)
    try:
        await client.synthesize("Trace me.", voice=None)
    finally:
        context.detach(token)
        await client.aclose()
    # The stand-in is an old stock server: POST is refused (405), the GET fallback answers.
    refused, call = [s for s in spans.get_finished_spans() if s.kind.name == "CLIENT"]
    assert (refused.name, call.name) == ("POST", "GET")
    assert refused.attributes is not None and refused.attributes["error.type"] == "405"
    assert call.context.trace_id == trace_id == refused.context.trace_id
    assert call.attributes is not None and call.attributes["http.response.status_code"] == 200
    # The GET carries the text in its query string; the span records the URL without it.
    assert call.attributes["url.full"] == f"{stock_server.url}/api/tts"
    traceparent = httpx.get(f"{stock_server.url}/_seen").json()[-1]["traceparent"]
    assert traceparent == f"00-{trace_id:032x}-{call.context.span_id:016x}-01"
