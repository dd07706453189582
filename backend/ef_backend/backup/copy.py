"""``ef db copy --to URL``: move every row to another database (SQLite to PostgreSQL).

The target gets its schema from Alembic (so it is a normal, migratable EchoForge database),
then every table is copied in foreign-key order through the models' own column types (UTC
datetimes, enums) and the row counts are compared. A SQLite source is read from an online
snapshot, so the copy is consistent even if the service still writes; rows written after the
snapshot are not copied, which is why the runbook stops the service first.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, Integer, func, insert, select, text
from sqlmodel import SQLModel

import ef_backend.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from ef_backend.backup import schema, sqlite_ops
from ef_backend.backup.errors import BackupError, Refused
from ef_backend.core import db
from ef_backend.core.config import sqlalchemy_url

_BATCH = 1000


@dataclass
class CopyResult:
    """Rows per table on both sides, and the URL to configure (password hidden)."""

    tables: dict[str, int]
    database_url: str


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in SQLModel.metadata.sorted_tables
        }


def _copy_rows(source: Engine, target: Engine) -> None:
    with source.connect() as src, target.begin() as dst:
        for table in SQLModel.metadata.sorted_tables:
            rows = src.execute(select(table)).mappings()
            while batch := rows.fetchmany(_BATCH):
                dst.execute(insert(table), [dict(row) for row in batch])


def _advance_sequences(target: Engine) -> None:
    """PostgreSQL: integer keys' sequences continue after the copied rows."""
    if target.dialect.name != "postgresql":
        return
    with target.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for column in table.primary_key.columns:
                if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                    # Names come from our own models, never from input.
                    highest = f'(SELECT max("{column.name}") FROM "{table.name}")'  # noqa: S608
                    conn.execute(
                        text(
                            "SELECT setval(pg_get_serial_sequence(:t, :c), "
                            f"coalesce({highest}, 0) + 1, false) "
                            "WHERE pg_get_serial_sequence(:t, :c) IS NOT NULL"
                        ),
                        {"t": table.name, "c": column.name},
                    )


def copy_database(source_url: str, target_url: str) -> CopyResult:
    """Copy the database at ``source_url`` into the empty database at ``target_url``."""
    target_url = sqlalchemy_url(target_url)
    if source_url == target_url:
        raise Refused("the source and the target are the same database")
    with tempfile.TemporaryDirectory(prefix="ef-db-copy-") as tmp:
        if db.is_sqlite(source_url):
            path = db.sqlite_file(source_url)
            if path is None or not path.is_file():
                raise BackupError(f"no SQLite database at {path or source_url}")
            snapshot = Path(tmp) / "snapshot.sqlite"
            sqlite_ops.online_copy(path, snapshot)
            source_url = f"sqlite:///{snapshot}"
        source = db.make_engine(source_url, application_name="ef_cli")
        target = db.make_engine(target_url, application_name="ef_cli")
        try:
            revision = schema.current(source_url)
            if schema.state(revision) != "head":
                raise Refused(
                    f"the source is at {schema.describe(revision)}; run `ef migrate` first"
                )
            db.migrate(target_url)
            busy = {name: n for name, n in _counts(target).items() if n}
            if busy:
                raise Refused(
                    "the target database is not empty ("
                    + ", ".join(f"{k}={v}" for k, v in sorted(busy.items()))
                    + "); copy into a new, empty database"
                )
            _copy_rows(source, target)
            _advance_sequences(target)
            before, after = _counts(source), _counts(target)
        finally:
            source.dispose()
            target.dispose()
    if before != after:
        raise BackupError(f"row counts differ after the copy: source {before}, target {after}")
    shown = db.make_url_safe(target_url).replace("postgresql+psycopg://", "postgresql://", 1)
    return CopyResult(tables=after, database_url=shown)
