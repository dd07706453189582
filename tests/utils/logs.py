"""Capture our JSON logs in a test and read them back, one object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ef_common.logging import configure_logging

__all__ = ["captured_logs", "json_lines"]


@contextmanager
def captured_logs(level: str = "INFO", service: str = "test") -> Iterator[io.StringIO]:
    """Configure our JSON logging into a buffer; restore the previous set-up afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uv_access = logging.getLogger("uvicorn.access")
    saved_access = (list(uv_access.handlers), uv_access.propagate, uv_access.disabled)
    buffer = io.StringIO()
    configure_logging(level, service=service, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        uv_access.handlers[:] = saved_access[0]
        uv_access.propagate, uv_access.disabled = saved_access[1], saved_access[2]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object: parse them all (fails on the first that is not)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
        assert isinstance(doc, dict), f"log line {number} is not an object: {line!r}"
        out.append(doc)
    return out
