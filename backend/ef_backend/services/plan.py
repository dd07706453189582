"""What a request turns into: its normalised text, its sentences and their cache keys.

One function, used both where a job is created and where a worker runs it, so the two always
agree on the sentence keys that the streaming path reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ef_backend.models import AudioFormat
from ef_backend.services.cache import cache_key
from ef_backend.services.text import split_sentences

__all__ = ["SENTENCE_FORMAT", "SpeechPlan", "cache_scope", "plan"]

#: The format field of a sentence key. Sentences are stored as WAV, but a one-sentence request
#: for WAV must not share its key: the request's file is faded, the sentence's is raw.
SENTENCE_FORMAT = "wav-sentence"


@dataclass(frozen=True)
class SpeechPlan:
    """The request key, the sentences in order and the key of each sentence (stored as WAV)."""

    key: str
    sentences: tuple[str, ...]
    sentence_keys: tuple[str, ...]


def cache_scope(client: str, *, per_key: bool) -> str:
    """The cache scope of ``client`` (its API key name): its own under EF_CACHE_SCOPE=key with
    keys configured (``per_key``), else the shared one ("")."""
    return f"key:{client}" if per_key else ""


def plan(
    *,
    engine: str,
    model: str,
    voice: str,
    speed: float,
    format: AudioFormat,
    text: str,
    scope: str = "",
) -> SpeechPlan:
    """``text`` must be normalised (see `text.normalize`); ``scope`` see `cache_scope`."""
    sentences = tuple(split_sentences(text))
    keys = tuple(
        cache_key(engine, model, voice, speed, SENTENCE_FORMAT, sentence, scope=scope)
        for sentence in sentences
    )
    request_key = cache_key(engine, model, voice, speed, format, text, scope=scope)
    return SpeechPlan(request_key, sentences, keys)
