"""The ``ef`` command line: one parser, one function per subcommand, documented exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence

from ef_common.logging import configure_logging

from ef_backend.cli import remote
from ef_backend.cli.output import EXIT_CODES, EXIT_FAILED, CliError, fail
from ef_backend.core.config import get_settings

#: "module:function" under ef_backend.cli, imported only when that command runs (the service
#: commands start without loading the database and server stack).
Handler = str
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

_EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
_SERVICE = "Talks to the running service over HTTP (admin routes: EF_ADMIN_CIDRS)."
_FILES = "Works on the database directly: run it where the data is (EF_DATA_DIR/EF_DATABASE_URL)."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ef",
        description="EchoForge operations: run, migrate, back up, restore and inspect.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object (scripts)")
    connection = argparse.ArgumentParser(add_help=False)
    remote.add_connection_options(connection)

    def add(
        name: str,
        handler: Handler,
        summary: str,
        where: str,
        parents: list[argparse.ArgumentParser],
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}. {where}",
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=parents,
        )
        sub.set_defaults(handler=handler)
        return sub

    run = add("serve", "serve:serve", "run the HTTP server (settings from EF_*)", _FILES, [])
    run.add_argument("--host", help="default: EF_HOST")
    run.add_argument("--port", type=int, help="default: EF_PORT")
    run.add_argument("--workers", type=int, help="default: EF_WORKERS")
    add("migrate", "files:migrate", "apply the database migrations and exit", _FILES, [common])

    backup = add(
        "backup",
        "files:backup",
        "back up the database (safe while the service runs), keep the newest EF_BACKUP_KEEP",
        _FILES,
        [common],
    )
    backup.add_argument("--dir", help="default: EF_BACKUP_DIR, else EF_DATA_DIR/backups")
    backup.add_argument("--keep", type=int, help="default: EF_BACKUP_KEEP (7)")

    verify = add(
        "verify",
        "files:verify",
        "check a backup: checksum, integrity, foreign keys, schema revision, row counts",
        "Reads only the file and its manifest.",
        [common],
    )
    verify.add_argument("file", help="the backup file (its .json manifest must be beside it)")

    restore = add(
        "restore",
        "files:restore",
        "verify a backup and put it in place of the database (the old one is kept aside)",
        _FILES + " Refuses while the service runs, unless --stop.",
        [common],
    )
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("file", nargs="?", help="the backup file")
    target.add_argument("--latest", action="store_true", help="the newest backup in the dir")
    restore.add_argument(
        "--stop", action="store_true", help="stop the local `ef serve` first (SQLite)"
    )

    cache = commands.add_parser("cache", help="audio cache statistics or purge").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    for name, handler, summary in (
        ("stats", "remote:cache_stats", "entries, bytes, hits and evictions of the audio cache"),
        ("purge", "remote:cache_purge", "delete every cached audio file (rebuilt on demand)"),
    ):
        sub = cache.add_parser(
            name, help=summary, description=f"{summary}. {_SERVICE}", parents=[common, connection]
        )
        sub.set_defaults(handler=handler)
        if name == "purge":
            sub.add_argument("--yes", action="store_true", help="really purge")

    jobs = commands.add_parser("jobs", help="list, show, retry or cancel jobs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = jobs.add_parser(
        "list",
        help="newest jobs first",
        description=f"Newest jobs first, of every client. {_SERVICE}",
        parents=[common, connection],
    )
    listing.set_defaults(handler="remote:jobs_list")
    listing.add_argument("--status", choices=JOB_STATUSES)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    for name, handler, summary in (
        ("show", "remote:jobs_show", "one job in detail"),
        ("retry", "remote:jobs_retry", "queue a failed or cancelled job again"),
        ("cancel", "remote:jobs_cancel", "cancel a queued job"),
    ):
        sub = jobs.add_parser(
            name, help=summary, description=f"{summary}. {_SERVICE}", parents=[common, connection]
        )
        sub.set_defaults(handler=handler)
        sub.add_argument("job_id")

    health = add(
        "health",
        "remote:health",
        "the service's health checks; exit 0 when healthy",
        _SERVICE,
        [common, connection],
    )
    del health

    database = commands.add_parser("db", help="database tools").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    copy = database.add_parser(
        "copy",
        help="copy every table into a new database (SQLite to PostgreSQL)",
        description=(
            "Create the schema on --to with Alembic, copy every table, compare row counts and "
            f"print the EF_DATABASE_URL to set. {_FILES}"
        ),
        parents=[common],
    )
    copy.set_defaults(handler="files:db_copy")
    copy.add_argument("--to", required=True, help="target URL, e.g. postgresql://user:pw@host/db")
    copy.add_argument("--from", dest="source", help="source URL (default: EF_DATABASE_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    try:
        settings = get_settings()
        level = settings.log_level if args.command == "serve" else "WARNING"
        configure_logging(level, service="ef_backend")
        module, _, name = args.handler.partition(":")
        handler = getattr(importlib.import_module(f"ef_backend.cli.{module}"), name)
        code: int = handler(args)
    except CliError as error:
        return fail(as_json, error)
    except Exception as exc:  # the operator gets one line, the traceback goes to the log
        logging.getLogger(__name__).debug("ef failed", exc_info=True)
        return fail(as_json, CliError(f"{type(exc).__name__}: {exc}", EXIT_FAILED))
    return code
