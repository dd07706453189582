"""Fixtures shared by every test package: real servers on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.procs import Server, free_port, start_server


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def piper_tts(session_tmp: Path) -> Iterator[Server]:
    """A real ef_tts with the Piper engine and the joe voice shipped on PyPI, shared by a session."""
    port = free_port()
    server = start_server(
        "ef_tts-piper",
        [sys.executable, "-m", "ef_tts"],
        port=port,
        log_dir=session_tmp / "logs",
        env={"EF_TTS_ENGINE": "piper", "EF_TTS_HOST": "127.0.0.1", "EF_TTS_PORT": str(port)},
    )
    try:
        server.wait_ready("/health", timeout=120)
        yield server
    finally:
        server.stop()
