"""What can go wrong: the operation failed, or it was refused (the operator must act first)."""

from __future__ import annotations


class BackupError(Exception):
    """A backup, verification, restore or copy failed; the message says why."""


class Refused(BackupError):
    """Not done on purpose (service still running, newer schema, target not empty)."""
