"""Settings of the disk exporter, from ``EF_DISK_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting has a value the exporter cannot use; the message names the variable."""


@dataclass(frozen=True)
class ExporterConfig:
    #: Paths to watch; each becomes one value of the ``path`` label (so keep the list short).
    paths: tuple[str, ...] = ("/data",)
    host: str = "127.0.0.1"
    port: int = 9105
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExporterConfig:
        env = os.environ if env is None else env
        raw_paths = env.get("EF_DISK_PATHS", "/data")
        paths = tuple(dict.fromkeys(p.strip() for p in raw_paths.split(",") if p.strip()))
        if not paths:
            raise ConfigError("EF_DISK_PATHS is empty: give at least one path, e.g. /data")
        for path in paths:
            if not os.path.isabs(path):
                raise ConfigError(f"EF_DISK_PATHS entries must be absolute paths, got {path!r}")
        raw_port = env.get("EF_DISK_EXPORTER_PORT", "9105")
        try:
            port = int(raw_port)
        except ValueError:
            raise ConfigError(f"EF_DISK_EXPORTER_PORT must be a number, got {raw_port!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(f"EF_DISK_EXPORTER_PORT must be 1-65535, got {port}")
        level = env.get("EF_LOG_LEVEL", "INFO").upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"EF_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        return cls(
            paths=paths,
            host=env.get("EF_DISK_EXPORTER_HOST", "127.0.0.1"),
            port=port,
            log_level=level,
        )
