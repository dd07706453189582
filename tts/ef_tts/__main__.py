"""``python -m ef_tts`` / ``ef-tts``: serve the engine on ``EF_TTS_HOST:EF_TTS_PORT``."""

from __future__ import annotations

import logging
import sys

import uvicorn
from ef_common.logging import configure_logging
from pydantic import ValidationError

from ef_tts.config import Settings

log = logging.getLogger("ef_tts")


def main() -> int:
    """Read the settings, configure logging, and run uvicorn until SIGTERM."""
    try:
        settings = Settings()
    except ValidationError as exc:
        configure_logging("INFO", service="ef_tts")
        for err in exc.errors():
            key = "EF_TTS_" + "_".join(str(p) for p in err["loc"]).upper()
            log.error("invalid setting %s=%r: %s", key, err.get("input"), err["msg"])
        return 2
    configure_logging(settings.log_level, service="ef_tts")
    from ef_tts.app import create_app

    log.info(
        "ef_tts starting: engine %s, model %s, listening on %s:%d",
        settings.engine,
        settings.model_name,
        settings.host,
        settings.port,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
