"""The collector: statvfs of every configured path, taken when Prometheus scrapes.

Written to the exporter guidelines (prometheus.io/docs/instrumenting/writing_exporters): values
are read at scrape time (no background loop, no stale cache), base units (bytes, a 0-1 ratio),
one bounded ``path`` label, and ``ef_disk_exporter_up`` / ``..._scrape_duration_seconds`` about
the scrape itself. A path that cannot be read is left out and sets ``up`` to 0.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PathUsage:
    path: str
    size_bytes: int
    used_bytes: int
    free_bytes: int
    #: None where the file system does not count inodes (statvfs says 0, or no statvfs).
    inodes: int | None
    inodes_free: int | None

    @property
    def used_ratio(self) -> float:
        """Used over what a user can use (used + free), as ``df`` shows it."""
        usable = self.used_bytes + self.free_bytes
        return self.used_bytes / usable if usable else 0.0


def read_usage(path: str) -> PathUsage:
    """Disk usage of the file system holding ``path``; raises OSError if it cannot be read."""
    usage = psutil.disk_usage(path)
    inodes: int | None = None
    inodes_free: int | None = None
    statvfs = getattr(os, "statvfs", None)
    if statvfs is not None:
        st = statvfs(path)
        if st.f_files > 0:
            inodes, inodes_free = int(st.f_files), int(st.f_favail)
    return PathUsage(path, usage.total, usage.used, usage.free, inodes, inodes_free)


class DiskCollector(Collector):
    """Exposes ``ef_disk_*`` for each path; registered once, called on every scrape."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(paths)
        # Paths failing now: warn when one starts or stops failing, not on every scrape.
        self._failing: set[str] = set()

    def describe(self) -> Iterable[Metric]:
        # Declaring the families without reading the disk keeps registration free of I/O.
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        families = self._families()
        size, used, free, ratio, inodes, inodes_free, up, duration = families
        ok = True
        for path in self.paths:
            try:
                usage = read_usage(path)
            except OSError as exc:
                ok = False
                if path not in self._failing:
                    self._failing.add(path)
                    log.warning("cannot read disk usage of %s: %s", path, exc)
                continue
            if path in self._failing:
                self._failing.discard(path)
                log.info("disk usage of %s readable again", path)
            size.add_metric([path], usage.size_bytes)
            used.add_metric([path], usage.used_bytes)
            free.add_metric([path], usage.free_bytes)
            ratio.add_metric([path], usage.used_ratio)
            if usage.inodes is not None and usage.inodes_free is not None:
                inodes.add_metric([path], usage.inodes)
                inodes_free.add_metric([path], usage.inodes_free)
        up.add_metric([], 1.0 if ok else 0.0)
        duration.add_metric([], time.perf_counter() - start)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        path = ["path"]
        return (
            GaugeMetricFamily(
                "ef_disk_size_bytes", "Size of the file system holding the path.", labels=path
            ),
            GaugeMetricFamily(
                "ef_disk_used_bytes", "Bytes used on the file system holding the path.", labels=path
            ),
            GaugeMetricFamily(
                "ef_disk_free_bytes",
                "Bytes still usable by non-root users on that file system.",
                labels=path,
            ),
            GaugeMetricFamily(
                "ef_disk_used_ratio",
                "Used share of the usable space, 0 to 1 (what df shows).",
                labels=path,
            ),
            GaugeMetricFamily(
                "ef_disk_inodes", "Inodes of the file system, where it has inodes.", labels=path
            ),
            GaugeMetricFamily(
                "ef_disk_inodes_free",
                "Inodes still usable by non-root users, where counted.",
                labels=path,
            ),
            GaugeMetricFamily(
                "ef_disk_exporter_up",
                "1 if every configured path was read at this scrape, else 0.",
                labels=[],
            ),
            GaugeMetricFamily(
                "ef_disk_exporter_scrape_duration_seconds",
                "Time this scrape took to read the paths.",
                labels=[],
            ),
        )
