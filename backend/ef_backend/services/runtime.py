"""`Runtime`: what one backend process builds once, the services the routes call, and the
background work that keeps them going.

It owns the database engine, the audio cache, the engine client, the queue and the workers, and
hands them to the services: `speech` (a request's way to audio), `jobs`, `admin` and `health`.
`start` requeues the jobs of dead processes and starts the workers, the lease-expiry requeue
loop and the engine probe; `stop` undoes that in order.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ef_backend.core import db
from ef_backend.core.config import Settings
from ef_backend.models import utcnow
from ef_backend.services.admin import AdminService
from ef_backend.services.cache import AudioCache
from ef_backend.services.engine import EngineClient
from ef_backend.services.engine_state import EngineState
from ef_backend.services.events import JobEvents
from ef_backend.services.health import HealthService
from ef_backend.services.job_wait import JobWaiter
from ef_backend.services.jobs import JobService
from ef_backend.services.queue import JobQueue
from ef_backend.services.speech import SpeechService
from ef_backend.services.worker import WorkerPool, WorkerSettings

__all__ = ["PROBE_INTERVAL_S", "STOP_GRACE_S", "Runtime"]

log = logging.getLogger(__name__)

#: Background engine probe period: keeps ef_tts_engine_up fresh without any /health traffic.
PROBE_INTERVAL_S = 15.0
#: How long running jobs may take to finish at shutdown before they are put back in the queue.
STOP_GRACE_S = 10.0


class Runtime:
    """One per process (``app.state.runtime``)."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.db_engine = db.make_engine(settings)
        self.sessions = db.session_factory(self.db_engine)
        self.cache = AudioCache(
            settings.cache_dir,
            self.sessions,
            max_bytes=settings.cache_max_bytes,
            low_water_ratio=settings.cache_low_water_ratio,
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
            max_queued_per_client=settings.queue_max_per_key,
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
                cache_per_key=settings.cache_per_key,
            ),
        )
        self.engine = EngineState(self.client, settings)
        self.speech = SpeechService(
            settings=settings,
            cache=self.cache,
            queue=self.queue,
            events=self.events,
            engine=self.engine,
            waiter=JobWaiter(queue=self.queue, events=self.events, workers=self.workers),
        )
        self.jobs = JobService(
            queue=self.queue,
            cache=self.cache,
            events=self.events,
            retention=timedelta(days=self.settings.job_retention_days),
        )
        self.admin = AdminService(
            settings=settings, queue=self.queue, cache=self.cache, workers=self.workers
        )
        self.health = HealthService(
            sessions=self.sessions, cache=self.cache, queue=self.queue, engine=self.engine
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Requeue jobs of dead processes, start the workers, the probe and the requeue loop.

        A job is requeued when its lease has expired, or at once when its worker was a process
        on this host that is gone (a restart after ``kill -9``).
        """
        requeued = await asyncio.to_thread(self.queue.requeue_expired)
        requeued += await asyncio.to_thread(self.queue.requeue_orphans, self.workers.is_dead)
        await asyncio.to_thread(self.cache.sweep_temp_files)
        await asyncio.to_thread(self.cache.sweep_orphans)
        self.cache.start()
        self.workers.start()
        self._tasks = [
            asyncio.create_task(self._requeue_loop(), name="ef-requeue"),
            asyncio.create_task(self._probe_loop(), name="ef-engine-probe"),
            asyncio.create_task(self._retention_loop(), name="ef-job-retention"),
        ]
        log.info(
            "runtime started",
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

    async def _retention_loop(self) -> None:
        """Delete finished jobs (and so their text) after EF_JOB_RETENTION_DAYS."""
        retention = timedelta(days=self.settings.job_retention_days)
        interval = min(max(retention.total_seconds() / 4, 1.0), 3600.0)
        while True:
            try:
                await asyncio.to_thread(self.queue.delete_finished, utcnow() - retention)
            except Exception:
                log.exception("deleting old jobs failed")
            await asyncio.sleep(interval)

    async def _probe_loop(self) -> None:
        while True:
            try:
                health = await self.engine.health(max_age_s=0.0)
                if health.reachable and health.model_loaded and health.error is None:
                    self.workers.engine_is_back()  # no need to wait out the workers' pause
            except Exception:
                log.exception("engine probe failed")
            await asyncio.sleep(PROBE_INTERVAL_S)
