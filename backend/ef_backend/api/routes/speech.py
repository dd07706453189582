"""``POST /api/v1/speech``: say this text and answer with the audio (or stream it)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ef_backend.api.audio_replies import audio_reply, stream_reply
from ef_backend.api.deps import CallerDep, SettingsDep, SpeechDep, api_client
from ef_backend.api.disconnect import unless_disconnected
from ef_backend.api.openapi_responses import audio_response, errors
from ef_backend.api.schemas import STREAM_FORMATS, SpeechStreamBody, job_links
from ef_backend.core.errors import InvalidInput, SyncTimeout
from ef_backend.services.speech import SpeechRequest

router = APIRouter(prefix="/api/v1", tags=["speech"], dependencies=[Depends(api_client)])


@router.post(
    "/speech",
    summary="Synthesise text and return the audio",
    description=(
        "Answers from the audio cache when this exact request was made before "
        "(`X-EF-Cache: hit`), else queues a job and waits for it up to EF_SYNC_TIMEOUT_S "
        "(`X-EF-Job-Id` names it). With `stream: true` the audio (pcm, wav or mp3) is sent as "
        "sentences finish."
    ),
    response_class=Response,
    responses={
        **audio_response("The audio, in the requested format."),
        **errors(400, 401, 422, 429, 502, 503, 504, 507),
    },
)
async def speak(
    body: SpeechStreamBody,
    speech: SpeechDep,
    caller: CallerDep,
    settings: SettingsDep,
    http: Request,
) -> Response:
    request = SpeechRequest(
        text=body.text,
        voice=body.voice or None,
        speed=body.speed,
        format=body.format,
        client=caller.name,
    )
    if body.stream:
        if body.format not in STREAM_FORMATS:
            allowed = ", ".join(f.value for f in STREAM_FORMATS)
            raise InvalidInput(
                f"format: {body.format.value} cannot be streamed; use one of {allowed}, "
                "or set stream to false.",
                param="format",
            )
        return stream_reply(await unless_disconnected(http, speech.stream(request)), body.format)
    try:
        audio = await speech.cached(request)  # a hit: no task, no wait set up
        if audio is None:
            audio = await unless_disconnected(http, speech.synthesize(request))
    except SyncTimeout as exc:
        job_id = exc.extra.get("job_id")
        if isinstance(job_id, str):
            exc.extra.setdefault("links", job_links(job_id).model_dump())
        raise
    return audio_reply(audio, body.format, accel_prefix=settings.accel_redirect_prefix)
