"""`HealthService`: the probes behind /health, /health/ready and the ``ef_*_up`` gauges."""

from __future__ import annotations

from sqlalchemy import text

from ef_backend.core import db
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
        """Does the database answer? One ``SELECT 1``: probes are frequent and unauthenticated,
        so they neither write nor take the write lock (a full disk shows in the cache check)."""
        try:
            with self._sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return True, None

    def cache(self) -> tuple[bool, str | None]:
        """Is the audio cache a directory this process may write? (creates nothing)"""
        return self._cache.writable()

    def queued_jobs(self) -> int:
        counts = self._queue.stats()["counts"]
        return int(counts.get("queued", 0)) if isinstance(counts, dict) else 0

    async def engine(self, *, max_age_s: float = 5.0) -> EngineHealth:
        """The cached engine probe (sets ef_tts_engine_up)."""
        return await self._engine.health(max_age_s=max_age_s)
