"""Health endpoints with the engine up, and with the engine down (a closed port)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import client_for, error_of, unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server
from tests.utils.prometheus import metric_value

pytestmark = pytest.mark.server


def _check_shape(check: dict[str, object]) -> None:
    assert check["status"] in ("ok", "warn", "fail")
    assert isinstance(check["duration_ms"], float | int) and check["duration_ms"] >= 0


def test_health_when_all_is_well(backend: Server) -> None:
    with client_for(backend) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok"
        assert set(body["checks"]) == {"api", "database", "queue", "engine"}
        for check in body["checks"].values():
            _check_shape(check)
            assert check["status"] == "ok"
        assert body["checks"]["queue"]["detail"]["max"] == 100
        assert body["checks"]["engine"]["detail"]["engine"] == "piper"
        assert body["version"]

        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert set(ready.json()["checks"]) == {"database", "engine", "cache"}

        tts = client.get("/health/tts")
        assert tts.status_code == 200, tts.text
        engine = tts.json()
        assert engine["reachable"] is True and engine["model_loaded"] is True
        assert engine["engine"] == "piper"
        assert engine["latency_ms"] > 0
        # Probes are cached: two calls in a row report the same probe.
        assert client.get("/health/tts").json()["checked_at"] == engine["checked_at"]

        assert client.get("/health/live").json() == {"status": "ok"}


def test_health_when_the_engine_is_down(dead_engine_backend: Server) -> None:
    with client_for(dead_engine_backend) as client:
        assert client.get("/health/live").status_code == 200

        health = client.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "fail"
        assert body["checks"]["engine"]["status"] == "fail"
        # Terse in public: no engine URL, no exception text (the log has them).
        assert body["checks"]["engine"]["error"] == "engine unreachable"
        assert "127.0.0.1:" not in health.text and "Error" not in health.text
        assert body["checks"]["database"]["status"] == "ok"

        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["engine"]["status"] == "fail"
        assert ready.json()["checks"]["cache"]["status"] == "ok"

        tts = client.get("/health/tts")
        assert tts.status_code == 503
        assert tts.json()["reachable"] is False


def test_engine_down_is_503_with_retry_after(dead_engine_backend: Server) -> None:
    with client_for(dead_engine_backend) as client:
        voices = client.get("/api/v1/voices")
        assert voices.status_code == 503
        assert "retry-after" in voices.headers
        assert error_of(voices)["code"] == "engine_unavailable"

        speech = client.post("/api/v1/speech", json={"text": unique_text("No engine to say it")})
        assert speech.status_code == 503, speech.text
        assert int(speech.headers["retry-after"]) >= 1
        assert error_of(speech)["code"] == "engine_unavailable"

        openai = client.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy"}
        )
        assert openai.status_code == 503
        assert openai.json()["error"]["type"] == "server_error"
        assert httpx.codes.is_server_error(openai.status_code)


def test_an_unwritable_cache_is_not_ready_and_says_so(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """The audio cache directory replaced by a file (what a broken volume looks like to the
    process; chmod would not stop root): /health/ready names the cache, and the scrape-time
    gauge ef_audio_cache_writable (read by EFBackendNotReady) drops to 0, then recovers."""
    data = session_tmp / "unwritable-cache"
    server = backend_factory(data)
    cache_dir = data / "audio-cache"
    with client_for(server) as client:
        assert metric_value(client.get("/metrics").text, "ef_audio_cache_writable") == 1
        shutil.rmtree(cache_dir)
        cache_dir.write_text("not a directory")
        try:
            ready = client.get("/health/ready")
            assert ready.status_code == 503, ready.text
            cache = ready.json()["checks"]["cache"]
            assert cache["status"] == "fail" and cache["error"], cache
            assert ready.json()["checks"]["database"]["status"] == "ok"
            assert metric_value(client.get("/metrics").text, "ef_audio_cache_writable") == 0
        finally:
            cache_dir.unlink()
            cache_dir.mkdir()
        assert client.get("/health/ready").status_code == 200
        assert metric_value(client.get("/metrics").text, "ef_audio_cache_writable") == 1
