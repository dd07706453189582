"""Checks shared by every synthesis route, with the messages clients (and tests) see."""

from __future__ import annotations

import math

from ef_tts.config import Settings
from ef_tts.engines import InputRejected


def check_text(text: str, settings: Settings) -> str:
    """The text to speak, or ``InputRejected`` when it is empty or over the limit."""
    if not text or not text.strip():
        raise InputRejected("empty_text", "Text parameter is required and must not be blank")
    if not any(ch.isalnum() for ch in text):
        raise InputRejected(
            "nothing_to_say",
            "Text has no letters or digits to speak (only punctuation, symbols or emoji)",
        )
    if len(text) > settings.max_text_chars:
        raise InputRejected(
            "text_too_long",
            f"Text is {len(text)} characters; the limit is {settings.max_text_chars}",
            status=413,
        )
    return text


def parse_speed(raw: str | float | None, settings: Settings) -> float:
    """``speed`` as a float within the configured bounds (1.0 when absent)."""
    if raw is None or raw == "":
        return 1.0
    try:
        speed = float(raw)
    except (TypeError, ValueError):
        raise InputRejected("invalid_speed", f"speed must be a number, not {raw!r}") from None
    if not math.isfinite(speed) or not settings.min_speed <= speed <= settings.max_speed:
        raise InputRejected(
            "invalid_speed",
            f"speed must be between {settings.min_speed} and {settings.max_speed}, not {raw}",
        )
    return speed
