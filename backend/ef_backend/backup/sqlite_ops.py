"""SQLite: a consistent copy with the online backup API, and the checks ``ef verify`` runs."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ef_backend.core.db import SQLITE_BUSY_TIMEOUT_MS


def online_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` page by page while other connections keep writing.

    One ``backup()`` step reads one snapshot (WAL mode: writers are not blocked), so the copy
    holds exactly the transactions committed before it started. The copy is switched to a
    rollback journal so that it is one self-contained file.
    """
    src = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """Open a backup without changing it (no -wal/-shm files, no lock)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [str(name) for (name,) in rows]


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608
        for name in tables(conn)
    }


def revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row else None


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA integrity_check``: [] when the file is sound."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


def foreign_key_problems(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA foreign_key_check``: one line per row that points nowhere."""
    return [
        f"{table} rowid {rowid} -> {parent}"
        for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check").fetchall()
    ]
