"""Is a backend using this database right now? (``ef restore`` must not pull it from under one.)

SQLite: ``ef serve`` holds a shared ``flock`` on ``EF_DATA_DIR/ef-backend.lock`` for its whole
life and writes ``host:pid`` into it; the lock is seen from any process (or container) that
shares the data directory. PostgreSQL: the service's sessions are named ``ef_backend`` in
``pg_stat_activity``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import text

from ef_backend.core import db

log = logging.getLogger(__name__)

LOCK_NAME = "ef-backend.lock"


class ServiceLock:
    """Held by ``ef serve``; released when the process ends, however it ends."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._handle: IO[str] | None = None

    def hold(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning(
                "waiting for `ef restore` to finish with the database",
                extra={"lock": str(self.path)},
            )
            fcntl.flock(handle, fcntl.LOCK_SH)
        # Several servers may share a directory; the last one to start names itself.
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()}:{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[bool]:
    """Try to take the lock exclusively: True while no ``ef serve`` holds it."""
    path = data_dir / LOCK_NAME
    if not path.exists():
        yield True
        return
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sqlite_in_use(data_dir: Path) -> bool:
    with exclusive(data_dir) as free:
        return not free


def holder(data_dir: Path) -> str:
    """``host:pid`` of the last ``ef serve`` that took the lock, or ''."""
    try:
        return (data_dir / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


def stop_sqlite_service(data_dir: Path, *, timeout_s: float = 60.0) -> str:
    """SIGTERM the ``ef serve`` on this host that holds the lock and wait for it to let go.

    Returns what was done; raises RuntimeError when it cannot (another host or container).
    """
    owner = holder(data_dir)
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        raise RuntimeError(
            f"the service holding {data_dir / LOCK_NAME} runs elsewhere ({owner or 'unknown'}); "
            "stop it there (docker compose stop ef_backend) and run the restore again"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid_text), signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not sqlite_in_use(data_dir):
            return f"stopped ef serve (pid {pid_text})"
        time.sleep(0.2)
    raise RuntimeError(f"ef serve (pid {pid_text}) still holds the database after {timeout_s:.0f}s")


def postgres_sessions(url: str) -> int:
    """Sessions of the service (``application_name = ef_backend``) on this database."""
    engine = db.make_engine(url, application_name="ef_cli")
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": db.SERVICE_APP_NAME},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)
