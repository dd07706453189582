"""Jobs belong to their API key: active-job dedupe per key, and a per-key listing index.

An identical request from another key no longer joins a job it could not read (with
EF_CACHE_SCOPE=shared its cache key is the same); each key lists its own jobs by index.
The previous release runs on this schema unchanged: it only ever relied on the dedupe
raising IntegrityError, which a narrower unique index still does for its own key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    op.drop_index("ux_job_active_cache_key", table_name="job")
    op.create_index(
        "ux_job_active_client_cache_key",
        "job",
        ["client", "cache_key"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index("ix_job_client_created", "job", ["client", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_client_created", table_name="job")
    op.drop_index("ux_job_active_client_cache_key", table_name="job")
    op.create_index(
        "ux_job_active_cache_key",
        "job",
        ["cache_key"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
