"""Queue workers: claim a job, synthesise it sentence by sentence, store the result.

``EF_TTS_CONCURRENCY`` workers run as asyncio tasks in the backend process. Each sentence is
cached on its own (so a repeated sentence is never synthesised twice and a retried or recovered
job resumes where it stopped), ``sentences_done`` advances after each, and the lease is renewed
in the background while the job runs. Transient engine errors are retried in place with
exponential backoff up to ``EF_JOB_MAX_ATTEMPTS``; a refusal fails the job at once.
Blocking work (database, decoding, encoding) runs in threads so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from opentelemetry import propagate, trace

from ef_backend.core.errors import EngineRejected, EngineUnavailable
from ef_backend.models import AudioFormat, Job, utcnow
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.cache import AudioCache
from ef_backend.services.engine import EngineClient
from ef_backend.services.events import JobEvents, sentence_handle
from ef_backend.services.plan import cache_scope, plan
from ef_backend.services.queue import JobQueue

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

__all__ = ["WorkerPool", "WorkerSettings"]

P = ParamSpec("P")
T = TypeVar("T")

#: How long an idle worker sleeps before it looks at the database again (other processes may
#: have queued work; in this process an event wakes it at once).
IDLE_POLL_S = 0.5


@dataclass
class _Replica:
    """The down state of one engine replica, shared by the workers that speak to it."""

    paused_until: float = 0.0  # loop time
    down_streak: int = 0
    down_message: str | None = None
    down_at: float = 0.0  # wall-clock time of the last engine call that found it down


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int
    max_attempts: int
    retry_backoff_s: float
    lease_s: float
    #: Cache entries per API key (EF_CACHE_SCOPE=key with keys configured).
    cache_per_key: bool = False


async def _traced(name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Blocking work (database, files, encoding) in a thread, in a span of its own."""
    with tracer.start_as_current_span(name):
        return await asyncio.to_thread(fn, *args, **kwargs)


class _JobFailed(Exception):
    """Stops a job for good with a reason from FAILURE_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _LeaseLost(Exception):
    """Another worker owns the job now (our lease ran out while we stalled)."""


class _EngineDown(Exception):
    """The engine as a whole is out: the job goes back to the queue, unharmed, to wait."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


#: Longest pause of the workers between two tries of an engine that is down.
ENGINE_DOWN_MAX_PAUSE_S = 30.0
#: How the error of a job put back to wait for the engine begins (clients and waiters read it).
WAITING_FOR_ENGINE = "Waiting for the speech engine: "


class WorkerPool:
    """Start, run and stop the worker tasks of one process."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        cache: AudioCache,
        client: EngineClient,
        events: JobEvents,
        settings: WorkerSettings,
    ) -> None:
        self.queue = queue
        self.cache = cache
        self.client = client
        self.events = events
        self.settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._host = socket.gethostname()
        self._token = uuid.uuid4().hex[:8]
        # host:pid:token:index; the token tells this process from an earlier one with its pid.
        self._prefix = f"{self._host}:{os.getpid()}:{self._token}"
        # Worker i speaks to engine replica i % n (EF_TTS_URL may list several); while a replica
        # is down, its workers pause and its jobs go back to the queue for the others.
        self._replicas = [_Replica() for _ in range(client.replica_count)]

    @property
    def size(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        self._stopping.clear()
        for index in range(self.settings.concurrency):
            worker_id = f"{self._prefix}:{index}"
            self._tasks.append(asyncio.create_task(self._run(worker_id), name=f"ef-worker-{index}"))
        log.info("workers started", extra={"workers": self.settings.concurrency})

    def is_dead(self, worker_id: str) -> bool:
        """Is ``worker_id`` a worker of a process on this host that no longer runs?

        True only when certain: same host and either our pid with another token (an earlier
        life of this process, as in a restarted container where the server is pid 1) or a pid
        that does not exist. Workers on other hosts are left to their lease.
        """
        parts = worker_id.split(":")
        if len(parts) != 4 or parts[0] != self._host or not parts[1].isdigit():
            return False
        pid, token = int(parts[1]), parts[2]
        if pid == os.getpid():
            return token != self._token
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # it exists, owned by someone else
        return False

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let running jobs finish for ``grace_s``, then cancel them (back into the queue)."""
        self._stopping.set()
        self.events.work_queued()  # wake idle workers so they see the stop
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("workers stopped", extra={"released": len(pending)})

    def engine_down(self) -> str | None:
        """Why the workers wait for the engine (every replica down), or None."""
        messages = [r.down_message for r in self._replicas]
        return None if None in messages else messages[0]

    def engine_down_since(self, since: float) -> str | None:
        """Why the engine is down, if engine calls found every replica down at or after
        ``since`` (Unix time): a job queued later has not been tried yet and may well succeed."""
        if all(r.down_message is not None and r.down_at >= since for r in self._replicas):
            return self._replicas[0].down_message
        return None

    def engine_is_back(self) -> None:
        """The engine answered a probe: end the workers' pause now and forget the outage (a
        replica still down is found again by its next call)."""
        if all(r.down_message is None and r.paused_until == 0.0 for r in self._replicas):
            return
        for index in range(len(self._replicas)):
            self._engine_ok(index)
        self.events.work_queued()  # idle workers look at the queue again at once
        log.info("engine back; workers resume")

    def _replica_of(self, worker_id: str) -> int:
        index = worker_id.rsplit(":", 1)[-1]
        return int(index) % len(self._replicas) if index.isdigit() else 0

    def _engine_ok(self, replica: int) -> None:
        self._replicas[replica] = _Replica()

    def _pause_for_engine(self, replica: int, message: str, retry_after: float | None) -> float:
        """Pause claiming (the replica's workers): its Retry-After, else a doubling backoff."""
        state = self._replicas[replica]
        state.down_message = message
        state.down_at = time.time()
        loop = asyncio.get_running_loop()
        if loop.time() >= state.paused_until:
            state.down_streak += 1  # once per pause, however many workers found it down
        backoff = self.settings.retry_backoff_s * 2.0 ** min(state.down_streak, 16)
        delay = min(ENGINE_DOWN_MAX_PAUSE_S, max(retry_after or 0.0, backoff))
        state.paused_until = max(state.paused_until, loop.time() + delay)
        if self.engine_down() is None:
            self.events.work_queued()  # the released job is for a replica that is up
        return delay

    async def _wait_while_paused(self, replica: int) -> None:
        loop = asyncio.get_running_loop()
        while (
            not self._stopping.is_set()
            and (left := self._replicas[replica].paused_until - loop.time()) > 0
        ):
            # In slices, so that engine_is_back() (which zeroes the pause) is seen within 1 s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=min(left, 1.0))

    async def _run(self, worker_id: str) -> None:
        replica = self._replica_of(worker_id)
        while not self._stopping.is_set():
            await self._wait_while_paused(replica)
            if self._stopping.is_set():
                break
            try:
                job = await asyncio.to_thread(self.queue.claim, worker_id)
            except Exception:
                log.exception("claiming a job failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if job is None:
                await self.events.wait_for_work(IDLE_POLL_S)
                continue
            await self.process(job, worker_id)

    async def process(self, job: Job, worker_id: str) -> None:
        """Run one claimed job to its end (succeeded, failed, or released on cancellation)."""
        created = job.created_at
        started = job.started_at or utcnow()
        metrics.tts_queue_wait_seconds.observe(max(0.0, (started - created).total_seconds()))
        metrics.tts_jobs_in_progress.inc()
        renewer = asyncio.create_task(self._renew(job.id, worker_id))
        log.info(
            "job started",
            extra={"job_id": job.id, "attempt": job.attempts, "text_chars": len(job.text)},
        )
        try:
            # Continue the trace of the request that queued the job (none after a retry by
            # an admin, or for jobs queued before tracing was on).
            parent = propagate.extract({"traceparent": job.trace_parent or ""})
            with tracer.start_as_current_span("job.process", context=parent) as span:
                span.set_attribute("ef.job_id", job.id)
                span.set_attribute("ef.text_chars", len(job.text))
                await self._synthesize_job(job, worker_id, renewer)
        except asyncio.CancelledError:
            # Shutdown: another worker (maybe after a restart) will pick it up again.
            self.queue.release(job.id, worker_id)
            log.warning("job released on shutdown", extra={"job_id": job.id})
            raise
        except _LeaseLost:
            log.warning("job lease lost; another worker has it", extra={"job_id": job.id})
        except _EngineDown as exc:
            # Not the job's fault: back to the queue without using up an attempt; sentences
            # already spoken stay cached, so the job resumes where it stopped.
            delay = self._pause_for_engine(
                self._replica_of(worker_id), exc.message, exc.retry_after
            )
            await asyncio.to_thread(
                self.queue.release,
                job.id,
                worker_id,
                error=f"{WAITING_FOR_ENGINE}{exc.message}",
            )
            log.warning(
                "engine down; job back in the queue",
                extra={"job_id": job.id, "pause_s": round(delay, 2)},
            )
        except _JobFailed as exc:
            await asyncio.to_thread(
                self.queue.fail, job.id, worker_id, reason=exc.reason, error=exc.message
            )
            # Text the engine refused is the client's fault: counted apart, outside the SLO.
            metrics.tts_jobs_total.labels(
                "rejected" if exc.reason == "rejected" else "failed"
            ).inc()
            log.warning(
                "job failed", extra={"job_id": job.id, "reason": exc.reason, "error": exc.message}
            )
        except Exception as exc:
            log.exception("job crashed", extra={"job_id": job.id})
            await asyncio.to_thread(
                self.queue.fail,
                job.id,
                worker_id,
                reason="engine_error",
                error=f"internal error ({type(exc).__name__}); see the backend log",
            )
            metrics.tts_jobs_total.labels("failed").inc()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            metrics.tts_jobs_in_progress.dec()
            self.events.changed(job.id)

    async def _renew(self, job_id: str, worker_id: str) -> None:
        interval = max(0.05, self.settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                owned = await asyncio.to_thread(self.queue.renew, job_id, worker_id)
            except Exception:
                log.exception("lease renewal failed", extra={"job_id": job_id})
                continue
            if not owned:
                return

    async def _synthesize_job(self, job: Job, worker_id: str, renewer: asyncio.Task[None]) -> None:
        speech = plan(
            engine=job.engine,
            model=job.model,
            voice=job.voice,
            speed=job.speed,
            format=job.format,
            text=job.text,
            scope=cache_scope(job.client, per_key=self.settings.cache_per_key),
        )
        if not speech.sentences:
            raise _JobFailed("rejected", "There is nothing to say: the text has no words.")
        done = await asyncio.to_thread(self.cache.entry, job.cache_key)
        if done is not None:
            # The same request was answered before (maybe by a job that is gone): reuse it.
            await asyncio.to_thread(
                self.queue.complete, job.id, worker_id, audio_seconds=done.duration_s
            )
            metrics.tts_jobs_total.labels("succeeded").inc()
            return
        if json.loads(job.sentence_keys) != list(speech.sentence_keys):
            # Written by an older version with other splitting rules: readers follow the new plan.
            await asyncio.to_thread(
                self.queue.set_sentences, job.id, worker_id, list(speech.sentence_keys)
            )
        attempts = job.attempts
        if attempts > self.settings.max_attempts:
            raise _JobFailed(
                "engine_error",
                f"Gave up after {attempts - 1} attempts: the worker stopped each time.",
            )
        sentences: list[audio.Pcm] = []
        for index, (sentence, key) in enumerate(
            zip(speech.sentences, speech.sentence_keys, strict=True)
        ):
            cached = await _traced("cache.lookup", self.cache.read, key)
            if cached is not None:
                pcm = await asyncio.to_thread(audio.read_wav, cached)
            else:
                pcm, attempts = await self._sentence(job, worker_id, sentence, attempts)
                wav = await asyncio.to_thread(audio.to_wav, pcm)
                try:
                    await asyncio.to_thread(
                        self.cache.put, key, AudioFormat.wav, wav, duration_s=pcm.duration_s
                    )
                except OSError as exc:
                    # The sentence is in memory: the job goes on (a stream in this process
                    # gets it handed over); only its reuse is lost.
                    self.events.hand_over(sentence_handle(job.id, index), wav)
                    log.warning(
                        "could not cache a sentence", extra={"job_id": job.id, "error": str(exc)}
                    )
            sentences.append(pcm)
            if renewer.done():
                raise _LeaseLost
            if not await _traced("db.progress", self.queue.progress, job.id, worker_id, index + 1):
                raise _LeaseLost
            self.events.changed(job.id)
        joined = await asyncio.to_thread(audio.join, sentences)
        data = await _traced("audio.encode", audio.encode, joined, job.format)
        try:
            await _traced(
                "cache.store",
                self.cache.put,
                job.cache_key,
                job.format,
                data,
                duration_s=joined.duration_s,
            )
        except OSError as exc:
            # Not the engine's fault: the audio exists, the disk refused it. A waiter in this
            # process still gets it (`JobEvents.take`); the job itself cannot be fetched later.
            self.events.hand_over(job.id, data)
            raise _JobFailed(
                "storage",
                f"The audio was made but could not be stored ({exc.strerror or exc}); free "
                "space in EF_DATA_DIR or make it writable, then submit the request again.",
            ) from exc
        if not await _traced(
            "db.complete", self.queue.complete, job.id, worker_id, audio_seconds=joined.duration_s
        ):
            raise _LeaseLost
        metrics.tts_jobs_total.labels("succeeded").inc()
        log.info(
            "job succeeded",
            extra={"job_id": job.id, "audio_seconds": round(joined.duration_s, 3)},
        )

    async def _sentence(
        self, job: Job, worker_id: str, sentence: str, attempts: int
    ) -> tuple[audio.Pcm, int]:
        """One sentence from the engine, retrying transient failures; (pcm, attempts so far)."""
        while True:
            started = time.perf_counter()
            try:
                with tracer.start_as_current_span("engine.synthesize") as span:
                    span.set_attribute("ef.text_chars", len(sentence))
                    result = await self.client.synthesize(
                        sentence,
                        voice=job.voice,
                        speed=job.speed,
                        replica=self._replica_of(worker_id),
                    )
                elapsed = time.perf_counter() - started
                pcm = await asyncio.to_thread(audio.read_wav, result.wav)
            except EngineRejected as exc:
                metrics.tts_failures_total.labels("rejected").inc()
                raise _JobFailed("rejected", exc.message) from exc
            except EngineUnavailable as exc:
                if not exc.down:
                    attempts = await self._retry_or_fail(
                        job, worker_id, attempts, exc.reason, exc.message, exc
                    )
                    continue
                metrics.tts_failures_total.labels(exc.reason).inc()
                raise _EngineDown(exc.message, exc.retry_after) from exc
            except audio.AudioDecodeError as exc:
                attempts = await self._retry_or_fail(
                    job, worker_id, attempts, "engine_error", str(exc), exc
                )
                continue
            self._engine_ok(self._replica_of(worker_id))
            metrics.tts_synthesis_duration_seconds.labels(
                job.engine or "unknown", job.voice
            ).observe(elapsed)
            if not result.speed_applied:
                pcm = await asyncio.to_thread(audio.change_tempo, pcm, job.speed)
            metrics.tts_audio_seconds_total.inc(pcm.duration_s)
            return pcm, attempts

    async def _retry_or_fail(
        self,
        job: Job,
        worker_id: str,
        attempts: int,
        reason: str,
        message: str,
        exc: Exception,
    ) -> int:
        """A transient failure of one call: wait and count an attempt, or fail for good."""
        metrics.tts_failures_total.labels(reason).inc()
        if attempts >= self.settings.max_attempts:
            raise _JobFailed(reason, message) from exc
        attempts += 1
        await asyncio.to_thread(self.queue.note_retry, job.id, worker_id, message)
        metrics.tts_jobs_total.labels("retried").inc()
        delay = self.settings.retry_backoff_s * 2 ** (attempts - 2)
        log.warning(
            "engine call failed; retrying",
            extra={"job_id": job.id, "reason": reason, "attempt": attempts, "delay_s": delay},
        )
        await asyncio.sleep(delay)
        return attempts
