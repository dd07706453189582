"""The storage module: database engine, sessions, SQLite pragmas and migrations.

Everything that knows which database it talks to lives here, so the rest of the code stays
portable (``EF_DATABASE_URL`` may name PostgreSQL). SQLite runs in WAL mode with a busy timeout
so that readers never block the writer and several processes can share one file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from ef_backend.core.config import Settings
from ef_backend.observability import metrics

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: How long SQLite waits for a lock held by another connection before giving up.
SQLITE_BUSY_TIMEOUT_MS = 15_000
#: PostgreSQL ``application_name`` of the service's sessions (the ``ef`` command uses its own).
SERVICE_APP_NAME = "ef_backend"
_OPERATIONS = frozenset({"select", "insert", "update", "delete"})

SessionFactory = Callable[[], Session]

__all__ = [
    "MIGRATIONS_DIR",
    "SERVICE_APP_NAME",
    "SessionFactory",
    "alembic_config",
    "db_file_paths",
    "is_sqlite",
    "make_engine",
    "make_url_safe",
    "migrate",
    "session_factory",
    "sqlite_file",
]


def is_sqlite(url_or_engine: str | Engine) -> bool:
    """True when the URL (or engine) is SQLite."""
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory and URI forms)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: durable across a process crash, which is what the queue needs.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _operation(statement: str) -> str:
    head = statement.lstrip().split(None, 1)
    word = head[0].lower() if head else ""
    return word if word in _OPERATIONS else "other"


def _before_execute(
    _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    context._ef_started = time.perf_counter()


def _after_execute(
    _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    started = getattr(context, "_ef_started", None)
    if started is not None:
        metrics.db_query_duration_seconds.labels(_operation(statement)).observe(
            time.perf_counter() - started
        )


def _private_dir(path: Path) -> None:
    """``path`` exists and only its owner may enter it (0700): job texts live below it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.chmod(0o700)
    except PermissionError:  # not ours (a mount point): say so, but keep running
        log.warning("cannot make %s private (0700): not its owner", path)


def _private_file(path: Path) -> None:
    """The SQLite file exists with mode 0600 before SQLite opens it (its -wal and -shm files
    take the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        path.chmod(0o600)
    except PermissionError:
        log.warning("cannot make %s private (0600): not its owner", path)


def make_engine(settings: Settings | str, *, application_name: str = SERVICE_APP_NAME) -> Engine:
    """An engine for ``settings.db_url`` (or a URL); queries feed ef_db_query_duration_seconds.

    On PostgreSQL the sessions carry ``application_name``, so that ``ef restore`` can see
    whether a backend is still connected (``pg_stat_activity``).

    The data directory (0700) and a SQLite file (0600) are created private.
    """
    url = settings if isinstance(settings, str) else settings.db_url
    if not isinstance(settings, str):
        _private_dir(settings.data_dir)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if make_url(url).get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"application_name": application_name}
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_file(path)
        # Sessions move between the event loop and worker threads (asyncio.to_thread).
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        }
    engine = create_engine(url, **kwargs)
    if is_sqlite(engine):
        event.listen(engine, "connect", _set_sqlite_pragmas)
    event.listen(engine, "before_cursor_execute", _before_execute)
    event.listen(engine, "after_cursor_execute", _after_execute)
    return engine


def session_factory(engine: Engine) -> SessionFactory:
    """A callable that opens a new session; objects stay readable after commit."""

    def _open() -> Session:
        return Session(engine, expire_on_commit=False)

    return _open


def alembic_config(url: str) -> Config:
    """An Alembic config without alembic.ini: script location and URL set in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(settings: Settings | str, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (Alembic ``upgrade``); safe to run every start.

    A schema newer than this code (a revision it does not know) is left as it is: that is a
    rollback, and migrations are forward-compatible by one release (docs/release.md), so the
    previous release runs on the current schema.
    """
    url = settings if isinstance(settings, str) else settings.db_url
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            newer = _unknown_revisions(config, connection)
            if newer:
                log.warning(
                    "database schema is newer than this code; running on it as it is",
                    extra={"db_revisions": newer, "code_head": revision},
                )
                return
            command.upgrade(config, revision)
    finally:
        engine.dispose()
    log.info("database migrated", extra={"revision": revision})


def _unknown_revisions(config: Config, connection: Any) -> list[str]:
    """The database's revisions that this code's migration scripts do not contain."""
    script = ScriptDirectory.from_config(config)
    unknown = []
    for current in MigrationContext.configure(connection).get_current_heads():
        try:
            script.get_revision(current)
        except CommandError:
            unknown.append(current)
    return unknown


def make_url_safe(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and the operator's screen)."""
    return make_url(url).render_as_string(hide_password=True)


def db_file_paths(settings: Settings) -> list[Path]:
    """The files of a SQLite database (db, -wal, -shm) for the size collector; [] for others."""
    if not is_sqlite(settings.db_url):
        return []
    path = sqlite_file(settings.db_url)
    if path is None:
        return []
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
