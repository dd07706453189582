"""JSON logs, one object per line on stdout (placeholder until the instrumentation issue lands)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO", *, service: str) -> None:
    """Configure the root logger once for ``service``."""
    logging.basicConfig(level=level.upper(), format=f"%(asctime)s {service} %(levelname)s %(name)s %(message)s")
