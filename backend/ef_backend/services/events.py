"""In-process wake-ups between request handlers and workers.

Waiters in this process are woken at once when a worker changes a job (a sentence landed, the job
finished) and workers are woken when a job is queued. Nothing depends on these signals for
correctness: every wait also times out and re-reads the database, which is how a waiter learns
about work done by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

__all__ = ["HANDOVER_MAX_BYTES", "JobEvents", "sentence_handle"]

#: Audio made but not stored (a full disk), kept for the waiter of its job: at most this much.
HANDOVER_MAX_BYTES = 64 * 1024 * 1024


def sentence_handle(job_id: str, index: int) -> str:
    """The `JobEvents.hand_over` name of sentence ``index`` of a job (the job's own is its id)."""
    return f"{job_id}#{index}"


class JobEvents:
    """Per-job change signals and one "work is queued" signal; loop-local, cheap, lossy."""

    def __init__(self) -> None:
        self._jobs: dict[str, asyncio.Event] = {}
        self._work = asyncio.Event()
        self._handed: OrderedDict[str, bytes] = OrderedDict()

    def hand_over(self, job_id: str, data: bytes) -> None:
        """Keep the audio of a job that could not be cached for its waiter in this process
        (bounded: the oldest go first); see `take`."""
        self._handed[job_id] = data
        while sum(len(d) for d in self._handed.values()) > HANDOVER_MAX_BYTES:
            self._handed.popitem(last=False)

    def take(self, job_id: str) -> bytes | None:
        """The audio `hand_over` kept for ``job_id``, once."""
        return self._handed.pop(job_id, None)

    def watch(self, job_id: str) -> asyncio.Event:
        """The event the next change of ``job_id`` sets; take it *before* reading the job."""
        event = self._jobs.get(job_id)
        if event is None:
            event = self._jobs[job_id] = asyncio.Event()
        return event

    def changed(self, job_id: str) -> None:
        """Wake everyone watching ``job_id``; later watchers get a fresh event."""
        event = self._jobs.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Wait for ``event`` or ``timeout`` seconds, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))

    def work_queued(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout=timeout)
        self._work.clear()
