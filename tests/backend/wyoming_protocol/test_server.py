"""The Wyoming endpoint, driven by the real `wyoming` client library (as Home Assistant uses it)
against a running ``ef-backend serve`` and the real Piper ef_tts.

One backend with Wyoming on (a free port, loopback-only access list, zeroconf on loopback) is
shared by the module; the engine-down and port-taken cases start their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.backend.api.helpers import unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.otlp import OtlpReceiver, ReceivedSpan
from tests.utils.procs import Server, free_port
from tests.utils.prometheus import metric_value

pytestmark = pytest.mark.server

#: Longest wait for one event: generous for a loaded 2-core machine, but never a hang.
READ_TIMEOUT_S = 60.0
RATE, WIDTH = 24_000, 2
ZEROCONF_NAME = f"ef-test-{os.getpid()}"


@dataclass
class Wyoming:
    """Where a backend's Wyoming listener is."""

    backend: Server
    port: int
    data_dir: Path

    def client(self, *, source: str | None = None) -> AsyncTcpClient:
        if source is None:
            return AsyncTcpClient("127.0.0.1", self.port, read_timeout=READ_TIMEOUT_S)
        return _BoundClient("127.0.0.1", self.port, source=source, read_timeout=READ_TIMEOUT_S)

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.backend.url + "/metrics", timeout=10).text
        return metric_value(text, name, labels or None)


class _BoundClient(AsyncTcpClient):
    """The library's TCP client, connecting from another loopback address (another machine)."""

    def __init__(self, host: str, port: int, *, source: str, read_timeout: float) -> None:
        super().__init__(host, port, read_timeout=read_timeout)
        self.source = source

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, local_addr=(self.source, 0)
        )


def _start(factory: BackendFactory, data_dir: Path, **env: str) -> Wyoming:
    port = free_port()
    backend = factory(data_dir, EF_WYOMING_ENABLED="true", EF_WYOMING_PORT=str(port), **env)
    return Wyoming(backend, port, data_dir)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """Where the shared backend exports its traces (OTLP/HTTP)."""
    rec = OtlpReceiver().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def wyoming(backend_factory: BackendFactory, session_tmp: Path, receiver: OtlpReceiver) -> Wyoming:
    return _start(
        backend_factory,
        session_tmp / "wyoming",
        EF_WYOMING_CIDRS="127.0.0.1/32",
        EF_WYOMING_ZEROCONF="true",
        EF_WYOMING_ZEROCONF_NAME=ZEROCONF_NAME,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )


@dataclass
class Answer:
    """What the server sent for one request, with the time each event arrived."""

    events: list[tuple[float, Event]] = field(default_factory=list)

    def types(self) -> list[str]:
        return [event.type for _, event in self.events]

    @property
    def pcm(self) -> bytes:
        return b"".join(
            AudioChunk.from_event(e).audio for _, e in self.events if AudioChunk.is_type(e.type)
        )

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (RATE * WIDTH)

    def first(self, event_type: str) -> float:
        return next(t for t, e in self.events if e.type == event_type)


async def read_until(client: AsyncTcpClient, last: str, answer: Answer | None = None) -> Answer:
    """Read events until one of type ``last`` (the read timeout fails a hang)."""
    answer = answer or Answer()
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed after {answer.types()}"
        answer.events.append((time.monotonic(), event))
        if event.type == last:
            return answer


async def synthesize(
    client: AsyncTcpClient, text: str, voice: SynthesizeVoice | None = None
) -> Answer:
    await client.write_event(Synthesize(text=text, voice=voice).event())
    return await read_until(client, "audio-stop")


@asynccontextmanager
async def connected(wyoming: Wyoming, **kwargs: str) -> AsyncIterator[AsyncTcpClient]:
    async with wyoming.client(**kwargs) as client:
        yield client


def wait_idle(wyoming: Wyoming, timeout: float = 30.0) -> None:
    """Until no job is queued or running (a finished answer's job stores its audio just after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = httpx.get(wyoming.backend.url + "/api/admin/queue", timeout=10).json()
        if stats["queued"] == 0 and stats["running"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"queue not idle after {timeout}s: {stats}")


def http_pcm(wyoming: Wyoming, text: str, voice: str | None = None) -> bytes:
    body = {"text": text, "format": "pcm", **({"voice": voice} if voice else {})}
    response = httpx.post(wyoming.backend.url + "/api/v1/speech", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.content


def voices_of(wyoming: Wyoming) -> list[str]:
    response = httpx.get(wyoming.backend.url + "/api/v1/voices", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["data"] if isinstance(body, dict) else body
    return sorted(v["id"] for v in items)


# --- describe -----------------------------------------------------------------------------------


async def test_describe_lists_the_engine_voices(wyoming: Wyoming) -> None:
    async with connected(wyoming) as client:
        await client.write_event(Describe().event())
        answer = await read_until(client, "info")
    assert answer.types() == ["info"]
    programs = Info.from_event(answer.events[0][1]).tts
    assert [p.name for p in programs] == ["echoforge"]
    program = programs[0]
    assert program.supports_synthesize_streaming is True
    assert sorted(v.name for v in program.voices) == voices_of(wyoming)
    joe = next(v for v in program.voices if v.name == "en_US-joe-medium")
    assert joe.languages == ["en_US"]
    assert joe.installed is True


# --- synthesize ---------------------------------------------------------------------------------


async def test_synthesize_returns_plausible_audio_and_a_repeat_is_a_cache_hit(
    wyoming: Wyoming,
) -> None:
    text = unique_text("Good evening, the front door is open") + " Please close it soon."
    words = len(text.split())
    hits = wyoming.metric("ef_wyoming_cache_requests_total", result="hit")
    async with connected(wyoming) as client:
        first = await synthesize(client, text)
        types = first.types()
        assert types[0] == "audio-start" and types[-1] == "audio-stop"
        assert set(types[1:-1]) == {"audio-chunk"}
        start = AudioStart.from_event(first.events[0][1])
        assert (start.rate, start.width, start.channels) == (RATE, WIDTH, 1)
        # Speech runs at 2-4 words a second; a pause is added between the two sentences.
        assert words * 0.2 < first.seconds < words * 0.6, (words, first.seconds)
        wait_idle(wyoming)
        second = await synthesize(client, text)
    assert second.pcm == first.pcm
    assert wyoming.metric("ef_wyoming_cache_requests_total", result="hit") == hits + 1
    # The same audio as the HTTP API's (same cache entry: this request is a hit there too).
    assert http_pcm(wyoming, text) == first.pcm


async def test_streamed_text_is_spoken_sentence_by_sentence_before_it_ends(
    wyoming: Wyoming,
) -> None:
    first_sentence = unique_text("The weather today is sunny")
    async with connected(wyoming) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text=first_sentence + " Tomor").event())
        # The first sentence is complete (another one started): its audio comes now.
        early = await read_until(client, "audio-chunk")
        assert early.types() == ["audio-start", "audio-chunk"]
        last_text_sent = time.monotonic()
        await client.write_event(SynthesizeChunk(text="row it will rain.").event())
        await client.write_event(Synthesize(text="ignored: the whole text again").event())
        await client.write_event(SynthesizeStop().event())
        answer = await read_until(client, "synthesize-stopped", early)
    assert early.first("audio-chunk") < last_text_sent
    types = answer.types()
    assert types.count("audio-start") == 2 and types.count("audio-stop") == 2
    assert types[-1] == "synthesize-stopped"
    # Each sentence is its own request on the HTTP path: same audio as asking for it there.
    assert answer.pcm == http_pcm(wyoming, first_sentence) + http_pcm(
        wyoming, "Tomorrow it will rain."
    )


async def test_an_unknown_voice_is_an_error_event_and_the_connection_stays_usable(
    wyoming: Wyoming,
) -> None:
    async with connected(wyoming) as client:
        bad = await synthesize(client, "Hello there.", SynthesizeVoice(name="no-such-voice"))
        assert bad.types() == ["error", "audio-stop"]
        error = Error.from_event(bad.events[0][1])
        assert error.code == "unknown_voice"
        assert error.text.startswith("Unknown voice 'no-such-voice'. Valid voices: ")
        assert "en_US-joe-medium" in error.text
        good = await synthesize(
            client, unique_text("Still here"), SynthesizeVoice(name="en_US-joe-medium")
        )
    assert good.types()[0] == "audio-start" and good.seconds > 0.5


async def test_a_client_outside_the_allowed_networks_is_refused(wyoming: Wyoming) -> None:
    refused = wyoming.metric("ef_wyoming_connections_total", result="refused")
    async with connected(wyoming, source="127.0.0.2") as client:
        event = await client.read_event()  # told at once, before it sends anything
        assert event is not None and Error.is_type(event.type)
        error = Error.from_event(event)
        assert (error.code, error.text) == (
            "forbidden",
            "Connections from 127.0.0.2 are not allowed (EF_WYOMING_CIDRS).",
        )
        assert await client.read_event() is None  # closed: nothing else is answered
    assert wyoming.metric("ef_wyoming_connections_total", result="refused") == refused + 1


async def test_twenty_concurrent_clients_each_get_their_own_audio(wyoming: Wyoming) -> None:
    texts = [unique_text(f"Client {n} says hello") for n in range(20)]

    async def one(text: str) -> bytes:
        async with connected(wyoming) as client:
            return (await synthesize(client, text)).pcm

    answers = await asyncio.gather(*(one(text) for text in texts))
    assert len(set(answers)) == 20
    for text, pcm in zip(texts, answers, strict=True):
        assert pcm == http_pcm(wyoming, text), text


async def test_a_synthesize_is_one_trace_and_a_json_log_line(
    wyoming: Wyoming, receiver: OtlpReceiver
) -> None:
    text = unique_text("Trace this announcement")
    async with connected(wyoming) as client:
        await synthesize(client, text)

    def root_of(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        return next(
            (
                s
                for s in spans
                if s.name == "wyoming synthesize" and s.attributes["ef.text_chars"] == len(text)
            ),
            None,
        )

    def arrived(spans: list[ReceivedSpan]) -> bool:
        root = root_of(spans)
        return root is not None and any(
            s.name == "job.process" and s.trace_id == root.trace_id for s in spans
        )

    spans = receiver.wait_for(arrived, timeout=30)
    root = root_of(spans)
    assert root is not None
    assert (root.service, root.kind, root.parent_span_id) == ("ef_backend", 2, "")
    assert root.attributes["ef.cache_hit"] is False
    mine = [s for s in spans if s.trace_id == root.trace_id]
    by_id = {s.span_id: s for s in mine}
    for span in mine:  # one tree: every span hangs off the Wyoming request
        node = span
        while node.span_id != root.span_id:
            assert node.parent_span_id in by_id, f"{node.name} is cut off"
            node = by_id[node.parent_span_id]
    assert {"cache.lookup", "queue.wait", "job.process"} <= {s.name for s in mine}
    assert text not in json.dumps([s.attributes for s in mine])

    log_text = wyoming.backend.log_path.read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    (logged,) = [
        line
        for line in lines
        if line.get("message") == "wyoming synthesize" and line["trace_id"] == root.trace_id
    ]
    assert logged["peer"] == "127.0.0.1"
    assert logged["text_chars"] == len(text)
    assert logged["cache_hit"] is False
    assert isinstance(logged["job_id"], str)
    assert text not in log_text


# --- operations ---------------------------------------------------------------------------------


async def test_zeroconf_announces_the_listener_on_loopback(wyoming: Wyoming) -> None:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        info = AsyncServiceInfo("_wyoming._tcp.local.", f"{ZEROCONF_NAME}._wyoming._tcp.local.")
        assert await info.async_request(zc.zeroconf, 5000)
    finally:
        await zc.async_close()
    assert info.port == wyoming.port
    assert info.parsed_addresses() == ["127.0.0.1"]


def test_health_and_metrics_report_the_listener(wyoming: Wyoming) -> None:
    deadline = time.monotonic() + 30
    while True:  # the announcement ends a few seconds after mDNS probing began
        check = httpx.get(wyoming.backend.url + "/health", timeout=30).json()["checks"]["wyoming"]
        if check["detail"]["zeroconf"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert check["status"] == "ok"
    assert check["detail"]["address"] == f"127.0.0.1:{wyoming.port}"
    assert check["detail"]["zeroconf"] is True
    assert wyoming.metric("ef_wyoming_listener_up", address=f"127.0.0.1:{wyoming.port}") == 1


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_port_leaves_http_up_and_health_degraded(
    backend_factory: BackendFactory, session_tmp: Path, taken_port: int
) -> None:
    backend = backend_factory(
        session_tmp / "wyoming-taken", EF_WYOMING_ENABLED="true", EF_WYOMING_PORT=str(taken_port)
    )
    response = httpx.get(backend.url + "/health", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    check = body["checks"]["wyoming"]
    assert check["status"] == "warn"
    assert check["error"] == f"cannot listen on 127.0.0.1:{taken_port}: Address already in use"
    text = httpx.get(backend.url + "/metrics", timeout=10).text
    address = f"127.0.0.1:{taken_port}"
    assert metric_value(text, "ef_wyoming_listener_up", {"address": address}) == 0
    # ... and HTTP speech works as ever.
    spoken = httpx.post(backend.url + "/api/v1/speech", json={"text": "Still fine."}, timeout=60)
    assert spoken.status_code == 200, spoken.text


async def test_engine_down_is_an_error_event_not_a_hang(
    backend_factory: BackendFactory, session_tmp: Path, wyoming: Wyoming
) -> None:
    """The engine went away after the backend had known it: voices and identity are remembered
    (engine.json), so the request really reaches the queue and the error comes from there."""
    data_dir = session_tmp / "wyoming-engine-down"
    data_dir.mkdir()
    shutil.copy(wyoming.data_dir / "engine.json", data_dir / "engine.json")
    down = _start(
        backend_factory,
        data_dir,
        ready_path="/health/live",
        EF_TTS_URL=f"http://127.0.0.1:{free_port()}",
        EF_TTS_CONNECT_TIMEOUT_S="0.5",
    )
    async with connected(down) as client:
        answer = await synthesize(client, unique_text("Nobody will hear this"))
        assert answer.types() == ["error", "audio-stop"]
        error = Error.from_event(answer.events[0][1])
        assert error.code == "engine_unavailable"
        # A stream ends the same way: the error, then the end of the stream.
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text=unique_text("Nor this")).event())
        await client.write_event(SynthesizeStop().event())
        streamed = await read_until(client, "synthesize-stopped")
    assert streamed.types() == ["error", "synthesize-stopped"]
    assert Error.from_event(streamed.events[0][1]).code == "engine_unavailable"


@pytest.mark.slow
async def test_two_workers_share_the_port_the_metrics_and_one_announcement(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """EF_WORKERS=2: both workers listen (SO_REUSEPORT), every scrape sums both, one announces."""
    two = _start(
        backend_factory,
        session_tmp / "wyoming-two-workers",
        EF_WORKERS="2",
        EF_WYOMING_ZEROCONF="true",
        EF_WYOMING_ZEROCONF_NAME=f"{ZEROCONF_NAME}-two",
    )

    def messages() -> list[str]:
        text = two.backend.log_path.read_text()
        return [json.loads(line).get("message") for line in text.splitlines() if line[:1] == "{"]

    def logged(message: str, times: int = 1) -> int:
        """How often ``message`` is in the log, once it is there ``times`` (workers start late:
        the second may still be starting when the first answers /health/ready)."""
        deadline = time.monotonic() + 60
        while messages().count(message) < times and time.monotonic() < deadline:
            time.sleep(0.2)
        return messages().count(message)

    assert logged("wyoming listener started", times=2) >= 2

    async def describe() -> str:
        async with connected(two) as client:
            await client.write_event(Describe().event())
            return (await read_until(client, "info")).types()[0]

    assert await asyncio.gather(*(describe() for _ in range(10))) == ["info"] * 10
    describes = {"request": "describe", "outcome": "ok"}
    sums = [two.metric("ef_wyoming_requests_total", **describes) for _ in range(4)]
    assert sums == [10] * 4, "whichever worker answers the scrape, it sums both"
    # (uvicorn restarts a worker that starts too slowly: then one more line of each kind)
    assert logged("zeroconf: Wyoming service announced") >= 1
    assert logged("zeroconf: another worker announces the Wyoming service") >= 1
