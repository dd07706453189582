"""OpenAI-compatible ``POST /v1/audio/speech`` and ``GET /v1/models``.

The official `openai` client, Open WebUI and Home Assistant work unchanged: same body, same
formats (default mp3), same error shape. OpenAI voice names map through EF_VOICE_MAP (default:
the engine's default voice). Audio is one complete file unless the client asks for
``stream_format`` ``audio`` (raw bytes as sentences finish, for pcm, wav and mp3) or ``sse``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ef_backend.api.audio_replies import audio_reply, sse_reply, stream_reply
from ef_backend.api.deps import CallerDep, SettingsDep, SpeechDep, api_client
from ef_backend.api.disconnect import unless_disconnected
from ef_backend.api.openapi_responses import audio_response, errors
from ef_backend.api.schemas import (
    STREAM_FORMATS,
    ModelPublic,
    ModelsPublic,
    OpenAISpeechBody,
)
from ef_backend.services.speech import SpeechRequest

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(api_client)])

#: Model names clients send; every one speaks through the configured engine.
MODEL_IDS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "echoforge")
#: A fixed creation time (2024-01-01): the models have no history worth reporting.
_CREATED = 1704067200


@router.post(
    "/audio/speech",
    summary="Create speech (OpenAI-compatible)",
    description=(
        "OpenAI's `audio/speech`: `model`, `input`, `voice`, `response_format` (mp3, opus, aac, "
        "flac, wav, pcm; default mp3), `speed` (0.25-4.0), `stream_format` (audio or sse). "
        "Errors use OpenAI's shape `{error: {message, type, param, code}}`."
    ),
    response_class=Response,
    responses={
        **audio_response("The audio, in `response_format`.", streamed=True),
        **errors(400, 401, 422, 429, 502, 503, 504, 507, openai=True),
    },
)
async def create_speech(
    body: OpenAISpeechBody,
    speech: SpeechDep,
    caller: CallerDep,
    settings: SettingsDep,
    http: Request,
) -> Response:
    request = SpeechRequest(
        text=body.input,
        voice=body.voice_id,
        speed=body.speed,
        format=body.response_format,
        client=caller.name,
        text_field="input",
    )
    streamable = body.response_format in STREAM_FORMATS
    chars = len(body.input)
    if body.stream_format == "sse":
        if streamable:
            return sse_reply(
                await unless_disconnected(http, speech.stream(request)), input_chars=chars
            )
        return sse_reply(
            await unless_disconnected(http, speech.synthesize(request)), input_chars=chars
        )
    if body.stream_format == "audio" and streamable:
        stream = await unless_disconnected(http, speech.stream(request))
        return stream_reply(stream, body.response_format)
    audio = await speech.cached(request)  # a hit: no task, no wait set up
    if audio is None:
        audio = await unless_disconnected(http, speech.synthesize(request))
    return audio_reply(audio, body.response_format, accel_prefix=settings.accel_redirect_prefix)


@router.get(
    "/models",
    response_model=ModelsPublic,
    summary="List models (OpenAI-compatible)",
    description="The model names `/v1/audio/speech` accepts; all use the configured engine.",
    responses=errors(401, 429, openai=True),
)
async def list_models() -> ModelsPublic:
    return ModelsPublic(
        data=[ModelPublic(id=m, created=_CREATED, owned_by="echoforge") for m in MODEL_IDS]
    )
