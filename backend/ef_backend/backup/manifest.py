"""The files beside a backup: ``<name>.json`` (manifest) and ``<name>.sha256`` (``sha256sum -c``).

Names sort by time (``ef-20261130T124500Z.sqlite``), so keeping the last N is a sort.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ef_backend.backup.errors import BackupError

#: File name suffix of a backup per database kind.
SUFFIXES = {"sqlite": ".sqlite", "postgresql": ".dump"}
_PREFIX = "ef-"


@dataclass
class Manifest:
    """What was backed up: enough to check the file and to know its schema without opening it."""

    file: str
    sha256: str
    dialect: str
    revision: str | None
    tables: dict[str, int]
    created_at: str
    size_bytes: int
    ef_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".json")


def checksum_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".sha256")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup_name(dialect: str, now: datetime | None = None, *, prefix: str = _PREFIX) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}{stamp}{SUFFIXES[dialect]}"


def write_manifest(backup: Path, manifest: Manifest) -> None:
    manifest_path(backup).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    checksum_path(backup).write_text(f"{manifest.sha256}  {backup.name}\n")


def read_manifest(backup: Path) -> Manifest:
    path = manifest_path(backup)
    try:
        data = json.loads(path.read_text())
        return Manifest(**data)
    except FileNotFoundError:
        raise BackupError(
            f"{path.name} is missing: every backup has a manifest beside it "
            "(written by `ef backup`)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{path.name} is not a valid manifest: {exc}") from None


def backups_in(directory: Path) -> list[Path]:
    """The backups ``ef backup`` wrote in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.name.startswith(_PREFIX) and p.suffix in SUFFIXES.values() and p.is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (and their manifests); the deleted ones."""
    old = backups_in(directory)[:-keep] if keep > 0 else []
    for backup in old:
        for path in (backup, manifest_path(backup), checksum_path(backup)):
            path.unlink(missing_ok=True)
    return old
