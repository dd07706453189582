"""Keep the garbage collector off the objects that live as long as the process.

After start-up a service holds some 130,000 container objects (modules, the app and its routes,
pydantic models, SQLAlchemy metadata) that never become garbage. Python's cyclic collector
scans all of them in every full collection, and full collections come more often when requests
keep objects alive for a while: finished spans wait up to a batch (512) in the export queue,
get promoted, and then make the collector walk the whole heap, about 80 ms each on the
benchmark machine (``docs/performance.md``). ``gc.freeze()`` moves everything alive at the end
of start-up into the permanent generation, which the collector never scans; garbage made
later is collected as before.

The same pattern large Python web services use (the ``gc.freeze`` documentation describes it for
pre-fork servers); here it runs once per process, from the app's lifespan.
"""

from __future__ import annotations

import gc
import logging
import threading

__all__ = ["freeze_startup_heap"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_frozen = False


def freeze_startup_heap() -> None:
    """Collect once, then freeze every object alive now; only the first call in a process
    does anything (later apps in the same process, as in tests, add nothing)."""
    global _frozen
    with _lock:
        if not _frozen:
            _frozen = True
            gc.collect()  # garbage of the start-up itself must not be frozen with the rest
            gc.freeze()
            log.debug("start-up heap frozen", extra={"gc_frozen_objects": gc.get_freeze_count()})
