"""The app before and after its model loads, in-process with the real Piper engine.

``httpx.ASGITransport`` does not run the lifespan, so the model has not started loading when
the first requests arrive: the "loading" answers are observed deterministically, then the load
is run and the same app serves.
"""

from __future__ import annotations

import httpx
from ef_tts.app import create_app
from ef_tts.config import Settings
from ef_tts.runtime import EngineRuntime

from tests.tts.helpers import read_wav
from tests.utils.poll import poll_until_async


async def test_loading_then_ready() -> None:
    settings = Settings(engine="piper")
    runtime = EngineRuntime(settings)
    app = create_app(settings, runtime)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ef-tts") as client:
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "loading"
            assert health.json()["model_state"] == "loading"
            assert "error" not in health.json()
            refused = await client.get("/api/tts", params={"text": "Hello."})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert refused.json() == {
                "error": {"code": "model_loading", "message": "Model is still loading"}
            }
            assert (await client.get("/health/live")).status_code == 200

            runtime.start_loading()

            async def loaded() -> bool:
                return (await client.get("/health")).status_code == 200

            await poll_until_async(loaded, timeout=120, what="the model to load")
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "ok"
            spoken = await client.get("/api/tts", params={"text": "Hello."})
            assert spoken.status_code == 200
            assert read_wav(spoken.content).duration_s > 0.2
    finally:
        runtime.close()
