"""Correct metrics with several uvicorn workers: prometheus-client multiprocess mode.

Decision: with ``EF_WORKERS > 1`` every worker writes its samples to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` (answered by any worker) sums them. The parent
(``ef serve``) calls :func:`prepare` before it starts the workers: it picks the
directory (``$PROMETHEUS_MULTIPROC_DIR`` or ``<EF_DATA_DIR>/prometheus-multiproc``), empties it
and exports the variable, which prometheus-client reads at import time in each worker.

Emptying is only done to a directory that is ours: one we created (or found empty) and marked
with `MARKER`. A directory with other files and no marker is refused, not emptied: pointing the
variable at the data directory must not delete the database.

A worker that finds ``EF_WORKERS > 1`` without multiprocess mode refuses to start
(:func:`check`), because each scrape would then see one random worker's counters.

Limits of the mode (prometheus-client's): no exemplars, and the process/GC collectors describe
only the worker that answered the scrape.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
    values,
)

from ef_backend.core.config import Settings

__all__ = ["ENV", "MARKER", "MultiprocessConfigError", "check", "enabled", "prepare", "registry"]

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The file that marks a metrics directory as made by this service (safe to empty).
MARKER = ".ef-prometheus-multiproc"


class MultiprocessConfigError(RuntimeError):
    """Several workers without a shared metrics directory: the service must not start."""


def enabled() -> bool:
    """True when prometheus-client chose its multiprocess value class at import."""
    return values.ValueClass is not values.MutexValue


def prepare(settings: Settings) -> Path | None:
    """Parent process, before starting workers: make and export an empty metrics directory."""
    if settings.workers <= 1 and ENV not in os.environ:
        return None
    path = Path(os.environ.get(ENV) or settings.data_dir / "prometheus-multiproc").resolve()
    _claim(path)
    for stale in path.glob("*.db"):
        stale.unlink()  # samples of dead workers would be summed in
    os.environ[ENV] = str(path)
    log.info("prometheus multiprocess mode", extra={"dir": str(path), "workers": settings.workers})
    return path


def _claim(path: Path) -> None:
    """Make ``path`` ours (created, or found empty) or refuse a foreign non-empty directory."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = path / MARKER
    if marker.exists():
        return
    if any(path.iterdir()):
        raise MultiprocessConfigError(
            f"{ENV}={str(path)!r} holds files and was not made by EchoForge (no {MARKER}): "
            "it will not be emptied. Point it at an empty directory of its own."
        )
    marker.touch()


def check(settings: Settings) -> None:
    """Worker process: refuse to run several workers with per-process metrics."""
    if settings.workers > 1 and not enabled():
        raise MultiprocessConfigError(
            f"EF_WORKERS={settings.workers} but Prometheus multiprocess mode is off: each scrape "
            "would see one random worker's metrics. Start with `ef serve` (it sets "
            f"{ENV}), or set {ENV} to an empty writable directory before start, or use "
            "EF_WORKERS=1."
        )
    if enabled():
        directory = os.environ.get(ENV, "")
        if not directory or not os.path.isdir(directory):
            raise MultiprocessConfigError(
                f"{ENV}={directory!r} is not a directory; create it (empty) before start."
            )
        atexit.register(_mark_dead, os.getpid())


def _mark_dead(pid: int) -> None:
    # Drops this worker's live gauges (in-progress counts) from the sum.
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def registry() -> CollectorRegistry:
    """A fresh registry that sums every worker's files (built per scrape, as documented).

    The process and Python collectors describe the worker that answers the scrape.
    """
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg
