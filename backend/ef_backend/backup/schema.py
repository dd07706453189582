"""Which Alembic revisions this version of EchoForge knows: head, older, or unknown (newer)."""

from __future__ import annotations

from typing import Literal

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text

from ef_backend.core import db
from ef_backend.core.db import MIGRATIONS_DIR

RevisionState = Literal["head", "older", "unknown", "missing"]


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR))


def head() -> str:
    revision = _scripts().get_current_head()
    assert revision is not None  # the package ships its migrations
    return revision


def state(revision: str | None) -> RevisionState:
    """``head`` (current), ``older`` (``ef migrate`` brings it forward), ``unknown`` (from a
    newer EchoForge, or not ours), ``missing`` (no alembic_version: not an EchoForge database)."""
    if not revision:
        return "missing"
    if revision == head():
        return "head"
    try:
        found = _scripts().get_revision(revision)
    except CommandError:
        return "unknown"
    return "older" if found is not None else "unknown"


def describe(revision: str | None) -> str:
    """One sentence an operator can act on."""
    match state(revision):
        case "head":
            return f"schema revision {revision} (current)"
        case "older":
            return f"schema revision {revision} (older; restore migrates it to {head()})"
        case "unknown":
            return (
                f"schema revision {revision} is unknown to this version (newest known: "
                f"{head()}): the backup comes from a newer EchoForge; upgrade before restoring"
            )
        case _:
            return "no alembic_version table: not an EchoForge database"


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (None before the first migration)."""
    engine = db.make_engine(url, application_name="ef_cli")
    try:
        with engine.connect() as conn:
            try:
                value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:
                return None
            return None if value is None else str(value)
    finally:
        engine.dispose()
