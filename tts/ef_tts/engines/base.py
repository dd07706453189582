"""The protocol every speech engine implements, and the errors it may raise.

The HTTP layer only knows this protocol: it validates the request, hands plain text to
``Engine.synthesize`` off the event loop and turns the result into WAV. Engines raise
``InputRejected`` (a 4xx for the client) for bad input and anything else for a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

#: Request values that mean "the model's default voice" (the stock server treats "" alike).
DEFAULT_VOICE_ALIASES = frozenset({"", "default"})


@dataclass(frozen=True)
class Voice:
    """One voice a client may ask for, as listed by ``GET /api/voices``."""

    id: str
    name: str
    language: str | None
    engine: str
    sample_rate: int | None
    default: bool


@dataclass(frozen=True)
class Synthesis:
    """Mono 16-bit audio from one request."""

    samples: npt.NDArray[np.int16]
    sample_rate: int
    speed_applied: bool
    voice: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


class InputRejected(Exception):
    """The request cannot be served as asked (unknown voice, bad language, ...): a 4xx."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class UnknownVoice(InputRejected):
    """The named voice (speaker) is not one of the model's voices."""

    def __init__(self, voice: str, valid: list[str]) -> None:
        shown = ", ".join(valid[:20]) + (", ..." if len(valid) > 20 else "")
        super().__init__("unknown_voice", f"Unknown voice {voice!r}; valid voices: {shown}")
        self.voice = voice
        self.valid = valid


class ModelLoadError(Exception):
    """The model could not be loaded; the message says which model and why."""


class Engine(Protocol):
    """A loaded-once speech model behind a thread-safe ``synthesize``."""

    name: str
    model: str
    device: str

    def load(self) -> None:
        """Load the model (slow; runs once in a background thread). Raises ``ModelLoadError``."""

    def voices(self) -> list[Voice]:
        """The voices this model can speak with, the default one flagged."""

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None,
        language: str | None,
        speed: float,
        style_wav: str | None = None,
    ) -> Synthesis:
        """Speak ``text``; blocking, so the caller runs it in a worker thread."""

    def details(self) -> dict[str, object]:
        """Model configuration for ``GET /details`` (no secrets, no paths beyond the model's)."""

    def close(self) -> None:
        """Release the model."""


def float_to_int16(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """Clip float audio in [-1, 1] to 16-bit PCM samples."""
    flat = np.asarray(audio, dtype=np.float32).reshape(-1)
    samples: npt.NDArray[np.int16] = np.clip(flat * 32767.0, -32767.0, 32767.0).astype(np.int16)
    return samples
