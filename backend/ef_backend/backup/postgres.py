"""PostgreSQL: ``pg_dump``/``pg_restore`` in custom format, and what a dump holds.

The password never goes on a command line (``ps`` shows those): it is passed in ``PGPASSWORD``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from ef_backend.backup.errors import BackupError

_COPY = re.compile(r'^COPY (?:"?(?P<schema>[\w]+)"?\.)?"?(?P<table>[\w]+)"? \(.*\) FROM stdin;$')


def tool(name: str) -> str:
    """``pg_dump``/``pg_restore`` from PATH, else the newest Debian install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    raise BackupError(f"{name} not found: install the PostgreSQL client (Debian postgresql-client)")


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL (no driver, no password) and the environment that carries the password."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def run(args: Sequence[str], env: dict[str, str], *, what: str) -> str:
    result = subprocess.run(list(args), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


def dump(url: str, target: Path) -> None:
    conninfo, env = libpq(url)
    run(
        [
            tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-acl",
            f"--file={target}",
            conninfo,
        ],
        env,
        what="pg_dump",
    )


def restore(url: str, source: Path) -> None:
    """Replace the database's objects with the dump's, in one transaction (all or nothing)."""
    conninfo, env = libpq(url)
    run(
        [
            tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={conninfo}",
            str(source),
        ],
        env,
        what="pg_restore",
    )


@dataclass
class DumpContents:
    """What a custom-format dump holds, read through ``pg_restore`` without a server."""

    tables: dict[str, int]
    revision: str | None


def contents(path: Path) -> DumpContents:
    """Read every row of the dump (a damaged archive fails here) and count them per table."""
    env = dict(os.environ)
    run([tool("pg_restore"), "--list", str(path)], env, what="pg_restore --list")
    script = run([tool("pg_restore"), "--data-only", "--file=-", str(path)], env, what="pg_restore")
    counts: dict[str, int] = {}
    revision: str | None = None
    current: str | None = None
    for line in script.splitlines():
        if current is None:
            match = _COPY.match(line)
            if match:
                current = match["table"]
                counts[current] = 0
            continue
        if line == "\\.":
            current = None
            continue
        counts[current] += 1
        if current == "alembic_version":
            revision = line.split("\t", 1)[0]
    return DumpContents(tables=dict(sorted(counts.items())), revision=revision)
