"""OpenTelemetry set-up from the standard OTEL_* variables (placeholder until instrumentation lands)."""

from __future__ import annotations

from typing import Any


def instrument_app(app: Any, *, service: str) -> None:
    """Trace every request of the FastAPI ``app`` as ``service``; a no-op until configured."""
    return None
