"""The listener in-process, on a stand-in speech service: `info` follows the voice list.

The stand-in replaces only the speech service (whose real behaviour test_server.py covers with
the real backend and Piper); the listener, the handler and the client library are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ef_backend.core.config import Settings
from ef_backend.services.engine import EngineInfo, EngineVoice
from ef_backend.wyoming import WyomingListener
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from tests.utils.procs import free_port


class _Speech:
    """Answers `voices` and `engine_info` like SpeechService; the voices can change."""

    def __init__(self) -> None:
        self.voice_ids = ["en_US-joe-medium"]

    async def voices(self) -> list[EngineVoice]:
        return [
            EngineVoice(
                id=v, name=v, language="en_US", engine="piper", sample_rate=22050, default=i == 0
            )
            for i, v in enumerate(self.voice_ids)
        ]

    async def engine_info(self) -> EngineInfo:
        return EngineInfo(engine="piper", model="m", loaded=True, status="ok", error=None)


async def _voices(port: int) -> list[str]:
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=30) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None
    return [v.name for v in Info.from_event(event).tts[0].voices]


async def test_each_describe_lists_the_voices_the_engine_has_now(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, wyoming_port=port, wyoming_cidrs="127.0.0.1/32"
    )
    speech: Any = _Speech()
    listener = WyomingListener(settings, speech)
    await listener.start()
    try:
        assert listener.health().listening
        assert await _voices(port) == ["en_US-joe-medium"]
        speech.voice_ids = ["en_GB-alba-medium", "en_US-joe-medium"]  # the engine restarted
        assert await _voices(port) == ["en_GB-alba-medium", "en_US-joe-medium"]
    finally:
        await listener.stop()
    assert not listener.health().listening
