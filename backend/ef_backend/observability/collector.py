"""Gauges read at scrape time: cache and database size and health, queue depth, build.

These describe shared state (the SQLite file, the cache table, the job queue), so they are read
when Prometheus scrapes rather than kept in process memory: the value is right whichever
process or uvicorn worker changed it. Every read is cheap: two ``stat`` calls, the queue's and
the cache's figures (three SQL aggregates) and the two readiness probes (``SELECT 1``, an
``access`` check of the cache directory), never a walk of the cache directory: about 1 ms of a
scrape (docs/performance.md). A scrape writes nothing: the cache's pending recency and hits are
left to its flusher (the gauges need neither).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ef_backend.core.config import Settings

if TYPE_CHECKING:
    from ef_backend.services.runtime import Runtime

__all__ = ["EchoForgeCollector", "sqlite_path"]

log = logging.getLogger(__name__)


def sqlite_path(db_url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, None for other databases or in-memory."""
    for prefix in ("sqlite+pysqlite:///", "sqlite:///"):
        if db_url.startswith(prefix):
            rest = db_url[len(prefix) :].split("?", 1)[0]
            if not rest or rest == ":memory:":
                return None
            return Path(rest)
    return None


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _number(stats: Mapping[str, Any], *keys: str) -> float | None:
    """First numeric value among ``keys``, looking also one level down (``counts``)."""
    for key in keys:
        value = stats.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    for nested in ("counts", "by_status"):
        inner = stats.get(nested)
        if isinstance(inner, Mapping):
            found = _number(inner, *keys)
            if found is not None:
                return found
    return None


def _gauge(name: str, doc: str, value: float | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class EchoForgeCollector(Collector):
    """Registers once per registry; each scrape reads the current values."""

    def __init__(self, settings: Settings, runtime: Callable[[], Runtime | None]) -> None:
        self._db_path = sqlite_path(settings.db_url)
        self._runtime = runtime
        self._build = {"version": settings.version, "commit": settings.commit}

    def describe(self) -> Iterable[Metric]:
        # Names only, so the registry can reject a duplicate declaration at start-up.
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        runtime = self._service()
        admin = runtime.admin if runtime is not None else None
        health = runtime.health if runtime is not None else None
        cache: Mapping[str, Any] = self._read("cache_stats", admin, flush=False)
        queue: Mapping[str, Any] = self._read("queue_stats", admin)

        build = families["ef_build_info"]
        build.add_metric([self._build["version"], self._build["commit"]], 1.0)

        for name, keys in (
            ("ef_audio_cache_size_bytes", ("size_bytes",)),
            ("ef_audio_cache_entries", ("entries",)),
            ("ef_audio_cache_max_bytes", ("max_bytes",)),
            ("ef_tts_queue_depth", ("queued",)),
            ("ef_tts_queue_max", ("max", "queue_max")),
            ("ef_tts_queue_oldest_age_seconds", ("oldest_queued_age_s", "oldest_queued_age")),
        ):
            source = cache if name.startswith("ef_audio") else queue
            value = _number(source, *keys)
            if value is not None:
                families[name].add_metric([], value)
            elif name == "ef_tts_queue_oldest_age_seconds" and source:
                families[name].add_metric([], 0.0)  # nothing queued

        if self._db_path is not None:
            size = _file_size(self._db_path) + _file_size(Path(f"{self._db_path}-wal"))
            families["ef_db_size_bytes"].add_metric([], float(size))

        families["ef_db_up"].add_metric([], 1.0 if self._probe(health, "database") else 0.0)
        families["ef_audio_cache_writable"].add_metric(
            [], 1.0 if self._probe(health, "cache") else 0.0
        )
        return [family for family in families.values() if family.samples]

    def _families(self) -> dict[str, GaugeMetricFamily]:
        build = GaugeMetricFamily(
            "ef_build_info",
            "Always 1; the labels say which version and commit of ef_backend run here.",
            labels=["version", "commit"],
        )
        return {
            "ef_build_info": build,
            "ef_audio_cache_size_bytes": _gauge(
                "ef_audio_cache_size_bytes", "Bytes of audio in the cache."
            ),
            "ef_audio_cache_entries": _gauge("ef_audio_cache_entries", "Audio files in the cache."),
            "ef_audio_cache_max_bytes": _gauge(
                "ef_audio_cache_max_bytes", "Size cap of the audio cache (EF_CACHE_MAX_BYTES)."
            ),
            "ef_tts_queue_depth": _gauge("ef_tts_queue_depth", "Jobs waiting in the queue."),
            "ef_tts_queue_max": _gauge(
                "ef_tts_queue_max", "Queue capacity (EF_QUEUE_MAX): beyond it requests get 503."
            ),
            "ef_tts_queue_oldest_age_seconds": _gauge(
                "ef_tts_queue_oldest_age_seconds",
                "Age of the oldest queued job (0 when none waits).",
            ),
            "ef_db_size_bytes": _gauge(
                "ef_db_size_bytes", "Size of the SQLite database file plus its write-ahead log."
            ),
            "ef_db_up": _gauge(
                "ef_db_up", "1 if a probe of the database (SELECT 1) succeeded, else 0."
            ),
            "ef_audio_cache_writable": _gauge(
                "ef_audio_cache_writable",
                "1 if this process may write in the audio cache directory, else 0.",
            ),
        }

    def _service(self) -> Runtime | None:
        try:
            return self._runtime()
        except Exception:  # the app may still be starting
            return None

    @staticmethod
    def _read(method: str, service: object | None, **options: Any) -> Mapping[str, Any]:
        if service is None:
            return {}
        try:
            stats = getattr(service, method)(**options)
        except Exception as exc:
            log.warning("metrics: %s failed: %s", method, exc)
            return {}
        return stats if isinstance(stats, Mapping) else {}

    @staticmethod
    def _probe(service: object | None, method: str) -> bool:
        """One of the readiness probes (``database``, ``cache``), as /health/ready runs it."""
        if service is None:
            return False
        try:
            ok, error = getattr(service, method)()
        except Exception as exc:
            log.warning("metrics: %s raised: %s", method, exc)
            return False
        if not ok:
            log.warning("metrics: %s failed: %s", method, error)
        return bool(ok)
