"""The last warnings and errors of this process, kept in memory for the admin page.

A logging handler on the root logger keeps the newest records at WARNING or above in a bounded
deque; ``GET /api/admin/errors`` shows them, so the operator sees what went wrong without a
shell on the host. Each uvicorn worker keeps its own list (the admin page shows the worker that
answered); the logs on stdout remain the complete record.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

from ef_common.context import request_id
from ef_common.logging import REDACTED_FIELDS

__all__ = ["RecentError", "RecentErrors", "install_recent_errors"]

#: How many records are kept: enough for an incident, small enough to send in one answer.
KEEP = 100

# Attributes every LogRecord has; the rest came from ``extra=`` (job_id, error_code, ...).
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


@dataclass(frozen=True)
class RecentError:
    """One logged warning or error, as the admin page shows it."""

    time: float
    level: str
    logger: str
    message: str
    request_id: str | None


class RecentErrors(logging.Handler):
    """Keeps the newest ``keep`` records at ``level`` or above; thread-safe."""

    def __init__(self, keep: int = KEEP, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._records: deque[RecentError] = deque(maxlen=keep)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        extra = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and key.lower() not in REDACTED_FIELDS
        ]
        if extra:
            message = f"{message} ({', '.join(extra)})"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message} ({type(exc).__name__}: {exc})"
        entry = RecentError(
            time=record.created,
            level=record.levelname,
            logger=record.name,
            message=message[:2000],
            request_id=request_id(),
        )
        with self._guard:
            self._records.append(entry)

    def newest(self, limit: int) -> list[RecentError]:
        """The newest ``limit`` records, newest first."""
        with self._guard:
            items = list(self._records)
        return items[::-1][:limit]

    def clear(self) -> None:
        with self._guard:
            self._records.clear()


_handler = RecentErrors()


def install_recent_errors() -> RecentErrors:
    """Attach the process-wide handler to the root logger (once) and return it."""
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    return _handler
