"""Request bodies and response models of the HTTP API (the job models live in `models.py`).

Static bounds (a positive, finite speed; non-blank text) are declared here so the OpenAPI document
shows them; the limits an operator configures (`EF_MAX_TEXT_CHARS`, `EF_MIN_SPEED`,
`EF_MAX_SPEED`) are checked by `services.speech.check_limits`, with the same error shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ef_backend.models import AudioFormat, Job, JobLinks, JobPublic
from ef_backend.services.audio import STREAMABLE_FORMATS

#: Formats that can be streamed as sentences finish (the others need the whole audio first).
STREAM_FORMATS = STREAMABLE_FORMATS

CheckStatus = Literal["ok", "warn", "fail"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain text to speak, not only whitespace")
    return value


class SpeechBody(BaseModel):
    """Body of ``POST /api/v1/speech`` and ``POST /api/v1/jobs``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "Dinner is ready.", "voice": None, "speed": 1.0, "format": "wav"}]
        },
    )

    text: str = Field(
        min_length=1, description="What to say; at most EF_MAX_TEXT_CHARS (default 5000) chars."
    )
    voice: str | None = Field(
        default=None,
        max_length=200,
        description="A voice id from GET /api/v1/voices, an OpenAI voice name, or null (default).",
    )
    speed: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="1.0 is normal speed; EF_MIN_SPEED to EF_MAX_SPEED (default 0.25 to 4).",
    )
    format: AudioFormat = Field(default=AudioFormat.wav, description="Audio format of the answer.")

    _check_text = field_validator("text")(_not_blank)


class SpeechStreamBody(SpeechBody):
    """Body of ``POST /api/v1/speech``: as a job, plus ``stream``."""

    stream: bool = Field(
        default=False,
        description="Stream the audio as sentences finish (formats pcm, wav and mp3 only).",
    )


class VoiceRef(BaseModel):
    """OpenAI's custom voice object, ``{"id": "..."}``."""

    id: str = Field(min_length=1, max_length=200)


class OpenAISpeechBody(BaseModel):
    """Body of ``POST /v1/audio/speech``, as OpenAI defines it; unknown fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"model": "tts-1", "input": "Hello there.", "voice": "alloy"}]
        },
    )

    model: str = Field(
        default="tts-1",
        min_length=1,
        max_length=200,
        description="Any model from GET /v1/models; all use the configured engine.",
    )
    input: str = Field(min_length=1, description="The text; at most EF_MAX_TEXT_CHARS chars.")
    voice: str | VoiceRef | None = Field(
        default=None,
        description="An OpenAI voice name (mapped by EF_VOICE_MAP), an engine voice id, or null.",
    )
    instructions: str | None = Field(
        default=None, max_length=4096, description="Accepted for compatibility and ignored."
    )
    response_format: AudioFormat = Field(default=AudioFormat.mp3)
    speed: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="EF_MIN_SPEED to EF_MAX_SPEED (default 0.25 to 4, as OpenAI's).",
    )
    stream_format: Literal["audio", "sse"] | None = Field(
        default=None,
        description=(
            "'audio' streams raw audio as sentences finish (pcm, wav, mp3); 'sse' sends "
            "speech.audio.delta events with base64 audio. Absent: one complete file."
        ),
    )

    _check_input = field_validator("input")(_not_blank)

    @property
    def voice_id(self) -> str | None:
        if isinstance(self.voice, VoiceRef):
            return self.voice.id
        return self.voice or None


def job_links(job_id: str) -> JobLinks:
    return JobLinks(self=f"/api/v1/jobs/{job_id}", audio=f"/api/v1/jobs/{job_id}/audio")


def job_public(job: Job) -> JobPublic:
    """What the API shows of a job: never its text, only the text's length."""
    return JobPublic(
        id=job.id,
        status=job.status,
        voice=job.voice,
        speed=job.speed,
        format=job.format,
        text_chars=len(job.text),
        sentences_total=job.sentences_total,
        sentences_done=job.sentences_done,
        attempts=job.attempts,
        error=job.error,
        error_reason=job.error_reason,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        links=job_links(job.id),
    )


class JobAdminPublic(JobPublic):
    """A job as the admin API shows it: also who asked, which worker holds it and until when."""

    client: str
    engine: str
    model: str
    worker_id: str | None
    lease_until: datetime | None
    audio_seconds: float | None


class JobsAdminPublic(BaseModel):
    """A page of jobs for the admin API."""

    data: list[JobAdminPublic]
    count: int
    limit: int
    offset: int


def job_admin(job: Job) -> JobAdminPublic:
    """What the admin API shows of a job (still never its text)."""
    return JobAdminPublic(
        **job_public(job).model_dump(),
        client=job.client,
        engine=job.engine,
        model=job.model,
        worker_id=job.worker_id,
        lease_until=job.lease_until,
        audio_seconds=job.audio_seconds,
    )


class VoicePublic(BaseModel):
    """One voice of the engine."""

    id: str
    name: str
    language: str | None
    engine: str
    sample_rate: int | None
    default: bool


class VoicesPublic(BaseModel):
    """The engine's voices and the OpenAI names that map to them."""

    data: list[VoicePublic]
    count: int
    default: str | None = Field(description="Id of the default voice.")
    openai_voices: dict[str, str] = Field(
        description="OpenAI voice name -> the engine voice it speaks with."
    )


class CheckResult(BaseModel):
    """One health check: its status, how long it took and what it found."""

    status: CheckStatus
    duration_ms: float
    error: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class HealthPublic(BaseModel):
    """Health of the service; 503 when any check fails."""

    status: Literal["ok", "degraded", "fail"]
    checks: dict[str, CheckResult]
    version: str
    commit: str


class EngineHealthPublic(BaseModel):
    """The engine as the last probe saw it (probes are cached a few seconds)."""

    status: Literal["ok", "fail"]
    reachable: bool
    model_loaded: bool
    latency_ms: float | None = Field(description="Time of a short sample synthesis.")
    engine: str
    model: str
    error: str | None
    checked_at: float = Field(description="Unix time of the probe.")
    duration_ms: float = Field(description="Time this request spent on the check.")


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class QueueStatsPublic(BaseModel):
    """The job queue: counts by status, the oldest queued job's age, worker capacity."""

    counts: dict[str, int] = Field(description="Jobs by status.")
    queued: int
    running: int
    oldest_queued_age_s: float = Field(description="0 when nothing waits.")
    max: int = Field(description="EF_QUEUE_MAX: past this many queued jobs new work gets 503.")
    workers: int = Field(description="Worker tasks in this process.")
    concurrency: int = Field(description="EF_TTS_CONCURRENCY.")


class CacheStatsPublic(BaseModel):
    """The audio cache: entries, bytes used and allowed, hits, evictions."""

    entries: int
    size_bytes: int
    max_bytes: int = Field(description="EF_CACHE_MAX_BYTES.")
    hits: int = Field(description="Hits of the entries still cached.")
    evictions: int = Field(description="Entries evicted by this process since it started.")


class CachePurged(BaseModel):
    removed: int = Field(description="Cache entries deleted.")


class ModelPublic(BaseModel):
    """One entry of OpenAI's model list."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class ErrorDetail(BaseModel):
    """What went wrong and what to change; some errors add fields (``valid``, ``job_id``)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    """OpenAI's error object, so that OpenAI clients show the message."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIErrorDetail


class LimitsPublic(BaseModel):
    """What this server accepts, so that clients (the web page) need not hard-code it."""

    max_text_chars: int = Field(description="EF_MAX_TEXT_CHARS.")
    min_speed: float = Field(description="EF_MIN_SPEED.")
    max_speed: float = Field(description="EF_MAX_SPEED.")
    formats: list[AudioFormat] = Field(description="Every audio format of the API.")
    stream_formats: list[AudioFormat] = Field(description="The formats `stream: true` accepts.")
    api_key_required: bool = Field(description="True when EF_API_KEYS is set.")


class CacheHitRatioPublic(BaseModel):
    """Audio cache lookups since the process (or all its workers) started."""

    hits: int
    misses: int
    ratio: float | None = Field(description="hits / (hits + misses); null before any lookup.")


class AdminLinksPublic(BaseModel):
    """Monitoring UIs and runbooks, as configured (null when not set)."""

    grafana: str | None
    prometheus: str | None
    alertmanager: str | None
    runbooks: str | None


class RecentErrorPublic(BaseModel):
    """One warning or error this process logged."""

    time: float = Field(description="Unix time.")
    level: str
    logger: str
    message: str
    request_id: str | None


class RecentErrorsPublic(BaseModel):
    """The newest warnings and errors of the worker that answered, newest first."""

    data: list[RecentErrorPublic]
    count: int
