"""`SpeechService`: a request's way to audio. Cache first, else the queue.

A request is normalised and split (`text`, `plan`), looked up in the audio cache under its
request key, and on a miss turned into a job (or joined to the identical active one) that the
workers run. Synchronous callers wait for the job (`job_wait`); streaming callers get each
sentence as it lands. The engine's identity (engine and model name, part of every key) and its
voices are cached (`engine_state`), so that cached audio is still served while the engine is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opentelemetry import propagate, trace

from ef_backend.core.config import Settings
from ef_backend.core.errors import EchoForgeError, InvalidInput, SynthesisFailed
from ef_backend.models import AudioFormat, Job, JobStatus
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.cache import AudioCache, CachedAudio
from ef_backend.services.engine import EngineInfo, EngineVoice
from ef_backend.services.engine_state import EngineState
from ef_backend.services.events import JobEvents, sentence_handle
from ef_backend.services.job_wait import JobWaiter, job_error
from ef_backend.services.plan import SpeechPlan, cache_scope, plan
from ef_backend.services.queue import JobQueue, NewJob
from ef_backend.services.text import normalize

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

__all__ = ["SpeechAudio", "SpeechRequest", "SpeechService", "SpeechStream", "check_limits"]

_STREAM_CHUNK = 32 * 1024


@dataclass(frozen=True)
class SpeechRequest:
    """What a client asked for (shape validated by the route, limits by the service)."""

    text: str
    voice: str | None = None
    speed: float = 1.0
    format: AudioFormat = AudioFormat.wav
    client: str = "anonymous"
    #: What the client calls the text, for error messages (``input`` on the OpenAI API).
    text_field: str = "text"


@dataclass(frozen=True)
class SpeechAudio:
    """Complete audio, from the cache or a finished job: a cache file, sent from disk; or, when
    only storing it failed (a full disk), the bytes the worker made (``file`` is None)."""

    file: CachedAudio | None
    media_type: str
    cache_hit: bool
    job_id: str | None
    cache_key: str
    unstored: bytes | None = None

    @property
    def data(self) -> bytes:
        """The whole audio in memory (SSE and tests; HTTP responses stream ``file.path``)."""
        if self.file is None:
            return self.unstored or b""
        return self.file.data


@dataclass
class SpeechStream:
    """Audio that arrives as sentences finish; ``chunks`` raises if the job fails mid-way."""

    job_id: str | None
    media_type: str
    cache_hit: bool
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class _Prepared:
    text: str
    voice: str
    info: EngineInfo
    plan: SpeechPlan


def _ended_without(job: Job, sentences: int) -> bool:
    """Did ``job`` end without its first ``sentences`` sentences? A job that failed only to
    store its finished file (reason storage) has them all."""
    if job.status is JobStatus.cancelled:
        return True
    made_them = job.error_reason == "storage" and job.sentences_done >= sentences
    return job.status is JobStatus.failed and not made_them


def _feed(encoder: audio.StreamEncoder, shaper: audio.SentenceStreamer, pcm: audio.Pcm) -> bytes:
    return encoder.feed(shaper.add(pcm))


def check_limits(text: str, speed: float, settings: Settings, *, text_field: str = "text") -> None:
    """The operator's limits (EF_MAX_TEXT_CHARS, EF_MIN_SPEED, EF_MAX_SPEED), checked in one
    place; `InvalidInput` names the field (``input`` on the OpenAI API) and the bound."""
    if len(text) > settings.max_text_chars:
        raise InvalidInput(
            f"{text_field}: {len(text)} characters is more than the limit of "
            f"{settings.max_text_chars} (EF_MAX_TEXT_CHARS); shorten it or split it into "
            "several requests.",
            param=text_field,
        )
    if not math.isfinite(speed) or not settings.min_speed <= speed <= settings.max_speed:
        raise InvalidInput(
            f"speed: {speed} is outside {settings.min_speed}-{settings.max_speed} "
            "(EF_MIN_SPEED, EF_MAX_SPEED).",
            param="speed",
        )


class SpeechService:
    """Synthesise, stream or queue a request; the parts it uses are built by `Runtime`."""

    def __init__(
        self,
        *,
        settings: Settings,
        cache: AudioCache,
        queue: JobQueue,
        events: JobEvents,
        engine: EngineState,
        waiter: JobWaiter,
    ) -> None:
        self.settings = settings
        self._cache = cache
        self._queue = queue
        self._events = events
        self._engine = engine
        self._waiter = waiter

    async def _prepare(self, request: SpeechRequest) -> _Prepared:
        # The limit applies to the normalised text: normalising can lengthen it (U+FB2C is
        # three characters once decomposed), and that is what the engine gets.
        text = normalize(request.text)
        check_limits(text, request.speed, self.settings, text_field=request.text_field)
        if not text:
            raise InvalidInput(
                "text: nothing to say once whitespace and control characters are removed.",
                param="text",
            )
        voice = await self.resolve_voice(request.voice)
        info = await self._engine.identity()
        speech = plan(
            engine=info.engine,
            model=info.model,
            voice=voice,
            speed=request.speed,
            format=request.format,
            text=text,
            scope=cache_scope(request.client, per_key=self.settings.cache_per_key),
        )
        if not speech.sentences:
            raise InvalidInput(
                "text: nothing to say: it has no letters or digits "
                "(only punctuation, symbols or emoji).",
                param="text",
            )
        return _Prepared(text, voice, info, speech)

    async def _lookup(self, key: str) -> CachedAudio | None:
        """A known entry is found in memory (no thread, no database); else the database."""
        hit = self._cache.get_known(key)
        if hit is not None:
            return hit
        with tracer.start_as_current_span("cache.lookup") as span:
            hit = await asyncio.to_thread(self._cache.get, key)
            span.set_attribute("ef.cache_hit", hit is not None)
            return hit

    async def _enqueue(self, request: SpeechRequest, prepared: _Prepared) -> Job:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the worker continues this request's trace
        with tracer.start_as_current_span("db.enqueue"):
            job, created = await asyncio.to_thread(
                self._queue.enqueue,
                NewJob(
                    text=prepared.text,
                    voice=prepared.voice,
                    speed=request.speed,
                    format=request.format,
                    cache_key=prepared.plan.key,
                    engine=prepared.info.engine,
                    model=prepared.info.model,
                    client=request.client,
                    sentence_keys=prepared.plan.sentence_keys,
                    trace_parent=carrier.get("traceparent"),
                ),
            )
        if created:
            self._events.work_queued()
        log.info(
            "job queued" if created else "joined active job",
            extra={"job_id": job.id, "text_chars": len(prepared.text), "client": request.client},
        )
        return job

    # -- speech ------------------------------------------------------------------------------

    async def cached(self, request: SpeechRequest) -> SpeechAudio | None:
        """The audio of ``request`` if this process knows it is cached (memory and one ``stat``:
        no thread, no database), else None: then `synthesize`. Routes try this first, so that a
        hit costs no task and no wait set up for a job."""
        started = time.perf_counter()
        prepared = await self._prepare(request)
        hit = self._cache.get_known(prepared.plan.key)
        if hit is None:
            return None
        metrics.tts_request_duration_seconds.labels("hit").observe(time.perf_counter() - started)
        return SpeechAudio(hit, audio.MEDIA_TYPES[request.format], True, None, prepared.plan.key)

    async def synthesize(self, request: SpeechRequest) -> SpeechAudio:
        """The audio of ``request``: from the cache, or via the queue within EF_SYNC_TIMEOUT_S."""
        started = time.perf_counter()
        prepared = await self._prepare(request)
        media_type = audio.MEDIA_TYPES[request.format]
        hit = await self._lookup(prepared.plan.key)
        if hit is not None:
            metrics.tts_request_duration_seconds.labels("hit").observe(
                time.perf_counter() - started
            )
            return SpeechAudio(hit, media_type, True, None, prepared.plan.key)
        down = self._engine.down()
        if down is not None:
            raise down
        job = await self._enqueue(request, prepared)
        job = await self._waiter.wait(job.id, timeout=self.settings.sync_timeout_s)
        if job.status is not JobStatus.succeeded:
            made = self._events.take(job.id) if job.error_reason == "storage" else None
            if made is not None:
                # Only caching failed: the caller still gets what the engine made.
                log.warning(
                    "answering with audio that could not be cached", extra={"job_id": job.id}
                )
                return SpeechAudio(None, media_type, False, job.id, prepared.plan.key, made)
            raise job_error(job)
        stored = await asyncio.to_thread(self._cache.get, prepared.plan.key, record=False)
        if stored is None:
            raise SynthesisFailed(
                f"The audio of job {job.id} left the cache before it could be sent; "
                "EF_CACHE_MAX_BYTES may be too small.",
                job_id=job.id,
            )
        metrics.tts_request_duration_seconds.labels("miss").observe(time.perf_counter() - started)
        return SpeechAudio(stored, media_type, False, job.id, prepared.plan.key)

    async def stream(self, request: SpeechRequest) -> SpeechStream:
        """Audio (pcm, wav, mp3) sent as sentences finish; returns once the first one is ready."""
        if request.format not in audio.STREAMABLE_FORMATS:
            allowed = ", ".join(f.value for f in audio.STREAMABLE_FORMATS)
            raise InvalidInput(
                f"format: {request.format.value} cannot be streamed; use one of {allowed}.",
                param="format",
            )
        started = time.perf_counter()
        prepared = await self._prepare(request)
        media_type = audio.MEDIA_TYPES[request.format]
        hit = await self._lookup(prepared.plan.key)
        if hit is not None:
            return SpeechStream(None, media_type, True, self._replay(hit, started))
        down = self._engine.down()
        if down is not None:
            raise down
        job = await self._enqueue(request, prepared)
        # Wait for the first sentence here, so that a failure is still an HTTP error status.
        first = await self._waiter.wait(job.id, timeout=self.settings.sync_timeout_s, sentences=1)
        if _ended_without(first, 1):
            raise job_error(first)
        chunks = self._sentences(job.id, prepared.plan, request.format, started)
        return SpeechStream(job.id, media_type, False, chunks)

    async def _replay(self, hit: CachedAudio, started: float) -> AsyncIterator[bytes]:
        """A cached file in chunks, read from disk as it is sent."""
        metrics.tts_first_audio_seconds.observe(time.perf_counter() - started)
        with await asyncio.to_thread(open, hit.path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, _STREAM_CHUNK):
                yield chunk
        metrics.tts_request_duration_seconds.labels("hit").observe(time.perf_counter() - started)

    async def _sentences(
        self, job_id: str, speech: SpeechPlan, fmt: AudioFormat, started: float
    ) -> AsyncIterator[bytes]:
        encoder = audio.stream_encoder(fmt)
        shaper = audio.SentenceStreamer()
        sent_any = False
        try:
            for index, key in enumerate(speech.sentence_keys):
                job = await self._waiter.wait(
                    job_id,
                    timeout=self.settings.sync_timeout_s,
                    sentences=index + 1,
                    engine_down_fails=False,  # audio is on its way: wait out an engine restart
                )
                if _ended_without(job, index + 1):
                    raise job_error(job)
                cached = await asyncio.to_thread(self._cache.read, key)
                if cached is None:  # not cached (a full disk): handed over by the worker
                    cached = self._events.take(sentence_handle(job_id, index))
                if cached is None:
                    raise SynthesisFailed(
                        f"Sentence {index + 1} of job {job_id} left the cache before it could be "
                        "streamed; EF_CACHE_MAX_BYTES may be too small.",
                        job_id=job_id,
                    )
                pcm = await asyncio.to_thread(audio.read_wav, cached)
                chunk = await asyncio.to_thread(_feed, encoder, shaper, pcm)
                if chunk:
                    if not sent_any:
                        metrics.tts_first_audio_seconds.observe(time.perf_counter() - started)
                        sent_any = True
                    yield chunk
            tail = await asyncio.to_thread(encoder.finish)
            if tail:
                yield tail
        except EchoForgeError as exc:
            log.warning("stream ended early", extra={"job_id": job_id, "error_code": exc.code})
            raise
        metrics.tts_request_duration_seconds.labels("miss").observe(time.perf_counter() - started)

    async def submit(self, request: SpeechRequest) -> Job:
        """Queue ``request`` (or join the identical active job) and return at once."""
        prepared = await self._prepare(request)
        return await self._enqueue(request, prepared)

    # -- voices ------------------------------------------------------------------------------

    async def voices(self) -> list[EngineVoice]:
        """The engine's voices (the last known list while the engine is down)."""
        return await self._engine.voices()

    async def resolve_voice(self, voice: str | None) -> str:
        """An engine voice id: None/"" is the default, OpenAI names map (EF_VOICE_MAP)."""
        return await self._engine.resolve_voice(voice)

    async def engine_info(self) -> EngineInfo:
        """Engine and model name as used in cache keys (the last known while it is down)."""
        return await self._engine.identity()
