"""``GET /api/v1/voices``: what the engine can speak with."""

from __future__ import annotations

import logging

from ef_common.voices import OPENAI_VOICES
from fastapi import APIRouter, Depends

from ef_backend.api.deps import SpeechDep, rate_limit
from ef_backend.api.openapi_responses import errors
from ef_backend.api.schemas import VoicePublic, VoicesPublic
from ef_backend.core.errors import UnknownVoice

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["voices"], dependencies=[Depends(rate_limit)])


@router.get(
    "/voices",
    response_model=VoicesPublic,
    summary="List the engine's voices",
    description=(
        "The voices of the configured engine; `default` is used when a request names none. "
        "`openai_voices` shows which engine voice each OpenAI voice name speaks with."
    ),
    responses=errors(429, 503),
)
async def list_voices(speech: SpeechDep) -> VoicesPublic:
    voices = await speech.voices()
    default = await speech.resolve_voice(None) if voices else None
    openai_voices: dict[str, str] = {}
    for name in OPENAI_VOICES:
        try:
            openai_voices[name] = await speech.resolve_voice(name)
        except UnknownVoice:
            log.warning("EF_VOICE_MAP maps %s to a voice the engine does not have", name)
    return VoicesPublic(
        data=[
            VoicePublic(
                id=v.id,
                name=v.name,
                language=v.language,
                engine=v.engine,
                sample_rate=v.sample_rate,
                default=v.default,
            )
            for v in voices
        ],
        count=len(voices),
        default=default,
        openai_voices=openai_voices,
    )
