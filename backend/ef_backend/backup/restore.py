"""``ef restore FILE``: verify, make sure no backend is running, keep the current database
aside, put the backup in place, migrate it forward.

A backup from a newer schema is refused (this version cannot know what it holds); one from an
older schema is migrated with Alembic, exactly as ``ef migrate`` would.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ef_backend.backup import postgres, running, schema
from ef_backend.backup.errors import BackupError, Refused
from ef_backend.backup.make import dialect_of, make_backup
from ef_backend.backup.verify import Verification, verify_backup
from ef_backend.core import db
from ef_backend.core.config import Settings


@dataclass
class RestoreResult:
    """What the restore did."""

    path: Path
    revision_before: str | None
    revision_after: str
    kept_aside: list[Path]
    stopped: str | None
    verification: Verification


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _restore_sqlite(
    backup: Path, settings: Settings, *, stop: bool
) -> tuple[list[Path], str | None]:
    target = db.sqlite_file(settings.db_url)
    if target is None:
        raise BackupError(f"EF_DATABASE_URL {settings.db_url} names no SQLite file")
    stopped = None
    if running.sqlite_in_use(settings.data_dir):
        if not stop:
            raise Refused(
                f"the service is running on {target} ({running.holder(settings.data_dir)}): "
                "stop it first, or pass --stop to have ef restore stop it"
            )
        try:
            stopped = running.stop_sqlite_service(settings.data_dir)
        except RuntimeError as exc:
            raise Refused(str(exc)) from None
    with running.exclusive(settings.data_dir) as free:
        if not free:
            raise Refused("the service started again during the restore; stop it and retry")
        kept: list[Path] = []
        aside = f".replaced-{_stamp()}"
        for path in _sqlite_files(target):
            if path.exists():
                moved = path.with_name(target.name + aside + path.name.removeprefix(target.name))
                path.replace(moved)
                kept.append(moved)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(backup, partial)
        partial.replace(target)
        db.migrate(settings.db_url)
    return kept, stopped


def _restore_postgres(backup: Path, settings: Settings) -> list[Path]:
    sessions = running.postgres_sessions(settings.db_url)
    if sessions:
        raise Refused(
            f"{sessions} backend session(s) are connected to this database: stop every backend "
            "replica first (docker compose stop ef_backend)"
        )
    aside = make_backup(settings.db_url, settings.backups_path, keep=0, prefix="replaced-")
    postgres.restore(settings.db_url, backup)
    db.migrate(settings.db_url)
    return [aside.path]


def restore_backup(backup: Path, settings: Settings, *, stop: bool = False) -> RestoreResult:
    """Replace the database of ``settings`` with ``backup``; raises BackupError/Refused."""
    verification = verify_backup(backup)
    if not verification.ok:
        if schema.state(verification.revision) == "unknown":
            raise Refused(f"{backup.name}: {schema.describe(verification.revision)}")
        raise BackupError(
            f"{backup.name} failed verification, nothing was changed: "
            + "; ".join(verification.problems())
        )
    if verification.dialect != dialect_of(settings.db_url):
        raise Refused(
            f"{backup.name} is a {verification.dialect} backup but EF_DATABASE_URL is "
            f"{dialect_of(settings.db_url)}: use `ef db copy` to move between databases"
        )
    stopped = None
    if verification.dialect == "sqlite":
        kept, stopped = _restore_sqlite(backup, settings, stop=stop)
    else:
        if stop:
            raise Refused("--stop works for SQLite only: stop every backend replica yourself")
        kept = _restore_postgres(backup, settings)
    return RestoreResult(
        path=backup,
        revision_before=verification.revision,
        revision_after=schema.current(settings.db_url) or "",
        kept_aside=kept,
        stopped=stopped,
        verification=verification,
    )
