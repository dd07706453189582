"""Fixtures shared by every test package: real servers on loopback, spans in memory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.utils.postgres import PostgresServer, start_postgres
from tests.utils.procs import COQUI_BIN, REPO, Server, free_port, start_ef_tts, start_server


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def _memory_tracing() -> InMemorySpanExporter:
    """The SDK with an in-memory exporter as this process's tracer provider.

    OpenTelemetry allows one global provider per process, so once a test asks for ``spans``
    every app built in this test process afterwards is traced too (as in production, where
    ``OTEL_*`` decides once at start).
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider, "another tracer provider was set first"
    return exporter


@pytest.fixture
def spans(_memory_tracing: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The spans this test makes, in memory (read with ``get_finished_spans()``)."""
    _memory_tracing.clear()
    yield _memory_tracing
    _memory_tracing.clear()


@pytest.fixture(scope="session")
def piper_tts(session_tmp: Path) -> Iterator[Server]:
    """A real ef_tts with the Piper engine and the joe voice from PyPI, shared by a session."""
    server = start_ef_tts("ef_tts-piper", session_tmp / "logs", {"EF_TTS_ENGINE": "piper"})
    try:
        server.wait_ready("/health", timeout=120)
        yield server
    finally:
        server.stop()


# --- Coqui: a tiny random VITS model, served by our ef_tts and by the stock tts-server ---------


def _coqui_python() -> str:
    python = COQUI_BIN / "python"
    if not python.exists():  # fail, never skip: `make test` builds .venv-coqui
        raise RuntimeError(f"{python} is missing; run `make venv-coqui`")
    return str(python)


def _make_tiny_vits(out_dir: Path, speakers: str = "") -> Path:
    args = [_coqui_python(), str(REPO / "tests" / "utils" / "tiny_vits.py"), str(out_dir)]
    if speakers:
        args += ["--speakers", speakers]
    subprocess.run(args, check=True, cwd=REPO, capture_output=True, timeout=300)
    return out_dir


@pytest.fixture(scope="session")
def tiny_vits(session_tmp: Path) -> Path:
    """A folder with ``model.pth`` + ``config.json`` of a tiny single-speaker VITS (noise)."""
    return _make_tiny_vits(session_tmp / "tiny-vits")


@pytest.fixture(scope="session")
def tiny_vits_speakers(session_tmp: Path) -> Path:
    """The same tiny VITS with two speakers, ``alice`` and ``bob`` (plus ``speakers.json``)."""
    return _make_tiny_vits(session_tmp / "tiny-vits-speakers", "alice,bob")


@pytest.fixture(scope="session")
def coqui_tts(session_tmp: Path, tiny_vits: Path) -> Iterator[Server]:
    """Our ef_tts with the Coqui engine on the tiny VITS, from the Coqui environment."""
    server = start_ef_tts(
        "ef_tts-coqui",
        session_tmp / "logs",
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL_PATH": str(tiny_vits / "model.pth"),
            "EF_TTS_CONFIG_PATH": str(tiny_vits / "config.json"),
        },
        python=_coqui_python(),
    )
    try:
        server.wait_ready("/health", timeout=180)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stock_tts_server(session_tmp: Path, tiny_vits: Path) -> Iterator[Server]:
    """The stock ``tts-server`` of coqui-tts on the tiny VITS (bound to loopback, see wrapper)."""
    port = free_port()
    server = start_server(
        "stock-tts-server",
        [
            _coqui_python(),
            str(REPO / "tests" / "utils" / "stock_tts_server.py"),
            "--model_path",
            str(tiny_vits / "model.pth"),
            "--config_path",
            str(tiny_vits / "config.json"),
            "--port",
            str(port),
            "--show_details",
        ],
        port=port,
        log_dir=session_tmp / "logs",
    )
    try:
        server.wait_ready("/details", timeout=180)
        yield server
    finally:
        server.stop()


# --- PostgreSQL: one real server per session, an empty database per test ------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on loopback, run as an unprivileged user, for the whole session."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
