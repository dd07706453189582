"""Stop waiting for a job when the client that asked has gone away.

A synchronous speech request waits for its job for up to EF_SYNC_TIMEOUT_S. Without this, a
client that hung up left its waiter polling the database until the timeout (81 of them were
still there at shutdown in the review). The job itself is not cancelled: it may be joined by
others, and its audio lands in the cache for the next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from ef_backend.core.errors import ClientGone

__all__ = ["CHECK_S", "unless_disconnected"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often the connection is looked at while waiting.
CHECK_S = 0.5


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, cancelled (and `ClientGone` raised) once the client disconnects."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=CHECK_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                log.info("client went away; stopped waiting for its audio")
                raise ClientGone("The client closed the connection before the audio was ready.")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
