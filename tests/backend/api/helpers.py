"""Helpers of the API tests: decode audio for real, wait for jobs, read Prometheus text."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import av
import httpx

from tests.utils.procs import Server, start_ef_tts


@dataclass(frozen=True)
class Decoded:
    """What a decoder found in a byte string of audio."""

    codec: str
    sample_rate: int
    channels: int
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def decode(data: bytes, fmt: str | None = None) -> Decoded:
    """Decode every frame with PyAV (FFmpeg); raises if the bytes are not that audio."""
    with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
        stream = container.streams.audio[0]
        samples = 0
        rate = channels = 0
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
            channels = len(frame.layout.channels)
        # FFmpeg decodes mp3 with "mp3float": report the codec, not the decoder.
        codec = stream.codec_context.name.removesuffix("float")
        return Decoded(codec=codec, sample_rate=rate, channels=channels, samples=samples)


def unique_text(prefix: str = "This is EchoForge speaking") -> str:
    """A sentence no other test says, so cache state never leaks between tests."""
    words = " ".join(str(int(c, 16)) for c in uuid.uuid4().hex[:3])
    return f"{prefix}, test {words}."


def long_text(sentences: int = 6) -> str:
    """Several distinct sentences: a job that keeps a worker busy for a while."""
    tag = uuid.uuid4().hex[:4]
    body = [
        f"Sentence {i} of a long request tagged {' '.join(tag)}, which keeps the engine busy "
        "for a little while so that other work has to wait in the queue."
        for i in range(1, sentences + 1)
    ]
    return " ".join(body)


def wait_job(
    client: httpx.Client,
    job_id: str,
    *,
    until: tuple[str, ...] = ("succeeded",),
    timeout: float = 120,
) -> dict[str, object]:
    """Poll a job until its status is in ``until``; fail with the last state otherwise."""
    deadline = time.monotonic() + timeout
    job: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in until:
            return job
        if job["status"] in ("failed", "cancelled") and job["status"] not in until:
            raise AssertionError(f"job {job_id} ended {job['status']}: {job}")
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not {until} after {timeout}s: {job}")


def client_for(server: Server, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120, **kwargs)  # type: ignore[arg-type]


def error_of(response: httpx.Response) -> dict[str, object]:
    """The ``error`` object of a JSON error response (asserts the shape)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert isinstance(error["message"], str) and error["message"], body
    return error


def start_piper_engine(port: int, log_dir: Path, **env: str) -> Server:
    """A private Piper ef_tts on ``port``, for tests that stop, break or restart the engine."""
    server = start_ef_tts("ef_tts-private", log_dir, {"EF_TTS_ENGINE": "piper", **env}, port=port)
    try:
        return server.wait_ready("/health", timeout=120)
    except Exception:
        server.stop()
        raise
