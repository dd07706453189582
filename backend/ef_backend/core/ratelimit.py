"""Per-client token bucket: `EF_RATE_LIMIT` requests per minute per API key name or client address.

Each client may burst up to a minute's allowance and then gets one request every
``60 / EF_RATE_LIMIT`` seconds. The buckets live in this process: with several uvicorn workers each
worker counts on its own (a homelab runs one). Idle buckets are dropped, so a scan from many
addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ef_backend.core.errors import RateLimited

#: At most this many buckets are kept; the least recently used go first.
MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by client; ``per_minute=0`` turns limiting off."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, key: str) -> float:
        """Take one token for ``key``; return 0 when allowed, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                bucket = _Bucket(tokens=self.capacity, updated=now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def check(self, key: str, *, who: str) -> None:
        """Raise `RateLimited` (429 with Retry-After) when ``key`` has no token left."""
        wait = self.acquire(key)
        if wait > 0:
            raise RateLimited(
                f"Rate limit of {self.per_minute} requests per minute exceeded for {who}; "
                f"retry in {math.ceil(wait)} s (EF_RATE_LIMIT).",
                retry_after=wait,
            )

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["MAX_BUCKETS", "RateLimiter"]
