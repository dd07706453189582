"""The voice names OpenAI clients hard-code (Open WebUI, Home Assistant, the ``openai`` SDK).

Both services accept them, case-insensitively, and map them to a configured voice, so that
clients that cannot be told our voice ids still speak. One list, here, so they cannot diverge.
"""

from __future__ import annotations

OPENAI_VOICES: tuple[str, ...] = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)


def is_openai_voice(name: str | None) -> bool:
    """True for one of OpenAI's voice names, in any letter case."""
    return name is not None and name.strip().lower() in OPENAI_VOICES
