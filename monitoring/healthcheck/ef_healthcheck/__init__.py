"""EchoForge cron health check: emails ops when readiness, disk or database size change state."""

from ef_healthcheck.check import CheckResult, run, run_checks
from ef_healthcheck.config import DEFAULT_DB_MAX_BYTES, DEFAULT_DISK_MAX_RATIO, HealthcheckSettings

__all__ = [
    "DEFAULT_DB_MAX_BYTES",
    "DEFAULT_DISK_MAX_RATIO",
    "CheckResult",
    "HealthcheckSettings",
    "run",
    "run_checks",
]
