"""Database tables and the public schemas of the API.

Tables: `Job` (the persistent queue) and `CacheEntry` (audio cache metadata). Schemas follow the
Base / Create / table / Public pattern so that what the API shows is chosen, not leaked.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (SQLModel's UTCDateTime refuses naive datetimes)."""
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class JobStatus(enum.StrEnum):
    """Life of a job: queued -> running -> succeeded | failed; queued -> cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)


class AudioFormat(enum.StrEnum):
    """Output formats; each is really encoded (PyAV), never a renamed WAV."""

    wav = "wav"
    mp3 = "mp3"
    opus = "opus"
    flac = "flac"
    aac = "aac"
    pcm = "pcm"


class JobBase(SQLModel):
    """What a client asks for."""

    text: str = Field(sa_column=Column(Text, nullable=False))
    voice: str
    speed: float = 1.0
    format: AudioFormat = AudioFormat.wav


class Job(JobBase, table=True):
    """A unit of synthesis work, persisted so that a crash loses nothing."""

    __table_args__ = (
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_client_created", "client", "created_at"),
        # At most one active job per client and request key: identical concurrent requests of
        # one API key share one synthesis; another key never joins a job it could not read.
        Index(
            "ux_job_active_client_cache_key",
            "client",
            "cache_key",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    status: JobStatus = Field(default=JobStatus.queued)
    cache_key: str = Field(max_length=64)
    engine: str = ""
    model: str = ""
    client: str = Field(default="anonymous", description="API key name or 'anonymous'")
    # W3C traceparent of the request that queued the job, so the worker continues its trace.
    trace_parent: str | None = Field(default=None, max_length=55)
    sentences_total: int = 0
    sentences_done: int = 0
    sentence_keys: str = Field(
        default="[]", sa_column=Column(Text, nullable=False, server_default="[]")
    )
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error_reason: str | None = None
    worker_id: str | None = None
    lease_until: datetime | None = None
    audio_seconds: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class CacheEntry(SQLModel, table=True):
    """Metadata of one cached audio file; the file lives at a path derived from the key only."""

    __tablename__ = "cache_entry"
    __table_args__ = (Index("ix_cache_entry_last_used", "last_used_at"),)

    key: str = Field(primary_key=True, max_length=64)
    format: AudioFormat
    size_bytes: int
    duration_s: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime = Field(default_factory=utcnow)
    hits: int = 0


class JobLinks(BaseModel):
    """Where to look next."""

    self: str
    audio: str


class JobPublic(BaseModel):
    """A job as the API shows it (no text: only its length)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: JobStatus
    voice: str
    speed: float
    format: AudioFormat
    text_chars: int
    sentences_total: int
    sentences_done: int
    attempts: int
    error: str | None
    error_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks
    queue_position: int | None = Field(
        default=None,
        description="While queued: jobs ahead of this one plus one (GET of one job only).",
    )


class JobsPublic(BaseModel):
    """A page of jobs."""

    data: list[JobPublic]
    count: int
    limit: int
    offset: int
