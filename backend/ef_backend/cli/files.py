"""The commands that work on the database and files directly: migrate, backup, verify,
restore, db copy. They run where the data is (the host, or ``docker compose run ef_backend``).

``backup`` and ``db copy`` are safe while the service runs (online snapshot); ``restore``
refuses unless the service is stopped (or ``--stop`` lets it stop it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ef_backend.backup import (
    BackupError,
    Refused,
    Verification,
    make_backup,
    restore_backup,
    schema,
    verify_backup,
)
from ef_backend.backup.copy import copy_database
from ef_backend.backup.manifest import backups_in
from ef_backend.cli.output import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, CliError, emit, table
from ef_backend.core import db
from ef_backend.core.config import Settings


def _settings() -> Settings:
    from ef_backend.core.config import get_settings

    return get_settings()


def _error(exc: BackupError) -> CliError:
    return CliError(str(exc), EXIT_REFUSED if isinstance(exc, Refused) else EXIT_FAILED)


def migrate(args: argparse.Namespace) -> int:
    settings = _settings()
    db.migrate(settings)
    revision = schema.current(settings.db_url)
    shown = db.make_url_safe(settings.db_url)
    lines = [f"{shown} is at revision {revision}"]
    if revision != schema.head():  # db.migrate leaves a newer schema alone (a rollback)
        lines.append(f"this version knows up to {schema.head()}: {schema.describe(revision)}")
    emit(
        args.json,
        {"database_url": shown, "revision": revision, "head": schema.head()},
        lines,
    )
    return EXIT_OK


def backup(args: argparse.Namespace) -> int:
    settings = _settings()
    directory = Path(args.dir) if args.dir else settings.backups_path
    keep = args.keep or settings.backup_keep
    try:
        result = make_backup(settings.db_url, directory, keep=keep)
    except BackupError as exc:
        raise _error(exc) from None
    manifest = result.manifest
    emit(
        args.json,
        {
            "path": str(result.path),
            "sha256": manifest.sha256,
            "revision": manifest.revision,
            "tables": manifest.tables,
            "size_bytes": manifest.size_bytes,
            "pruned": [str(p) for p in result.pruned],
        },
        [
            f"backup written: {result.path}",
            f"sha256 {manifest.sha256}  revision {manifest.revision}  {manifest.size_bytes} bytes",
            "rows: " + ", ".join(f"{k}={v}" for k, v in manifest.tables.items()),
            *(f"removed old backup {p.name} (EF_BACKUP_KEEP={keep})" for p in result.pruned),
        ],
    )
    return EXIT_OK


def _verification_json(result: Verification) -> dict[str, object]:
    return {
        "path": str(result.path),
        "ok": result.ok,
        "dialect": result.dialect,
        "revision": result.revision,
        "tables": result.tables,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
    }


def verify(args: argparse.Namespace) -> int:
    result = verify_backup(Path(args.file))
    rows = [["ok" if c.ok else "FAIL", c.name, c.detail] for c in result.checks]
    emit(
        args.json,
        _verification_json(result),
        [
            *table(rows),
            f"{result.path}: {'verified' if result.ok else 'FAILED verification'}",
        ],
    )
    return EXIT_OK if result.ok else EXIT_FAILED


def restore(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.latest:
        found = backups_in(settings.backups_path)
        if not found:
            raise CliError(f"no backups in {settings.backups_path}", EXIT_FAILED)
        path = found[-1]
    else:
        path = Path(args.file)
    try:
        result = restore_backup(path, settings, stop=args.stop)
    except BackupError as exc:
        raise _error(exc) from None
    migrated = result.revision_before != result.revision_after
    emit(
        args.json,
        {
            "path": str(result.path),
            "database_url": db.make_url_safe(settings.db_url),
            "revision_before": result.revision_before,
            "revision_after": result.revision_after,
            "migrated": migrated,
            "kept_aside": [str(p) for p in result.kept_aside],
            "stopped": result.stopped,
            "verification": _verification_json(result.verification),
        },
        [
            *([result.stopped] if result.stopped else []),
            f"restored {result.path.name} into {db.make_url_safe(settings.db_url)}",
            (
                f"migrated from revision {result.revision_before} to {result.revision_after}"
                if migrated
                else f"schema revision {result.revision_after}"
            ),
            *(f"the replaced database is kept at {p}" for p in result.kept_aside),
            "start the service again (ef serve, or docker compose start ef_backend)",
        ],
    )
    return EXIT_OK


def db_copy(args: argparse.Namespace) -> int:
    settings = _settings()
    source = args.source or settings.db_url
    try:
        result = copy_database(source, args.to)
    except BackupError as exc:
        raise _error(exc) from None
    emit(
        args.json,
        {"tables": result.tables, "database_url": result.database_url},
        [
            "copied: " + ", ".join(f"{k}={v}" for k, v in result.tables.items()),
            "row counts match. Now set, with your password in place of ***:",
            f"  EF_DATABASE_URL={result.database_url}",
        ],
    )
    return EXIT_OK
