"""The backend's ``EngineClient`` against three engines, with one and the same test.

Targets: the stock ``tts-server`` of coqui-tts and our ef_tts (Coqui engine), both on the same
tiny VITS model, and our ef_tts with Piper. Only ``speed`` differs by design: the stock server
ignores it (no ``X-EF-Speed-Applied``), so the client must report it as not applied.
"""

from __future__ import annotations

import io
import wave

import pytest
from ef_backend.core.errors import EngineRejected
from ef_backend.services.engine import EngineClient

from tests.utils.procs import Server

pytestmark = pytest.mark.server

SENTENCE = "The quick brown fox jumps over the lazy dog."

TARGETS = [
    pytest.param(
        "stock_tts_server", "coqui", False, id="stock-tts-server", marks=pytest.mark.coqui
    ),
    pytest.param("coqui_tts", "coqui", True, id="ef_tts-coqui", marks=pytest.mark.coqui),
    pytest.param("piper_tts", "piper", True, id="ef_tts-piper"),
]


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        return wav.getnframes() / wav.getframerate()


@pytest.mark.parametrize(("fixture", "engine", "honours_speed"), TARGETS)
async def test_engine_client_speaks_to_the_engine(
    request: pytest.FixtureRequest, fixture: str, engine: str, honours_speed: bool
) -> None:
    server: Server = request.getfixturevalue(fixture)
    client = EngineClient(server.url, timeout_s=120)
    try:
        info = await client.info()
        assert (info.engine, info.loaded, info.status, info.error) == (engine, True, "ok", None)
        assert info.model

        voices = await client.voices()
        defaults = [v for v in voices if v.default]
        assert len(defaults) == 1, voices
        for voice in voices:
            audio = await client.synthesize("Hello there.", voice=voice.id)
            assert wav_seconds(audio.wav) > 0

        default = defaults[0].id
        short = await client.synthesize("Hello.", voice=default)
        long = await client.synthesize(" ".join([SENTENCE] * 2), voice=default)
        assert short.speed_applied
        assert 0 < wav_seconds(short.wav) < wav_seconds(long.wav)
        no_voice = await client.synthesize("Hello.", voice=None)
        assert wav_seconds(no_voice.wav) > 0

        fast = await client.synthesize(SENTENCE, voice=default, speed=2.0)
        assert fast.speed_applied is honours_speed
        assert wav_seconds(fast.wav) > 0

        with pytest.raises(EngineRejected) as refused:
            await client.synthesize("   ", voice=default)
        assert refused.value.reason == "rejected"
        assert "HTTP 400" in str(refused.value)
    finally:
        await client.aclose()
