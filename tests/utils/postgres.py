"""A real PostgreSQL server (Debian's ``postgresql``) for the tests, on loopback.

``initdb`` refuses to run as root, so as root the cluster belongs to an unprivileged user
(``postgres`` from the Debian package, else ``nobody``) and every server command runs as that
user through ``setpriv``; as any other user it runs as that user. The cluster lives in a fresh
directory under the system temp dir, listens on 127.0.0.1 on a free port, and needs a password
over TCP (so the password handling of ``ef`` and ``pg_dump`` is exercised too).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.utils.procs import free_port

SUPERUSER = "ef_test"
PASSWORD = "loopback-only-test-password"


def pg_bin(name: str) -> str:
    """A server program (initdb, pg_ctl) from the newest Debian install, else from PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:  # fail, never skip: `make system-deps` installs postgresql
        raise RuntimeError(f"{name} not found: apt-get install postgresql")
    return on_path


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@dataclass
class PostgresServer:
    """One cluster; ``new_database()`` gives each test an empty database of its own."""

    root: Path
    port: int = field(default_factory=free_port)
    user: str | None = field(default_factory=_unprivileged_user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def _run(self, args: Sequence[str]) -> None:
        command = list(args)
        if self.user is not None:
            command = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups",
                       *command]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\n{self.log()}"
            )

    def start(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                pg_bin("initdb"),
                f"--pgdata={self.data}",
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [pg_bin("pg_ctl"), f"--pgdata={self.data}", f"--log={self.log_path}", "-o", options,
             "--wait", "--timeout=120", "start"]
        )  # fmt: skip
        return self

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(
                [pg_bin("pg_ctl"), f"--pgdata={self.data}", "--mode=immediate", "--wait", "stop"]
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except (FileNotFoundError, PermissionError):
            return ""

    def url(self, database: str = "postgres", *, driver: str = "postgresql") -> str:
        return f"{driver}://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "ef") -> str:
        """Create an empty database; its ``postgresql://`` URL (what an operator writes)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_postgres() -> PostgresServer:
    """A started cluster in a new directory under the system temp dir (reachable by the
    unprivileged user, unlike pytest's per-user temp root)."""
    root = Path(tempfile.mkdtemp(prefix="ef-postgres-"))
    return PostgresServer(root=root).start()
