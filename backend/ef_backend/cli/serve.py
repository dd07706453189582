"""``ef serve``: migrate, then run uvicorn with the app factory.

``serve`` migrates once in the parent, prepares Prometheus multiprocess mode when
``EF_WORKERS > 1``, holds the data directory's service lock (so that ``ef restore`` knows the
service runs), then runs uvicorn. uvicorn's own proxy-header handling is off: `core.security`
decides which X-Forwarded-For hops to believe (EF_TRUSTED_PROXIES).
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn
from ef_common.logging import uvicorn_log_config

from ef_backend.backup.running import ServiceLock
from ef_backend.cli.malloc import limit_arenas
from ef_backend.core import db
from ef_backend.core.config import Settings, get_settings
from ef_backend.observability import multiprocess
from ef_backend.observability.install import SERVICE_NAME

log = logging.getLogger(__name__)

#: Seconds uvicorn waits for open requests on SIGTERM before the lifespan stops the workers.
GRACEFUL_SHUTDOWN_S = 20
#: Seconds an idle keep-alive connection stays open (uvicorn's default, stated): ef_proxy's
#: upstream keepalive_timeout (proxy/default.conf.template) must stay below it.
KEEP_ALIVE_S = 5


def run(settings: Settings) -> None:
    """Migrate, then run uvicorn with ``create_app`` as a factory in each worker."""
    db.migrate(settings)
    multiprocess.prepare(settings)
    lock = ServiceLock(settings.data_dir)
    if db.is_sqlite(settings.db_url):
        lock.hold()  # released when this process ends
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
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    lock.release()


def serve(args: argparse.Namespace) -> int:
    limit_arenas()  # before uvicorn starts threads and workers
    for key in ("host", "port", "workers"):
        value = getattr(args, key, None)
        if value is not None:
            # Through the environment, so that uvicorn's workers read the same settings.
            os.environ[f"EF_{key.upper()}"] = str(value)
    get_settings.cache_clear()
    run(get_settings())
    return 0
