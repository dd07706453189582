"""``ef verify FILE``: is this backup whole, sound, and restorable by this version?

Checks, in order: the manifest is there, the sha256 matches it, the database opens,
``PRAGMA integrity_check`` and ``foreign_key_check`` pass (SQLite; for a ``pg_dump`` archive,
every row is read back through ``pg_restore`` instead, and PostgreSQL enforces the foreign
keys when it restores), the Alembic revision is one this version knows, and the row counts
per table match the manifest. Every check runs even after one fails, so the report is complete.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ef_backend.backup import postgres, schema, sqlite_ops
from ef_backend.backup.errors import BackupError
from ef_backend.backup.manifest import Manifest, read_manifest, sha256_of


@dataclass
class Check:
    """One verification step and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    """The verdict on one backup file."""

    path: Path
    dialect: str | None = None
    revision: str | None = None
    tables: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]


def _checksum(result: Verification, manifest: Manifest) -> None:
    actual = sha256_of(result.path)
    size = result.path.stat().st_size
    if actual == manifest.sha256:
        result.add("checksum", True, f"sha256 {actual[:16]}... matches the manifest")
        return
    result.add(
        "checksum",
        False,
        f"sha256 {actual[:16]}... differs from the manifest's {manifest.sha256[:16]}... "
        f"({size} bytes, manifest says {manifest.size_bytes}): the file was truncated or "
        "changed after the backup was written",
    )


def _sqlite(result: Verification) -> None:
    try:
        with sqlite_ops.read_only(result.path) as conn:
            problems = sqlite_ops.integrity_problems(conn)
            result.add(
                "integrity_check",
                not problems,
                "ok" if not problems else "; ".join(problems[:5]),
            )
            dangling = sqlite_ops.foreign_key_problems(conn)
            result.add(
                "foreign_key_check",
                not dangling,
                "ok" if not dangling else "; ".join(dangling[:5]),
            )
            result.revision = sqlite_ops.revision(conn)
            result.tables = sqlite_ops.row_counts(conn)
    except sqlite3.DatabaseError as exc:
        result.add("open", False, f"not a readable SQLite database: {exc}")


def _postgres(result: Verification) -> None:
    try:
        found = postgres.contents(result.path)
    except BackupError as exc:
        result.add("archive", False, f"not a readable pg_dump archive: {exc}")
        return
    result.add("archive", True, "every row read back with pg_restore")
    result.revision, result.tables = found.revision, found.tables


def verify_backup(path: Path) -> Verification:
    """Run every check on ``path``; ``.ok`` is the verdict, ``.checks`` the reasons."""
    result = Verification(path=path)
    if not path.is_file():
        result.add("file", False, f"{path} does not exist")
        return result
    try:
        manifest = read_manifest(path)
    except BackupError as exc:
        result.add("manifest", False, str(exc))
        return result
    result.dialect = manifest.dialect
    _checksum(result, manifest)
    if manifest.dialect == "postgresql":
        _postgres(result)
    else:
        _sqlite(result)
    if not result.tables and not result.revision:
        return result
    state = schema.state(result.revision)
    result.add("schema", state in ("head", "older"), schema.describe(result.revision))
    if result.revision != manifest.revision:
        result.add(
            "manifest_revision",
            False,
            f"file has revision {result.revision}, manifest says {manifest.revision}",
        )
    differ = {
        name: (result.tables.get(name), manifest.tables.get(name))
        for name in set(result.tables) | set(manifest.tables)
        if result.tables.get(name) != manifest.tables.get(name)
    }
    counts = ", ".join(f"{k}={v}" for k, v in sorted(result.tables.items()))
    result.add(
        "row_counts",
        not differ,
        counts
        if not differ
        else "differ from the manifest: "
        + ", ".join(f"{k} has {a}, manifest {b}" for k, (a, b) in sorted(differ.items())),
    )
    return result
