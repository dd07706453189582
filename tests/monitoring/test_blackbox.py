"""The blackbox probes (monitoring/blackbox/blackbox.yml) run by the real exporter (Debian's
prometheus-blackbox-exporter) against a real backend with API keys and a real Piper ef_tts.

In compose the probes go through ef_proxy; here they go to the backend directly (the proxy
passes these routes through unchanged, and its own tests belong to the proxy). What is checked is
that each module succeeds on the answer a user gets, and fails on the answers users must not get.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.monitoring.support import blackbox_config, start_backend, start_blackbox
from tests.utils.procs import Server, free_port

pytestmark = [pytest.mark.server]

PROBE_KEY = "probe-key-for-the-blackbox-test-0123456789"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, piper_tts: Server
) -> Iterator[tuple[Server, Server, Path]]:
    workdir = tmp_path_factory.mktemp("blackbox")
    key_file = workdir / "probe_api_key"
    key_file.write_text(PROBE_KEY)
    backend = start_backend(
        workdir,
        port=free_port(),
        tts_url=piper_tts.url,
        data_dir=workdir / "data",
        env={"EF_API_KEYS": f"probe:{PROBE_KEY}"},
    ).wait_ready("/health/ready", timeout=120)
    try:
        blackbox = start_blackbox(workdir, blackbox_config(key_file), port=free_port())
        try:
            yield backend, blackbox, workdir
        finally:
            blackbox.stop()
    finally:
        backend.stop()


def _probe(blackbox: Server, module: str, target: str) -> dict[str, float]:
    response = httpx.get(
        f"{blackbox.url}/probe", params={"module": module, "target": target}, timeout=60
    )
    assert response.status_code == 200, response.text
    values = {}
    for line in response.text.splitlines():
        match = re.fullmatch(r"(probe_[a-z_]+) (\S+)", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def test_readiness_probe_succeeds_on_a_ready_backend(servers: tuple[Server, Server, Path]) -> None:
    backend, blackbox, _ = servers
    result = _probe(blackbox, "http_ready", f"{backend.url}/health/ready")
    assert result["probe_success"] == 1
    assert result["probe_http_status_code"] == 200


def test_speech_probe_gets_audio_with_the_probe_key(servers: tuple[Server, Server, Path]) -> None:
    backend, blackbox, _ = servers
    result = _probe(blackbox, "http_speech", f"{backend.url}/api/v1/speech")
    assert result["probe_success"] == 1
    assert result["probe_http_status_code"] == 200
    assert result["probe_http_uncompressed_body_length"] > 1000  # audio, not an error body


def test_engine_probe_succeeds_when_the_engine_synthesises(
    servers: tuple[Server, Server, Path],
) -> None:
    backend, blackbox, _ = servers
    result = _probe(blackbox, "http_engine", f"{backend.url}/health/tts")
    assert result["probe_success"] == 1
    assert result["probe_http_status_code"] == 200


def test_speech_probe_fails_without_a_valid_key(servers: tuple[Server, Server, Path]) -> None:
    backend, _, workdir = servers
    other = workdir / "wrong"
    other.mkdir(exist_ok=True)
    (other / "key").write_text("not-the-key-of-anyone-at-all-0123456789")
    wrong = start_blackbox(other, blackbox_config(other / "key"), port=free_port())
    try:
        result = _probe(wrong, "http_speech", f"{backend.url}/api/v1/speech")
    finally:
        wrong.stop()
    assert result["probe_success"] == 0
    assert result["probe_http_status_code"] == 401


def test_probes_fail_when_nothing_answers(servers: tuple[Server, Server, Path]) -> None:
    _, blackbox, _ = servers
    dead = f"http://127.0.0.1:{free_port()}"
    assert _probe(blackbox, "http_ready", f"{dead}/health/ready")["probe_success"] == 0
    assert _probe(blackbox, "http_speech", f"{dead}/api/v1/speech")["probe_success"] == 0


def test_readiness_probe_fails_on_a_backend_without_engine(
    servers: tuple[Server, Server, Path],
) -> None:
    """A backend that answers but is not ready (its engine is unreachable): 503, probe fails."""
    _, blackbox, workdir = servers
    lonely = start_backend(
        workdir / "lonely",
        port=free_port(),
        tts_url=f"http://127.0.0.1:{free_port()}",
        data_dir=workdir / "lonely-data",
    ).wait_ready("/health/live", timeout=120)
    try:
        result = _probe(blackbox, "http_ready", f"{lonely.url}/health/ready")
        engine = _probe(blackbox, "http_engine", f"{lonely.url}/health/tts")
    finally:
        lonely.stop()
    assert result["probe_success"] == 0
    assert result["probe_http_status_code"] == 503
    assert engine["probe_success"] == 0
    assert engine["probe_http_status_code"] == 503
