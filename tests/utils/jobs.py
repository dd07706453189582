"""Job factory of the tests that fill a queue directly (no engine, no HTTP)."""

from __future__ import annotations

from ef_backend.models import AudioFormat
from ef_backend.services.plan import plan
from ef_backend.services.queue import NewJob

__all__ = ["new_job"]


def new_job(
    text: str,
    *,
    engine: str = "piper",
    model: str = "joe",
    voice: str = "joe",
    speed: float = 1.0,
    format: AudioFormat = AudioFormat.wav,
) -> NewJob:
    """A job as `SpeechService` would queue it (text already normalised): its cache and sentence
    keys come from the text, so distinct texts make distinct jobs."""
    speech = plan(engine=engine, model=model, voice=voice, speed=speed, format=format, text=text)
    return NewJob(
        text=text,
        voice=voice,
        speed=speed,
        format=format,
        cache_key=speech.key,
        engine=engine,
        model=model,
        client="tests",
        sentence_keys=speech.sentence_keys,
    )
