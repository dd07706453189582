"""``ef backup``: copy the database, write its manifest, keep the newest ``EF_BACKUP_KEEP``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from ef_backend import __version__
from ef_backend.backup import postgres, sqlite_ops
from ef_backend.backup.errors import BackupError
from ef_backend.backup.manifest import Manifest, backup_name, prune, sha256_of, write_manifest
from ef_backend.core import db


@dataclass
class BackupResult:
    """The backup written, and the old ones removed to keep the last N."""

    path: Path
    manifest: Manifest
    pruned: list[Path] = field(default_factory=list)


def dialect_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {name} database (SQLite and PostgreSQL only)")
    return name


def snapshot(url: str, target: Path) -> Manifest:
    """Write a consistent copy of the database at ``url`` to ``target`` and describe it."""
    dialect = dialect_of(url)
    partial = target.with_name(target.name + ".partial")
    try:
        if dialect == "sqlite":
            source = db.sqlite_file(url)
            if source is None or not source.is_file():
                raise BackupError(f"no SQLite database at {source or url}")
            sqlite_ops.online_copy(source, partial)
            with sqlite_ops.read_only(partial) as conn:
                tables, revision = sqlite_ops.row_counts(conn), sqlite_ops.revision(conn)
        else:
            postgres.dump(url, partial)
            found = postgres.contents(partial)
            tables, revision = found.tables, found.revision
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return Manifest(
        file=target.name,
        sha256=sha256_of(target),
        dialect=dialect,
        revision=revision,
        tables=tables,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        size_bytes=target.stat().st_size,
        ef_version=__version__,
    )


def make_backup(url: str, directory: Path, *, keep: int, prefix: str = "ef-") -> BackupResult:
    """Back up the database at ``url`` into ``directory`` and prune to the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / backup_name(dialect_of(url), prefix=prefix)
    manifest = snapshot(url, target)
    write_manifest(target, manifest)
    pruned = prune(directory, keep) if prefix == "ef-" else []
    return BackupResult(path=target, manifest=manifest, pruned=pruned)
