"""``POST /v1/audio/speech``: the OpenAI speech API, so OpenAI clients can use ef_tts directly."""

from __future__ import annotations

from typing import Literal

from ef_common.voices import is_openai_voice
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from ef_tts.api.coqui_api import audio_headers
from ef_tts.api.deps import RuntimeDep, SettingsDep
from ef_tts.api.validate import check_text, parse_speed
from ef_tts.audio import encode
from ef_tts.engines import UnknownVoice

router = APIRouter(tags=["openai"])


class SpeechBody(BaseModel):
    """The OpenAI request body; ``model`` is accepted and ignored (one model per process)."""

    model_config = ConfigDict(extra="ignore")

    input: str
    model: str | None = None
    voice: str | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0)
    language: str | None = None


@router.post("/v1/audio/speech", response_class=Response)
async def speech(body: SpeechBody, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """Speak ``input`` in ``response_format`` (mp3 by default, as OpenAI)."""
    text = check_text(body.input, settings)
    speed = parse_speed(body.speed, settings)
    try:
        result = await runtime.synthesize(
            text, voice=body.voice or None, language=body.language, speed=speed
        )
    except UnknownVoice:
        # OpenAI's voice names (any case) mean the default voice when the model has no such voice.
        if not is_openai_voice(body.voice):
            raise
        result = await runtime.synthesize(text, voice=None, language=body.language, speed=speed)
    data, media_type = encode(result.samples, result.sample_rate, body.response_format)
    engine, model = runtime.labels
    return Response(data, media_type=media_type, headers=audio_headers(result, engine, model))
