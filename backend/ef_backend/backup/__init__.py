"""Backups of the database: online copy, verification, restore, and the move to PostgreSQL.

SQLite is copied with its online backup API (consistent while the service writes); PostgreSQL
with ``pg_dump``/``pg_restore``. Every backup has a manifest beside it (sha256, Alembic revision,
row counts) that `verify` checks before anything is restored.
"""

from ef_backend.backup.errors import BackupError, Refused
from ef_backend.backup.make import BackupResult, make_backup
from ef_backend.backup.restore import RestoreResult, restore_backup
from ef_backend.backup.verify import Check, Verification, verify_backup

__all__ = [
    "BackupError",
    "BackupResult",
    "Check",
    "Refused",
    "RestoreResult",
    "Verification",
    "make_backup",
    "restore_backup",
    "verify_backup",
]
