"""``ef-backend``: ``serve`` (uvicorn) and ``migrate`` (Alembic upgrade to head).

``serve`` migrates once in the parent, prepares Prometheus multiprocess mode when
``EF_WORKERS > 1``, then runs uvicorn with the app factory. uvicorn's own proxy-header handling is
off: `core.security` decides which X-Forwarded-For hops to believe (EF_TRUSTED_PROXIES).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import uvicorn
from ef_common.logging import configure_logging, uvicorn_log_config

from ef_backend.core.config import Settings, get_settings
from ef_backend.core.db import migrate
from ef_backend.observability import multiprocess
from ef_backend.observability.setup import SERVICE_NAME

log = logging.getLogger(__name__)

#: Seconds uvicorn waits for open requests on SIGTERM before the lifespan stops the workers.
GRACEFUL_SHUTDOWN_S = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ef-backend", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (settings from EF_*)")
    serve.add_argument("--host", help="default: EF_HOST")
    serve.add_argument("--port", type=int, help="default: EF_PORT")
    serve.add_argument("--workers", type=int, help="default: EF_WORKERS")
    commands.add_parser("migrate", help="apply the database migrations and exit")
    return parser


def serve(settings: Settings) -> None:
    """Migrate, then run uvicorn with ``create_app`` as a factory in each worker."""
    migrate(settings)
    multiprocess.prepare(settings)
    log.info(
        "serving",
        extra={"host": settings.host, "port": settings.port, "workers": settings.workers},
    )
    uvicorn.run(
        "ef_backend.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=False,
        server_header=False,
        log_config=uvicorn_log_config(settings.log_level, service=SERVICE_NAME),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for key in ("host", "port", "workers"):
        value = getattr(args, key, None)
        if value is not None:
            # Through the environment, so that uvicorn's workers read the same settings.
            os.environ[f"EF_{key.upper()}"] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, service=SERVICE_NAME)
    if args.command == "migrate":
        migrate(settings)
        return 0
    serve(settings)
    return 0
