"""`HealthService`: the probes behind /health, /health/ready and the ``ef_*_up`` gauges."""

from __future__ import annotations

from ef_backend.core import db
from ef_backend.models import AudioFormat, CacheEntry
from ef_backend.services.cache import AudioCache
from ef_backend.services.engine_state import EngineHealth, EngineState
from ef_backend.services.queue import JobQueue

__all__ = ["EngineHealth", "HealthService"]


class HealthService:
    """``database``, ``cache`` and ``queued_jobs`` block (run them in a thread); ``engine`` is
    async."""

    def __init__(
        self,
        *,
        sessions: db.SessionFactory,
        cache: AudioCache,
        queue: JobQueue,
        engine: EngineState,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self._queue = queue
        self._engine = engine

    def database(self) -> tuple[bool, str | None]:
        """Can the database take a write? (insert a row, then roll it back)."""
        try:
            with self._sessions() as session:
                session.add(CacheEntry(key="0" * 64, format=AudioFormat.wav, size_bytes=0))
                session.flush()
                session.rollback()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return True, None

    def cache(self) -> tuple[bool, str | None]:
        """Can a file be created and removed in the audio cache directory?"""
        return self._cache.writable()

    def queued_jobs(self) -> int:
        counts = self._queue.stats()["counts"]
        return int(counts.get("queued", 0)) if isinstance(counts, dict) else 0

    async def engine(self, *, max_age_s: float = 5.0) -> EngineHealth:
        """The cached engine probe (sets ef_tts_engine_up)."""
        return await self._engine.health(max_age_s=max_age_s)
