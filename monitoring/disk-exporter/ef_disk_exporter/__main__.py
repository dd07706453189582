"""``ef-disk-exporter`` (or ``python -m ef_disk_exporter``): serve /metrics until SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from ef_disk_exporter.collector import DiskCollector
from ef_disk_exporter.config import ConfigError, ExporterConfig

log = logging.getLogger("ef_disk_exporter")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, like the other EchoForge services."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry)


def build_registry(config: ExporterConfig) -> CollectorRegistry:
    """A registry of our own: the disk collector plus the process metrics of the exporter."""
    registry = CollectorRegistry()
    registry.register(DiskCollector(config.paths))
    ProcessCollector(registry=registry)
    return registry


def main(argv: list[str] | None = None) -> int:
    try:
        config = ExporterConfig.from_env()
    except ConfigError as exc:
        logging.basicConfig(level=logging.ERROR)
        log.error("configuration error: %s", exc)
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=config.log_level, handlers=[handler])
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server, thread = start_http_server(
        config.port, addr=config.host, registry=build_registry(config)
    )
    log.info("serving /metrics on %s:%d for %s", config.host, config.port, ",".join(config.paths))
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
