"""Speech engines behind one protocol; ``build_engine`` picks one from the settings."""

from __future__ import annotations

from ef_tts.config import Settings
from ef_tts.engines.base import (
    Engine,
    InputRejected,
    ModelLoadError,
    Synthesis,
    UnknownVoice,
    Voice,
)

__all__ = [
    "Engine",
    "InputRejected",
    "ModelLoadError",
    "Synthesis",
    "UnknownVoice",
    "Voice",
    "build_engine",
]


def build_engine(settings: Settings) -> Engine:
    """The engine named by ``EF_TTS_ENGINE``, not loaded yet (Coqui is imported only here)."""
    if settings.engine == "coqui":
        from ef_tts.engines.coqui import CoquiEngine

        return CoquiEngine(settings)
    from ef_tts.engines.piper import PiperEngine

    return PiperEngine(settings)
