"""API keys (EF_API_KEYS) and the per-client rate limit (EF_RATE_LIMIT), on one real backend."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.api.helpers import client_for, error_of, unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = pytest.mark.server

HA_KEY = "ha-0123456789abcdef"
WEBUI_KEY = "webui-fedcba9876543210"
RATE = 8


@pytest.fixture(scope="module")
def keyed(backend_factory: BackendFactory) -> Server:
    return backend_factory(
        EF_API_KEYS=f"homeassistant:{HA_KEY},openwebui:{WEBUI_KEY}", EF_RATE_LIMIT=str(RATE)
    )


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_guard_speech_jobs_and_openai(keyed: Server) -> None:
    with client_for(keyed) as client:
        body = {"text": unique_text("Only with a key")}
        missing = client.post("/api/v1/speech", json=body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "API key required" in str(error_of(missing)["message"])

        wrong = client.post("/api/v1/jobs", json=body, headers=_bearer("not-a-key-at-all"))
        assert wrong.status_code == 401
        assert "Invalid API key" in str(error_of(wrong)["message"])
        # The key is never echoed.
        assert "not-a-key-at-all" not in wrong.text

        openai = client.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy"}
        )
        assert openai.status_code == 401
        assert openai.json()["error"]["type"] == "authentication_error"
        assert client.get("/v1/models").status_code == 401

        ok = client.post("/api/v1/speech", json=body, headers=_bearer(HA_KEY))
        assert ok.status_code == 200, ok.text
        job = client.get(f"/api/v1/jobs/{ok.headers['x-ef-job-id']}", headers=_bearer(HA_KEY))
        assert job.status_code == 200


def test_open_routes_need_no_key(keyed: Server) -> None:
    with client_for(keyed) as client:
        assert client.get("/api/v1/voices").status_code == 200
        assert client.get("/health/live").status_code == 200
        assert client.get("/api/admin/queue").status_code == 200


def test_rate_limit_per_key_and_per_address(keyed: Server) -> None:
    with client_for(keyed) as client:
        codes = [
            client.get("/v1/models", headers=_bearer(HA_KEY)).status_code for _ in range(RATE + 2)
        ]
        assert 429 in codes, codes
        limited = client.get("/v1/models", headers=_bearer(HA_KEY))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        error = limited.json()["error"]
        assert error["type"] == "rate_limit_error"
        assert "homeassistant" in error["message"] and HA_KEY not in limited.text

        # Another key has its own bucket.
        assert client.get("/v1/models", headers=_bearer(WEBUI_KEY)).status_code == 200

        # Health and metrics are never limited.
        for _ in range(RATE + 2):
            assert client.get("/health/live").status_code == 200
            assert client.get("/metrics").status_code == 200

    # Anonymous callers are counted by address: 127.0.0.4 runs out, 127.0.0.5 does not.
    transport = httpx.HTTPTransport(local_address="127.0.0.4")
    with client_for(keyed, transport=transport) as client:
        codes = [client.get("/api/v1/voices").status_code for _ in range(RATE + 2)]
        assert codes[:RATE] == [200] * RATE
        assert codes[-1] == 429
        native = client.get("/api/v1/voices")
        assert error_of(native)["code"] == "rate_limited"
        assert "exceeded for this client" in str(error_of(native)["message"])
        assert "127.0.0.4" not in native.text  # no address in the answer
    other = httpx.HTTPTransport(local_address="127.0.0.5")
    with client_for(keyed, transport=other) as client:
        assert client.get("/api/v1/voices").status_code == 200
