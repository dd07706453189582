"""Small helpers for the ef_tts tests: read WAV bytes, start an ef_tts with given settings."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

from tests.utils.procs import Server


@dataclass(frozen=True)
class Wav:
    channels: int
    sample_width: int
    sample_rate: int
    frames: int
    pcm: bytes

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def read_wav(data: bytes) -> Wav:
    """Parse with the standard ``wave`` module, so a malformed file fails the test."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        return Wav(
            channels=wav.getnchannels(),
            sample_width=wav.getsampwidth(),
            sample_rate=wav.getframerate(),
            frames=wav.getnframes(),
            pcm=wav.readframes(wav.getnframes()),
        )


def wait_for_health_state(server: Server, state: str, timeout: float = 180.0) -> dict[str, object]:
    """Poll ``/health`` until its ``status`` is ``state`` (503 "loading" also answers early)."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise AssertionError(f"{server.name} exited:\n{server.log()}")
        try:
            body = httpx.get(f"{server.url}/health", timeout=2.0).json()
            if body.get("status") == state:
                return dict(body)
            last = body
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{server.name} never reached {state!r} (last: {last}):\n{server.log()}")
