"""One Wyoming connection: ``describe``, ``synthesize`` and streamed text, on the HTTP speech path.

Every text goes through `SpeechService.stream` exactly as ``POST /api/v1/speech`` with
``stream: true`` and ``format: pcm`` does: same limits, cache, queue (backpressure, coalescing of
identical requests), engine and error types. The audio is 24 kHz 16-bit mono PCM, sent as the
first sentence is ready.

- ``synthesize``: ``audio-start``, ``audio-chunk``s, ``audio-stop``.
- ``synthesize-start`` / ``-chunk`` / ``-stop`` (Home Assistant while a language model writes):
  each sentence is sent to the queue as soon as the text after it shows that it is complete,
  and is answered with its own ``audio-start`` ... ``audio-stop``; ``synthesize-stopped`` ends
  the stream. The ``synthesize`` Home Assistant sends inside a stream (for older servers) is
  ignored, as wyoming-piper does.
- A failure sends an ``error`` event (``code`` is the HTTP API's error code) and then the event
  that ends the answer (``audio-stop``, or ``synthesize-stopped`` in a stream): Home Assistant
  reads until that event and ignores errors, so without it it would wait forever. The
  connection stays open for the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from ef_backend.core.errors import EchoForgeError
from ef_backend.models import AudioFormat
from ef_backend.observability import metrics
from ef_backend.services.audio import PCM_SAMPLE_RATE
from ef_backend.services.speech import SpeechRequest, SpeechService, SpeechStream
from ef_backend.services.text import normalize, split_sentences
from ef_backend.wyoming import voices

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

__all__ = ["CLIENT", "SAMPLES_PER_CHUNK", "SpeechHandler", "complete_sentences"]

#: The client name of Wyoming requests in jobs, logs and per-client accounting.
CLIENT = "wyoming"
#: Samples per ``audio-chunk`` (as wyoming-piper): about 43 ms at 24 kHz.
SAMPLES_PER_CHUNK = 1024
_WIDTH = 2
_CHANNELS = 1
_CHUNK_BYTES = SAMPLES_PER_CHUNK * _WIDTH * _CHANNELS


def complete_sentences(buffer: str) -> tuple[list[str], str]:
    """The sentences of streamed text known to be complete, and the text still open.

    A sentence is complete once text after it starts another one (the splitter cannot tell
    "Dr." or "3." from a sentence end before it sees what follows). The open rest keeps a
    trailing space, so a word cut between two chunks is joined correctly.
    """
    sentences = split_sentences(normalize(buffer))
    if len(sentences) < 2:
        return [], buffer
    rest = sentences[-1]
    if buffer[-1:].isspace():
        rest += " "
    return sentences[:-1], rest


def _forget(task: asyncio.Task[Any]) -> None:
    """Done callback of a sentence nobody waits for any more: its error is already reported."""
    if not task.cancelled():
        task.exception()


def _error_code(exc: BaseException) -> str:
    code = exc.code if isinstance(exc, EchoForgeError) else "internal_error"
    return code if code in metrics.WYOMING_ERROR_CODES else "internal_error"


async def _pcm_chunks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The service's PCM pieces (one a sentence) as audio-chunk payloads of whole samples."""
    carry = b""
    async for piece in chunks:
        data = carry + piece
        whole = len(data) - len(data) % _WIDTH
        carry = data[whole:]
        for offset in range(0, whole, _CHUNK_BYTES):
            yield data[offset : min(offset + _CHUNK_BYTES, whole)]


class SpeechHandler(AsyncEventHandler):
    """Answers one client's events in order (the wyoming package reads the next one after)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        speech: SpeechService,
        version: str,
        peer: str,
    ) -> None:
        super().__init__(reader, writer)
        self.speech = speech
        self.version = version
        self.peer = peer
        self._stream: _TextStream | None = None

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._handle(event)
        except ConnectionError:
            return False  # the client went away; nothing left to tell it
        return True

    async def _handle(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self._describe()
        elif Synthesize.is_type(event.type):
            if self._stream is None:  # inside a stream it repeats the streamed text
                await self._synthesize(Synthesize.from_event(event))
        elif SynthesizeStart.is_type(event.type):
            if self._stream is not None:
                self._stream.abandon()
            self._stream = _TextStream(self, SynthesizeStart.from_event(event).voice)
        elif SynthesizeChunk.is_type(event.type):
            if self._stream is not None:
                self._stream.add(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            stream, self._stream = self._stream, None
            if stream is not None:
                await stream.finish()
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            log.debug("wyoming event ignored", extra={"event": event.type, "peer": self.peer})

    async def disconnect(self) -> None:
        if self._stream is not None:
            self._stream.abandon()
            self._stream = None

    # -- answers -----------------------------------------------------------------------------

    async def _describe(self) -> None:
        try:
            known = await self.speech.voices()
            engine = await self.speech.engine_info()
        except EchoForgeError as exc:
            await self.fail("describe", exc)
            return
        info = voices.describe(known, engine, version=self.version)
        await self.write_event(info.event())
        metrics.wyoming_requests_total.labels("describe", "ok").inc()

    async def _synthesize(self, synthesize: Synthesize) -> None:
        started = time.perf_counter()
        with tracer.start_as_current_span("wyoming synthesize", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("ef.wyoming.peer", self.peer)
            span.set_attribute("ef.text_chars", len(synthesize.text))
            try:
                stream = await self.open(synthesize.text, synthesize.voice)
                span.set_attribute("ef.cache_hit", stream.cache_hit)
                await self.write_event(AudioStart(PCM_SAMPLE_RATE, _WIDTH, _CHANNELS).event())
                await self.send_audio(stream, started)
                await self.write_event(AudioStop().event())
            except ConnectionError:
                raise
            except Exception as exc:
                await self.fail("synthesize", exc, end=AudioStop())
                return
            elapsed = time.perf_counter() - started
            metrics.wyoming_requests_total.labels("synthesize", "ok").inc()
            metrics.wyoming_request_duration_seconds.labels("synthesize").observe(elapsed)
            log.info(
                "wyoming synthesize",
                extra={
                    "peer": self.peer,
                    "text_chars": len(synthesize.text),
                    "cache_hit": stream.cache_hit,
                    "job_id": stream.job_id,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )

    # -- shared by both kinds of request -----------------------------------------------------

    async def open(self, text: str, voice: SynthesizeVoice | None) -> SpeechStream:
        """The service's PCM stream of ``text``; returns once its first sentence is ready."""
        wanted = None
        if voice is not None:
            wanted = voices.voice_id(voice, await self.speech.voices())
        request = SpeechRequest(text=text, voice=wanted, format=AudioFormat.pcm, client=CLIENT)
        stream = await self.speech.stream(request)
        metrics.wyoming_cache_requests_total.labels("hit" if stream.cache_hit else "miss").inc()
        return stream

    async def send_audio(self, stream: SpeechStream, since: float) -> None:
        """Every chunk of ``stream``; the first one observes the time since ``since``."""
        first = True
        async for pcm in _pcm_chunks(stream.chunks):
            await self.write_event(AudioChunk(PCM_SAMPLE_RATE, _WIDTH, _CHANNELS, pcm).event())
            if first:
                metrics.wyoming_first_audio_seconds.observe(time.perf_counter() - since)
                first = False

    async def fail(self, request: str, exc: BaseException, *, end: Any = None) -> None:
        """Tell the client why (an ``error`` event), then end its answer with ``end``."""
        code = _error_code(exc)
        message = exc.message if isinstance(exc, EchoForgeError) else "internal error"
        if isinstance(exc, EchoForgeError):
            log.warning(
                "wyoming request failed",
                extra={"peer": self.peer, "request": request, "error_code": code},
            )
        else:
            log.error(
                "wyoming request failed",
                exc_info=exc,
                extra={"peer": self.peer, "request": request, "error_code": code},
            )
        trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, code))
        metrics.wyoming_requests_total.labels(request, "error").inc()
        metrics.wyoming_errors_total.labels(code).inc()
        await self.write_event(Error(text=message, code=code).event())
        if end is not None:
            await self.write_event(end.event())


class _TextStream:
    """One ``synthesize-start`` ... ``synthesize-stop``: sentences queued as they complete.

    Each complete sentence becomes its own speech request at once (so the queue works on the
    next sentence while this one plays); one task sends their audio in order.
    """

    def __init__(self, handler: SpeechHandler, voice: SynthesizeVoice | None) -> None:
        self.handler = handler
        self.voice = voice
        self.buffer = ""
        self.failed = False
        self.span = tracer.start_span("wyoming stream", kind=trace.SpanKind.SERVER)
        self.span.set_attribute("ef.wyoming.peer", handler.peer)
        self._chars = 0
        self._ended = False
        self._opened: asyncio.Queue[tuple[asyncio.Task[SpeechStream], float] | None] = (
            asyncio.Queue()
        )
        with trace.use_span(self.span, end_on_exit=False):
            self._sender = asyncio.create_task(self._send(), name="ef-wyoming-stream")

    def add(self, text: str) -> None:
        if self.failed:
            return
        self.buffer += text
        complete, self.buffer = complete_sentences(self.buffer)
        for sentence in complete:
            self._open(sentence)

    def _open(self, sentence: str) -> None:
        self._chars += len(sentence)
        with trace.use_span(self.span, end_on_exit=False):
            task = asyncio.create_task(self.handler.open(sentence, self.voice))
        self._opened.put_nowait((task, time.perf_counter()))

    async def finish(self) -> None:
        """The text is complete: say the rest, wait for the audio, send ``synthesize-stopped``."""
        started = time.perf_counter()
        if not self.failed and normalize(self.buffer):
            self._open(self.buffer)
        self._opened.put_nowait(None)
        try:
            await self._sender
            if not self.failed:
                elapsed = time.perf_counter() - started
                metrics.wyoming_requests_total.labels("stream", "ok").inc()
                metrics.wyoming_request_duration_seconds.labels("stream").observe(elapsed)
                with trace.use_span(self.span, end_on_exit=False):
                    log.info(
                        "wyoming stream",
                        extra={
                            "peer": self.handler.peer,
                            "text_chars": self._chars,
                            "duration_ms": round(elapsed * 1000, 1),
                        },
                    )
        finally:
            self._end_span()

    def abandon(self) -> None:
        """The client left or started another stream: stop sending (queued jobs still finish)."""
        self.failed = True
        self._sender.cancel()
        self._end_span()

    def _end_span(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.set_attribute("ef.text_chars", self._chars)
            self.span.end()

    async def _send(self) -> None:
        handler = self.handler
        try:
            while (item := await self._opened.get()) is not None:
                task, completed_at = item
                stream = await task
                await handler.write_event(AudioStart(PCM_SAMPLE_RATE, _WIDTH, _CHANNELS).event())
                await handler.send_audio(stream, completed_at)
                await handler.write_event(AudioStop().event())
            await handler.write_event(SynthesizeStopped().event())
        except asyncio.CancelledError:
            self._drop_opened()
            raise
        except ConnectionError:
            self.failed = True
            self._drop_opened()
        except Exception as exc:
            self.failed = True
            self._drop_opened()
            with trace.use_span(self.span, end_on_exit=False):
                await handler.fail("stream", exc, end=SynthesizeStopped())

    def _drop_opened(self) -> None:
        while not self._opened.empty():
            item = self._opened.get_nowait()
            if item is not None:
                item[0].cancel()
                item[0].add_done_callback(_forget)
