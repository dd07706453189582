"""`SpeechService`: what the routes call. Cache first, else the queue; voices; health probes.

A request is normalised and split (`text`, `plan`), looked up in the audio cache under its
request key, and on a miss turned into a job (or joined to the identical active one) that the
workers run. Synchronous callers wait for the job (in-process wake-ups plus database polling,
so a job finished by another process is seen too); streaming callers get each sentence as it
lands. The engine's identity (engine and model name, part of every key) and its voices are
cached, so that cached audio is still served while the engine is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from opentelemetry import propagate, trace

from ef_backend.core import db
from ef_backend.core.config import Settings
from ef_backend.core.errors import (
    EchoForgeError,
    EngineRejected,
    EngineUnavailable,
    InvalidInput,
    JobConflict,
    SyncTimeout,
    SynthesisFailed,
)
from ef_backend.models import AudioFormat, CacheEntry, Job, JobStatus
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.cache import AudioCache, CachedAudio
from ef_backend.services.engine import EngineClient, EngineInfo, EngineVoice
from ef_backend.services.engine_state import EngineHealth, EngineState
from ef_backend.services.events import JobEvents
from ef_backend.services.plan import SpeechPlan, plan
from ef_backend.services.queue import JobQueue, NewJob
from ef_backend.services.text import normalize
from ef_backend.services.worker import WorkerPool, WorkerSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

__all__ = ["EngineHealth", "SpeechAudio", "SpeechRequest", "SpeechService", "SpeechStream"]

P = ParamSpec("P")
T = TypeVar("T")

#: How often a waiter re-reads its job from the database (work done by another process).
POLL_S = 0.25
#: Background engine probe period: keeps ef_tts_engine_up fresh without any /health traffic.
PROBE_INTERVAL_S = 15.0
#: How long running jobs may take to finish at shutdown before they are put back in the queue.
STOP_GRACE_S = 10.0
_STREAM_CHUNK = 32 * 1024
_TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


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
    """Complete audio, from the cache or a finished job: a cache file, sent from disk."""

    file: CachedAudio
    media_type: str
    cache_hit: bool
    job_id: str | None
    cache_key: str

    @property
    def data(self) -> bytes:
        """The whole file in memory (SSE and tests; HTTP responses stream ``file.path``)."""
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


def _job_error(job: Job) -> EchoForgeError:
    """The domain error that tells a waiting client why its job did not succeed."""
    message = job.error or "synthesis failed"
    if job.status is JobStatus.cancelled:
        return JobConflict(f"Job {job.id} was cancelled.", job_id=job.id, job_status="cancelled")
    if job.error_reason == "rejected":
        return EngineRejected(message, job_id=job.id)
    if job.error_reason in ("unreachable", "timeout"):
        return EngineUnavailable(message, reason=job.error_reason, job_id=job.id)
    return SynthesisFailed(message, job_id=job.id, reason=job.error_reason or "engine_error")


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
    """One per process: owns the database engine, the cache, the engine client and the workers."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.db_engine = db.make_engine(settings)
        self.sessions = db.session_factory(self.db_engine)
        self.cache = AudioCache(
            settings.cache_dir, self.sessions, max_bytes=settings.cache_max_bytes
        )
        self.client = EngineClient(
            settings.tts_url,
            timeout_s=settings.tts_timeout_s,
            connect_timeout_s=settings.tts_connect_timeout_s,
        )
        self.queue = JobQueue(
            self.sessions,
            max_queued=settings.queue_max,
            lease_s=settings.job_lease_s,
            concurrency=settings.tts_concurrency,
        )
        self.events = JobEvents()
        self.workers = WorkerPool(
            queue=self.queue,
            cache=self.cache,
            client=self.client,
            events=self.events,
            settings=WorkerSettings(
                concurrency=settings.tts_concurrency,
                max_attempts=settings.job_max_attempts,
                retry_backoff_s=settings.job_retry_backoff_s,
                lease_s=settings.job_lease_s,
            ),
        )
        self.engine = EngineState(self.client, settings)
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Requeue jobs of dead processes, start the workers, the probe and the requeue loop.

        A job is requeued when its lease has expired, or at once when its worker was a process
        on this host that is gone (a restart after ``kill -9``).
        """
        requeued = await asyncio.to_thread(self.queue.requeue_expired)
        requeued += await asyncio.to_thread(self.queue.requeue_orphans, self.workers.is_dead)
        await asyncio.to_thread(self.cache.sweep_temp_files)
        self.cache.start()
        self.workers.start()
        self._tasks = [
            asyncio.create_task(self._requeue_loop(), name="ef-requeue"),
            asyncio.create_task(self._probe_loop(), name="ef-engine-probe"),
        ]
        log.info(
            "speech service started",
            extra={"workers": self.workers.size, "requeued": requeued},
        )

    async def stop(self) -> None:
        """Stop probing; let running jobs finish (or put them back in the queue); close."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.workers.stop(grace_s=STOP_GRACE_S)
        await asyncio.to_thread(self.cache.close)
        await self.client.aclose()
        self.db_engine.dispose()

    async def _requeue_loop(self) -> None:
        interval = max(0.2, min(self.settings.job_lease_s / 2, 10.0))
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(self.queue.requeue_expired):
                    self.events.work_queued()
            except Exception:
                log.exception("requeueing expired jobs failed")

    async def _probe_loop(self) -> None:
        while True:
            try:
                health = await self.engine.health(max_age_s=0.0)
                if health.reachable and health.model_loaded and health.error is None:
                    self.workers.engine_is_back()  # no need to wait out the workers' pause
            except Exception:
                log.exception("engine probe failed")
            await asyncio.sleep(PROBE_INTERVAL_S)

    # -- helpers -----------------------------------------------------------------------------

    async def _db(self, name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Blocking database work in a thread, in its own span."""
        with tracer.start_as_current_span(f"db.{name}"):
            return await asyncio.to_thread(fn, *args, **kwargs)

    async def _prepare(self, request: SpeechRequest) -> _Prepared:
        check_limits(request.text, request.speed, self.settings, text_field=request.text_field)
        text = normalize(request.text)
        if not text:
            raise InvalidInput(
                "text: nothing to say once whitespace and control characters are removed.",
                param="text",
            )
        voice = await self.resolve_voice(request.voice)
        info = await self.engine.identity()
        speech = plan(
            engine=info.engine,
            model=info.model,
            voice=voice,
            speed=request.speed,
            format=request.format,
            text=text,
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
        hit = self.cache.get_known(key)
        if hit is not None:
            return hit
        with tracer.start_as_current_span("cache.lookup") as span:
            hit = await asyncio.to_thread(self.cache.get, key)
            span.set_attribute("ef.cache_hit", hit is not None)
            return hit

    async def _enqueue(self, request: SpeechRequest, prepared: _Prepared) -> Job:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the worker continues this request's trace
        job, created = await self._db(
            "enqueue",
            self.queue.enqueue,
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
            self.events.work_queued()
        log.info(
            "job queued" if created else "joined active job",
            extra={"job_id": job.id, "text_chars": len(prepared.text), "client": request.client},
        )
        return job

    async def _wait(self, job_id: str, *, timeout: float, sentences: int | None = None) -> Job:
        """Until the job ends (or has ``sentences`` done); SyncTimeout after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with tracer.start_as_current_span("queue.wait") as span:
            span.set_attribute("ef.job_id", job_id)
            while True:
                event = self.events.watch(job_id)
                job = await asyncio.to_thread(self.queue.get, job_id)
                if job.status in _TERMINAL:
                    self.events.changed(job_id)  # drop the event (the job may end elsewhere)
                    return job
                if sentences is not None and job.sentences_done >= sentences:
                    return job
                if job.status is JobStatus.queued:
                    # The engine was found down after this job was queued (so the job waits for
                    # it): say so now instead of at the timeout.
                    why = self.workers.engine_down_since(job.created_at.timestamp())
                    if why is not None:
                        raise EngineUnavailable(
                            f"The speech engine is down; job {job_id} stays queued and will be "
                            f"spoken when it is back (GET /api/v1/jobs/{job_id}). {why}",
                            job_id=job_id,
                        )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SyncTimeout(
                        f"Job {job_id} is still {job.status.value} after {timeout:g} s; "
                        f"fetch GET /api/v1/jobs/{job_id} until it has succeeded.",
                        job_id=job_id,
                        retry_after=5.0,
                    )
                await self.events.wait(event, min(POLL_S, remaining))

    # -- voices ------------------------------------------------------------------------------

    # -- speech ------------------------------------------------------------------------------

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
        down = self.engine.down()
        if down is not None:
            raise down
        job = await self._enqueue(request, prepared)
        job = await self._wait(job.id, timeout=self.settings.sync_timeout_s)
        if job.status is not JobStatus.succeeded:
            raise _job_error(job)
        stored = await asyncio.to_thread(self.cache.get, prepared.plan.key, record=False)
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
        down = self.engine.down()
        if down is not None:
            raise down
        job = await self._enqueue(request, prepared)
        # Wait for the first sentence here, so that a failure is still an HTTP error status.
        first = await self._wait(job.id, timeout=self.settings.sync_timeout_s, sentences=1)
        if first.status in (JobStatus.failed, JobStatus.cancelled):
            raise _job_error(first)
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
                job = await self._wait(
                    job_id, timeout=self.settings.sync_timeout_s, sentences=index + 1
                )
                if job.status in (JobStatus.failed, JobStatus.cancelled):
                    raise _job_error(job)
                cached = await asyncio.to_thread(self.cache.read, key)
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

    # -- jobs --------------------------------------------------------------------------------

    async def submit(self, request: SpeechRequest) -> Job:
        """Queue ``request`` (or join the identical active job) and return at once."""
        prepared = await self._prepare(request)
        return await self._enqueue(request, prepared)

    def get_job(self, job_id: str) -> Job:
        return self.queue.get(job_id)

    def list_jobs(
        self, *, limit: int, offset: int, status: JobStatus | None = None
    ) -> tuple[list[Job], int]:
        return self.queue.list(limit=limit, offset=offset, status=status)

    def cancel_job(self, job_id: str) -> Job:
        job = self.queue.cancel(job_id)
        metrics.tts_jobs_total.labels("cancelled").inc()
        self.events.changed(job_id)
        log.info("job cancelled", extra={"job_id": job_id})
        return job

    def job_audio(self, job_id: str) -> SpeechAudio:
        """The audio of a succeeded job (JobConflict before that, or once evicted)."""
        job = self.queue.get(job_id)
        if job.status is not JobStatus.succeeded:
            raise JobConflict(
                f"Job {job_id} is {job.status.value}; its audio exists once it has succeeded.",
                job_id=job_id,
                job_status=job.status.value,
            )
        stored = self.cache.get(job.cache_key, record=False)
        if stored is None:
            raise JobConflict(
                f"The audio of job {job_id} has been evicted from the cache; "
                "submit the request again.",
                job_id=job_id,
                job_status=job.status.value,
            )
        return SpeechAudio(stored, audio.MEDIA_TYPES[job.format], True, job_id, job.cache_key)

    def retry_job(self, job_id: str) -> Job:
        job = self.queue.retry(job_id)
        self.events.work_queued()
        log.info("job queued again", extra={"job_id": job_id})
        return job

    def failed_jobs(self, *, limit: int, offset: int) -> tuple[list[Job], int]:
        return self.queue.list(limit=limit, offset=offset, status=JobStatus.failed)

    # -- admin and health --------------------------------------------------------------------

    def queue_stats(self) -> dict[str, object]:
        stats = self.queue.stats()
        counts = stats["counts"]
        assert isinstance(counts, dict)
        return {
            **stats,
            "queued": counts.get("queued", 0),
            "running": counts.get("running", 0),
            "max": self.settings.queue_max,
            "workers": self.workers.size,
            "concurrency": self.settings.tts_concurrency,
        }

    def cache_stats(self) -> dict[str, object]:
        return dict(self.cache.stats())

    def purge_cache(self) -> int:
        return self.cache.purge()

    def db_ok(self) -> tuple[bool, str | None]:
        """Can the database take a write? (insert a row, then roll it back)."""
        try:
            with self.sessions() as session:
                session.add(CacheEntry(key="0" * 64, format=AudioFormat.wav, size_bytes=0))
                session.flush()
                session.rollback()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return True, None

    def cache_writable(self) -> tuple[bool, str | None]:
        return self.cache.writable()

    # -- the engine --------------------------------------------------------------------------

    async def voices(self) -> list[EngineVoice]:
        """The engine's voices (the last known list while the engine is down)."""
        return await self.engine.voices()

    async def resolve_voice(self, voice: str | None) -> str:
        """An engine voice id: None/"" is the default, OpenAI names map (EF_VOICE_MAP)."""
        return await self.engine.resolve_voice(voice)

    async def engine_health(self, *, max_age_s: float = 5.0) -> EngineHealth:
        """The cached engine probe (sets ef_tts_engine_up)."""
        return await self.engine.health(max_age_s=max_age_s)

    async def engine_info(self) -> EngineInfo:
        """Engine and model name as used in cache keys (the last known while it is down)."""
        return await self.engine.identity()
