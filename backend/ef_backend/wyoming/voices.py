"""The engine's voices as Wyoming sees them: the `info` answer and a requested voice's id.

The answer is built at every ``describe`` from the speech service's voice list (cached a few
seconds, the last known one while the engine is down), so it follows the engine when it is
restarted with other voices. A Piper voice with several speakers is offered by ef_tts as
``voice`` plus ``voice:speaker`` ids; Wyoming lists it once with its speakers, and a request
for ``name`` + ``speaker`` becomes the id ``name:speaker`` again.
"""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.tts import SynthesizeVoice

from ef_backend.core.errors import UnknownVoice
from ef_backend.services.engine import EngineInfo, EngineVoice

__all__ = ["PROGRAM", "UNKNOWN_LANGUAGE", "describe", "voice_id"]

#: The TTS program's name in Home Assistant's list of Wyoming services.
PROGRAM = "echoforge"
#: What a voice without a language is listed under (BCP 47 "undetermined").
UNKNOWN_LANGUAGE = "und"
_ATTRIBUTION = Attribution(name="EchoForge", url="")


def _language(voice: EngineVoice) -> str:
    return voice.language or UNKNOWN_LANGUAGE


def describe(voices: list[EngineVoice], engine: EngineInfo, *, version: str) -> Info:
    """The `info` event's content: one TTS program whose voices are the engine's."""
    speakers: dict[str, list[str]] = {}
    bases: dict[str, EngineVoice] = {}
    for voice in voices:
        base, sep, speaker = voice.id.partition(":")
        if sep and speaker:
            speakers.setdefault(base, []).append(speaker)
        else:
            bases[voice.id] = voice
    listed = [
        TtsVoice(
            name=voice.id,
            description=f"{voice.name} ({_language(voice)})",
            attribution=Attribution(name=voice.engine, url=""),
            installed=True,
            version=None,
            languages=[_language(voice)],
            speakers=[TtsVoiceSpeaker(name=s) for s in speakers[voice.id]]
            if voice.id in speakers
            else None,
        )
        for voice in bases.values()
    ]
    program = TtsProgram(
        name=PROGRAM,
        description=f"EchoForge: cached, queued text to speech ({engine.engine}, {engine.model})",
        attribution=_ATTRIBUTION,
        installed=True,
        version=version,
        voices=sorted(listed, key=lambda v: v.name),
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


def _norm(code: str | None) -> str:
    return (code or "").lower().replace("-", "_")


def voice_id(voice: SynthesizeVoice | None, voices: list[EngineVoice]) -> str | None:
    """The engine voice id a Wyoming request names (None: the default voice).

    ``name`` (+ ``speaker``) names the voice; a bare ``language`` picks the default voice when
    it speaks that language, else the first voice that does (exact region first, then any
    region of the language), and `UnknownVoice` when none does. An unknown name is passed on,
    so the speech service answers it with the same `UnknownVoice` error as the HTTP API.
    """
    if voice is None:
        return None
    if voice.name:
        return f"{voice.name}:{voice.speaker}" if voice.speaker else voice.name
    if not voice.language:
        return None
    asked = _norm(voice.language)
    exact = [v for v in voices if _norm(v.language) == asked]
    loose = [v for v in voices if _norm(v.language).split("_")[0] == asked.split("_")[0]]
    for candidates in (exact, loose):
        if candidates:
            return next((v.id for v in candidates if v.default), candidates[0].id)
    spoken = sorted({_language(v) for v in voices})
    raise UnknownVoice(
        f"No voice speaks {voice.language!r}. Languages: {', '.join(spoken)}.",
        valid=[v.id for v in voices],
    )
