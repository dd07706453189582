"""``/api/v1/jobs``: queue synthesis, follow it, fetch the audio, cancel.

With EF_API_KEYS set, a job belongs to the key that queued it: another key gets 404 for it and
never sees it listed (the admin API sees every job). With keys off, every job is open.

Handlers that only read or write the database are plain ``def``: FastAPI runs them in its
thread pool, so a slow disk never stalls the event loop. The audio route is ``async``: a job's
audio fetched again comes from memory (`JobService.known_audio`), else from a thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from ef_backend.api.audio_replies import audio_reply
from ef_backend.api.deps import CallerDep, JobsDep, SettingsDep, SpeechDep, api_client
from ef_backend.api.openapi_responses import audio_response, errors
from ef_backend.api.schemas import SpeechBody, job_public
from ef_backend.models import JobPublic, JobsPublic, JobStatus
from ef_backend.services.speech import SpeechRequest

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], dependencies=[Depends(api_client)])

#: Larger offsets would overflow the database's integer (a 500); no one pages that far.
MAX_OFFSET = 1_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Jobs to skip (newest first).")]

JobId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9A-Za-z_-]+$",
        description="The id returned by POST /api/v1/jobs.",
    ),
]


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    summary="Queue a synthesis job",
    description=(
        "Returns at once with the job (202, `Location` names it). An identical active job is "
        "joined rather than duplicated. Poll the job, then fetch `links.audio`."
    ),
    responses={
        202: {
            "description": "Queued (or joined an identical active job).",
            "headers": {"Location": {"description": "The job's URL", "schema": {"type": "string"}}},
        },
        **errors(400, 401, 422, 429, 503),
    },
)
async def create_job(
    body: SpeechBody,
    response: Response,
    speech: SpeechDep,
    caller: CallerDep,
) -> JobPublic:
    job = await speech.submit(
        SpeechRequest(
            text=body.text,
            voice=body.voice or None,
            speed=body.speed,
            format=body.format,
            client=caller.name,
        )
    )
    public = job_public(job)
    response.headers["Location"] = public.links.self
    return public


@router.get(
    "",
    response_model=JobsPublic,
    summary="List recent jobs",
    description="Newest first; `status` filters.",
    responses=errors(401, 422, 429),
)
def list_jobs(
    jobs: JobsDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Offset = 0,
    status: JobStatus | None = None,
) -> JobsPublic:
    found, count = jobs.list(limit=limit, offset=offset, status=status, owner=caller.key_name)
    return JobsPublic(data=[job_public(j) for j in found], count=count, limit=limit, offset=offset)


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    summary="Get a job",
    responses=errors(401, 404, 422, 429),
)
def get_job(job_id: JobId, jobs: JobsDep, caller: CallerDep) -> JobPublic:
    job = jobs.get(job_id, owner=caller.key_name)
    public = job_public(job)
    if job.status is JobStatus.queued:
        public.queue_position = jobs.queue_position(job)
    return public


_AUDIO_RESPONSES = {
    **audio_response("The audio, in the job's format.", ranges=True),
    **errors(
        400,
        401,
        404,
        409,
        422,
        429,
        507,
        d400="A malformed `Range` header (Starlette answers it in plain text).",
        d409="The job has not succeeded (yet); its status is named.",
        d507="The job failed because its audio could not be stored (a full or read-only "
        "cache); free space in EF_DATA_DIR, then submit the request again.",
    ),
}
_AUDIO_RESPONSES[400]["content"] = {"text/plain": {"schema": {"type": "string"}}}


@router.get(
    "/{job_id}/audio",
    response_class=Response,
    summary="Get the audio of a finished job",
    responses=_AUDIO_RESPONSES,
)
async def get_job_audio(
    job_id: JobId, jobs: JobsDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    owner = caller.key_name
    audio = jobs.known_audio(job_id, owner=owner)  # fetched again: memory, no database
    if audio is None:
        audio = await asyncio.to_thread(jobs.audio, job_id, owner=owner)
    assert audio.file is not None  # a job's audio is always its cache file
    return audio_reply(audio, audio.file.format, accel_prefix=settings.accel_redirect_prefix)


@router.delete(
    "/{job_id}",
    response_model=JobPublic,
    summary="Cancel a queued job",
    description="Only a queued job can be cancelled; a running or finished one answers 409.",
    responses=errors(401, 404, 409, 422, 429),
)
def cancel_job(job_id: JobId, jobs: JobsDep, caller: CallerDep) -> JobPublic:
    return job_public(jobs.cancel(job_id, owner=caller.key_name))
