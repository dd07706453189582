"""Initial schema: the job queue and the audio cache metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIO_FORMATS = ("wav", "mp3", "opus", "flac", "aac", "pcm")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = sa.text("status IN ('queued', 'running')")


def _enum(name: str, values: tuple[str, ...]) -> sa.types.TypeEngine[str]:
    """An enum column type; on PostgreSQL the type is created once, even if two tables use it."""
    if not op.get_context().as_sql and op.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        enum = postgresql.ENUM(*values, name=name, create_type=False)
        enum.create(op.get_bind(), checkfirst=True)
        return enum
    return sa.Enum(*values, name=name)


def upgrade() -> None:
    audio_format = _enum("audioformat", AUDIO_FORMATS)
    op.create_table(
        "cache_entry",
        sa.Column("key", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("format", audio_format, nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_cache_entry_last_used", "cache_entry", ["last_used_at"], unique=False)

    op.create_table(
        "job",
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("voice", sqlmodel.AutoString(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=False),
        sa.Column("format", audio_format, nullable=False),
        sa.Column("id", sqlmodel.AutoString(length=32), nullable=False),
        sa.Column("status", _enum("jobstatus", JOB_STATUSES), nullable=False),
        sa.Column("cache_key", sqlmodel.AutoString(length=64), nullable=False),
        sa.Column("engine", sqlmodel.AutoString(), nullable=False),
        sa.Column("model", sqlmodel.AutoString(), nullable=False),
        sa.Column("client", sqlmodel.AutoString(), nullable=False),
        sa.Column("trace_parent", sqlmodel.AutoString(length=55), nullable=True),
        sa.Column("sentences_total", sa.Integer(), nullable=False),
        sa.Column("sentences_done", sa.Integer(), nullable=False),
        sa.Column("sentence_keys", sa.Text(), server_default="[]", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_reason", sqlmodel.AutoString(), nullable=True),
        sa.Column("worker_id", sqlmodel.AutoString(), nullable=True),
        sa.Column("lease_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_status_created", "job", ["status", "created_at"], unique=False)
    # At most one active job per request key (see models.Job): dedupe that holds across processes.
    op.create_index(
        "ux_job_active_cache_key",
        "job",
        ["cache_key"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ux_job_active_cache_key", table_name="job")
    op.drop_index("ix_job_status_created", table_name="job")
    op.drop_table("job")
    op.drop_index("ix_cache_entry_last_used", table_name="cache_entry")
    op.drop_table("cache_entry")
    if op.get_bind().dialect.name == "postgresql":
        sa.Enum(name="jobstatus").drop(op.get_bind(), checkfirst=True)
        sa.Enum(name="audioformat").drop(op.get_bind(), checkfirst=True)
