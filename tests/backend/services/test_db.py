"""Storage: the Alembic migration yields exactly the models' schema (SQLite and a real PostgreSQL);
SQLite pragmas; metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ef_backend.models  # noqa: F401  (tables on the metadata)
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from ef_backend.core import db
from ef_backend.core.config import Settings
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, text
from sqlmodel import SQLModel

from tests.utils.postgres import PostgresServer
from tests.utils.procs import REPO, VENV_BIN


def schema(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Tables with their columns and every index's SQL, normalised for comparison."""
    with engine.connect() as conn:
        result: dict[str, list[tuple[object, ...]]] = {}
        for table in ("job", "cache_entry"):
            result[table] = [
                tuple(row) for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")
            ]
        indexes = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "ORDER BY name"
        ).all()
        result["indexes"] = [(name, " ".join(sql.split())) for name, sql in indexes]
    return result


def test_upgrade_head_matches_the_models(settings: Settings, migrated: Engine) -> None:
    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    reference = create_engine(f"sqlite:///{settings.data_dir / 'reference.sqlite'}")
    SQLModel.metadata.create_all(reference)
    try:
        assert schema(migrated) == schema(reference)
    finally:
        reference.dispose()
    names = [name for name, _ in schema(migrated)["indexes"]]
    assert "ux_job_active_client_cache_key" in names
    partial = dict(schema(migrated)["indexes"])["ux_job_active_client_cache_key"]
    assert "UNIQUE" in str(partial) and "WHERE status IN ('queued', 'running')" in str(partial)


def test_migrate_is_idempotent_and_records_the_revision(settings: Settings) -> None:
    db.migrate(settings)
    db.migrate(settings)
    engine = db.make_engine(settings)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"
    finally:
        engine.dispose()


def test_migrate_leaves_a_newer_schema_alone(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A rollback: the database was migrated by a newer release. Starting must not fail (Alembic
    alone would: it cannot find the revision) nor touch the schema."""
    db.migrate(settings)
    engine = db.make_engine(settings)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        db.migrate(settings)
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert revision == "9999_from_the_future"
    warning = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warning] == [
        "database schema is newer than this code; running on it as it is"
    ]
    assert warning[0].db_revisions == ["9999_from_the_future"]


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(migrated: Engine) -> None:
    with migrated.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_db_file_paths_name_the_database_and_its_wal(settings: Settings, migrated: Engine) -> None:
    paths = db.db_file_paths(settings)
    base = (settings.data_dir / "db.sqlite").resolve()
    assert paths == [base, Path(f"{base}-wal"), Path(f"{base}-shm")]
    assert paths[0].exists()
    assert db.db_file_paths(Settings(_env_file=None, database_url="postgresql://h/db")) == []  # type: ignore[call-arg]


def test_queries_are_timed_by_operation(migrated: Engine) -> None:
    def count(operation: str) -> float:
        value = REGISTRY.get_sample_value(
            "ef_db_query_duration_seconds_count", {"operation": operation}
        )
        return value or 0.0

    before = {op: count(op) for op in ("select", "insert", "update", "delete", "other")}
    with migrated.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cache_entry (key, format, size_bytes, duration_s, created_at,"
                " last_used_at, hits) VALUES ('k', 'wav', 1, 0, '2024-01-01', '2024-01-01', 0)"
            )
        )
        conn.execute(text("UPDATE cache_entry SET hits = 1"))
        conn.execute(text("SELECT * FROM cache_entry")).all()
        conn.execute(text("DELETE FROM cache_entry"))
        conn.exec_driver_sql("PRAGMA user_version")
    for operation in before:
        assert count(operation) >= before[operation] + 1, operation


def test_the_alembic_cli_works_with_the_shipped_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    config = REPO / "backend" / "ef_backend" / "migrations" / "alembic.ini"
    alembic = str(VENV_BIN / "alembic")
    upgrade = subprocess.run(
        [alembic, "-c", str(config), "-x", f"url={url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    current = subprocess.run(
        [alembic, "-c", str(config), "-x", f"url={url}", "current"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert current.returncode == 0, current.stderr
    assert "0002 (head)" in current.stdout


def test_migrations_downgrade_cleanly(settings: Settings, migrated: Engine) -> None:
    config = db.alembic_config(settings.db_url)
    command.downgrade(config, "base")
    with migrated.connect() as conn:
        tables = {
            row[0]
            for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert tables == {"alembic_version"}
    db.migrate(settings)
    with migrated.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM job").scalar() == 0


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_in_memory_sqlite_has_no_files(url: str) -> None:
    assert db.db_file_paths(Settings(_env_file=None, database_url=url)) == []  # type: ignore[call-arg]


@pytest.mark.server
def test_postgresql_schema_matches_the_models_and_migrates_both_ways(
    postgres: PostgresServer,
) -> None:
    """The same migrations on a real PostgreSQL: head equals the models (partial unique index
    included), down to base leaves only alembic_version, and up again works."""
    url = Settings(_env_file=None, database_url=postgres.new_database()).db_url  # type: ignore[call-arg]
    assert url.startswith("postgresql+psycopg://")
    db.migrate(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            index = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ux_job_active_client_cache_key'"
            ).scalar_one()
            app = conn.exec_driver_sql(
                "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).scalar_one()
        assert index.startswith("CREATE UNIQUE INDEX ux_job_active_client_cache_key ON public.job")
        assert "WHERE ((status)::text = ANY" in index or "WHERE (status = ANY" in index, index
        assert app == db.SERVICE_APP_NAME
        command.downgrade(db.alembic_config(url), "base")
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).scalars()
            assert set(tables) == {"alembic_version"}
        db.migrate(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM job").scalar() == 0
    finally:
        engine.dispose()


def test_data_directory_and_database_are_private(tmp_path: Path) -> None:
    """Job texts live in the database: 0700 directory, 0600 files, an old 0755/0644 install
    tightened on start."""
    fresh = Settings(data_dir=tmp_path / "fresh")
    old = Settings(data_dir=tmp_path / "old")
    old.data_dir.mkdir(mode=0o755)
    (old.data_dir / "db.sqlite").touch(mode=0o644)
    (old.data_dir / "db.sqlite").chmod(0o644)
    for settings in (fresh, old):
        db.migrate(settings)
        engine = db.make_engine(settings)
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM job")
        assert settings.data_dir.stat().st_mode & 0o777 == 0o700
        for path in db.db_file_paths(settings):
            if path.exists():
                assert path.stat().st_mode & 0o777 == 0o600, path
        engine.dispose()
