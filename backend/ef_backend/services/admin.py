"""`AdminService`: what the operator sees and clears: queue and cache statistics, cache purge."""

from __future__ import annotations

from ef_backend.core.config import Settings
from ef_backend.services.cache import AudioCache
from ef_backend.services.queue import JobQueue
from ef_backend.services.worker import WorkerPool

__all__ = ["AdminService"]


class AdminService:
    """Blocking reads of shared state (the routes and the scrape-time collector use threads)."""

    def __init__(
        self, *, settings: Settings, queue: JobQueue, cache: AudioCache, workers: WorkerPool
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._cache = cache
        self._workers = workers

    def queue_stats(self) -> dict[str, object]:
        stats = self._queue.stats()
        counts = stats["counts"]
        assert isinstance(counts, dict)
        return {
            **stats,
            "queued": counts.get("queued", 0),
            "running": counts.get("running", 0),
            "max": self._settings.queue_max,
            "workers": self._workers.size,
            "concurrency": self._settings.tts_concurrency,
        }

    def cache_stats(self, *, flush: bool = True) -> dict[str, object]:
        """The cache's figures; ``flush=False``: hits as last written (see AudioCache.stats)."""
        return dict(self._cache.stats(flush=flush))

    def purge_cache(self) -> int:
        return self._cache.purge()
