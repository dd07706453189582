"""The one way tests wait for something: poll a check until it holds, within a bound.

The bound is a failure limit, never a speed claim; ``what`` names what was awaited in the
failure message (a string, or a callable that describes the last state).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["poll_until", "poll_until_async"]


def _describe(what: str | Callable[[], str], last: Any) -> str:
    text = what() if callable(what) else what
    return f"timed out waiting for {text} (last: {last!r})"


def poll_until(
    check: Callable[[], Any],
    *,
    timeout: float,
    what: str | Callable[[], str] = "the condition",
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``check`` until it returns something truthy, and return that; exceptions in
    ``ignore`` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(_describe(what, last))
        time.sleep(interval)


async def poll_until_async(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float,
    what: str | Callable[[], str] = "the condition",
    interval: float = 0.05,
) -> Any:
    """As :func:`poll_until`, without blocking the event loop (``check`` may be async)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(_describe(what, last))
        await asyncio.sleep(interval)
