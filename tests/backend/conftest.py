"""Backend fixtures: the real ef_backend (``ef serve``) against the real Piper ef_tts.

``backend`` is one server shared by the whole session (default settings, rate limit off); tests
that need other settings start their own through ``backend_factory``, which stops every server it
started at the end of the session. Tests on the shared server use texts of their own, so that one
test's cache entries cannot make another's pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.utils.procs import Server, free_port, start_ef_backend

BackendFactory = Callable[..., Server]

_counter = itertools.count()


@pytest.fixture(scope="session")
def backend_factory(piper_tts: Server, session_tmp: Path) -> Iterator[BackendFactory]:
    """Start ``ef serve`` with ``EF_*`` overrides; waits for ``/health/ready``.

    ``data_dir`` reuses a data directory (restart after a crash); ``ready_path`` is the path
    that must answer 200 before the server counts as started.
    """
    started: list[Server] = []

    def start(
        data_dir: Path | None = None,
        *,
        ready_path: str = "/health/ready",
        timeout: float = 60.0,
        **env: str,
    ) -> Server:
        if data_dir is None:
            data_dir = session_tmp / f"backend-{next(_counter)}"
        data_dir.mkdir(parents=True, exist_ok=True)
        server = start_ef_backend(
            "ef_backend",
            session_tmp / "logs",
            data_dir=data_dir,
            tts_url=piper_tts.url,
            env={"EF_RATE_LIMIT": "0", **env},
        )
        started.append(server)
        server.wait_ready(ready_path, timeout=timeout)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def backend(backend_factory: BackendFactory) -> Server:
    """The shared backend: default settings, rate limit off, no API keys."""
    return backend_factory()


@pytest.fixture(scope="session")
def dead_engine_backend(backend_factory: BackendFactory) -> Server:
    """A backend whose EF_TTS_URL is a closed port: the engine is really down.

    It never becomes ready, so it counts as started once ``/health/live`` answers.
    """
    return backend_factory(
        ready_path="/health/live",
        EF_TTS_URL=f"http://127.0.0.1:{free_port()}",
        EF_JOB_MAX_ATTEMPTS="2",
        EF_JOB_RETRY_BACKOFF_S="0.05",
        EF_TTS_CONNECT_TIMEOUT_S="0.5",
        EF_SYNC_TIMEOUT_S="30",
    )
