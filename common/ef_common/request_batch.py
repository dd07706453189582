"""What happens after a response, done once per event-loop turn for all requests that finished.

The request middleware used to count each request, format its access-log line and write it
(one ``write()`` each) while answering it. The same work done in a loop over the requests that
finished in one event-loop turn costs far less (the code and data stay in the CPU's caches, and
one ``write()`` carries every line): in the running server the access log went from about 28 µs
to 8 µs per request, and tracing from 28 µs to 14 µs (``docs/performance.md``). So the
middleware only records each finished request (:class:`RequestRecord`) and a :class:`LoopBatch`
hands them to the metrics, the access log and the span exporter right after the current turn of
the event loop: microseconds later, in order.

Nothing is lost to the delay: a scrape (``HttpMetrics.collect``), shutdown and ``atexit`` call
:func:`flush_pending` first, and a batch whose event loop stopped before its turn ended (a test
client's short-lived loop) is flushed by the next request on any loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as _running_loop
from collections.abc import Callable
from threading import get_ident as _thread_id
from typing import Generic, NamedTuple, TypeVar

__all__ = ["LoopBatch", "RequestRecord", "flush_pending"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RequestRecord(NamedTuple):
    """One answered HTTP request, as the metrics and the access log need it."""

    method: str
    #: route template (``/api/v1/jobs/{job_id}``), never the raw path
    route: str
    status: int
    duration_s: float
    #: wall-clock time the response ended (seconds since the epoch)
    time: float
    path: str
    request_id: str | None
    client_ip: str | None
    #: the API key's configured name, never the key
    client: str | None
    #: the request span's ids; 0 when the request was not traced
    trace_id: int
    span_id: int
    #: the trace is sampled (exported), so a metric may link to it as an exemplar
    sampled: bool

    def exemplar(self) -> dict[str, str] | None:
        """The labels of an exemplar linking a metric to this request's trace, or None."""
        return {"trace_id": f"{self.trace_id:032x}"} if self.sampled else None


_live: weakref.WeakSet[LoopBatch[object]] = weakref.WeakSet()


class LoopBatch(Generic[T]):
    """Collects items on the request path; ``process`` gets them as a list after this loop turn.

    ``add`` is an ``append`` plus, once per turn, a ``call_soon``; while a flush waits on the
    loop running in the caller's thread, it does not even ask asyncio for the running loop
    (which costs a ``getpid()`` system call, for a check against forks). ``flush`` may run in any
    thread (a scrape, ``atexit``); a lock keeps two flushes from processing the same items, and
    ``process`` is never called with an empty list.
    """

    def __init__(self, process: Callable[[list[T]], None]) -> None:
        self._process = process
        self._items: list[T] = []
        self._lock = threading.Lock()
        #: the loop on which a flush is scheduled and the thread that scheduled it (None: none is)
        self._scheduled: tuple[AbstractEventLoop, int] | None = None
        _live.add(self)  # type: ignore[arg-type]

    def add(self, item: T) -> None:
        self._items.append(item)
        scheduled = self._scheduled
        if scheduled is not None and scheduled[1] == _thread_id() and scheduled[0].is_running():
            # This thread scheduled the flush on the loop it is running now (a thread runs one
            # loop at a time), and the flush has not run (it clears _scheduled first).
            return
        loop = _running_loop()
        if loop is None:  # not in an event loop (a synchronous caller): no turn to wait for
            self.flush()
        elif scheduled is None or loop is not scheduled[0]:
            # First item this turn, or the loop that was to flush has gone: flush after it.
            self._scheduled = (loop, _thread_id())
            loop.call_soon(self._flush_scheduled)

    def _flush_scheduled(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        """Process every item added so far."""
        with self._lock:
            items = self._items
            count = len(items)
            if not count:
                return
            # Same list object, oldest first: an append from another thread is never lost.
            batch = items[:count]
            del items[:count]
            try:
                self._process(batch)
            except Exception:  # a failing sink must not break the event loop or a scrape
                log.exception("processing %d finished requests failed", count)


def _reset_after_fork() -> None:
    # A forked worker starts with its parent's pending items (the parent answered those
    # requests and counts them itself), maybe a held lock, and no event loop.
    for batch in list(_live):
        batch._lock = threading.Lock()
        batch._items.clear()
        batch._scheduled = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def flush_pending() -> None:
    """Flush every live :class:`LoopBatch` (before a scrape, at shutdown, in tests)."""
    for batch in list(_live):
        batch.flush()


atexit.register(flush_pending)
