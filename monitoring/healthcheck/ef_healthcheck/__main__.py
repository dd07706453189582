"""``ef-healthcheck`` (or ``python -m ef_healthcheck``): one round of checks, for cron.

Crontab, every 5 minutes (``MAILTO=""``: this command sends its own mail)::

    MAILTO=""
    */5 * * * * /opt/ef-healthcheck/bin/ef-healthcheck --data-dir /srv/echoforge/data
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from ef_healthcheck.check import EXIT_CONFIG, run
from ef_healthcheck.config import HealthcheckSettings

log = logging.getLogger("ef_healthcheck")


_FLAGS = {
    "--url": "EF_HEALTHCHECK_URL",
    "--data-dir": "EF_DATA_DIR",
    "--disk-max-ratio": "EF_HEALTHCHECK_DISK_MAX_RATIO",
    "--db-max-bytes": "EF_HEALTHCHECK_DB_MAX_BYTES",
    "--state-file": "EF_HEALTHCHECK_STATE_FILE",
    "--timeout": "EF_HEALTHCHECK_TIMEOUT_S",
    "--smtp-host": "EF_SMTP_HOST",
    "--smtp-port": "EF_SMTP_PORT",
    "--smtp-username": "EF_SMTP_USERNAME",
    "--smtp-password-file": "EF_SMTP_PASSWORD_FILE",
    "--smtp-starttls": "EF_SMTP_STARTTLS",
    "--smtp-ssl": "EF_SMTP_SSL",
    "--smtp-ca-file": "EF_SMTP_CA_FILE",
    "--from": "EF_ALERT_EMAIL_FROM",
    "--to": "EF_ALERT_EMAIL_TO",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ef-healthcheck",
        description="Check EchoForge and email ops when the state changes (cron fallback). "
        "Every flag has an EF_* variable (docs/monitoring.md); flags win.",
    )
    for flag, variable in _FLAGS.items():
        parser.add_argument(flag, dest=variable, metavar=variable)
    parser.add_argument(
        "--disk-path",
        dest="EF_HEALTHCHECK_DISK_PATHS",
        action="append",
        help="repeatable; default: the data directory",
    )
    return parser


def settings_from(argv: Sequence[str] | None) -> HealthcheckSettings:
    """Flags given on the command line win over ``EF_*`` variables, which win over defaults."""
    flags = {k: v for k, v in vars(_parser().parse_args(argv)).items() if v is not None}
    return HealthcheckSettings(**flags)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("EF_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = settings_from(argv)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            log.error("configuration error: %s%s", f"{where}: " if where else "", error["msg"])
        return EXIT_CONFIG
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
