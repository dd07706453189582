"""``/v1/audio/speech`` with the official `openai` client: playable audio in every format."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.backend.api.helpers import client_for, decode, unique_text
from tests.utils.procs import Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def oai(backend: Server) -> Iterator[openai.OpenAI]:
    # max_retries=0: a failure must show here, not be hidden by the client's retries.
    client = openai.OpenAI(base_url=f"{backend.url}/v1", api_key="sk-unused", max_retries=0)
    yield client
    client.close()


@pytest.mark.parametrize(
    ("fmt", "container", "codec"),
    [
        ("wav", "wav", "pcm_s16le"),
        ("mp3", "mp3", "mp3"),
        ("opus", "ogg", "opus"),
        ("flac", "flac", "flac"),
    ],
)
def test_openai_client_gets_playable_audio(
    oai: openai.OpenAI, fmt: str, container: str, codec: str
) -> None:
    response = oai.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=unique_text("Hello from the OpenAI client"),
        response_format=fmt,  # type: ignore[arg-type]
    )
    data = response.read()
    audio = decode(data, container)
    assert audio.codec == codec
    assert audio.channels == 1
    assert audio.duration_s > 0.5


def test_default_format_is_mp3_like_openai(oai: openai.OpenAI) -> None:
    response = oai.audio.speech.create(model="tts-1", voice="echo", input=unique_text())
    assert response.response.headers["content-type"] == "audio/mpeg"
    assert decode(response.read(), "mp3").codec == "mp3"


def test_streaming_pcm_with_the_openai_client(oai: openai.OpenAI) -> None:
    text = " ".join(unique_text(f"Streaming part {n}") for n in ("one", "two", "three"))
    with oai.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="nova",
        input=text,
        response_format="pcm",
        stream_format="audio",
    ) as response:
        assert response.headers.get("content-length") is None
        chunks = [c for c in response.iter_bytes() if c]
    data = b"".join(chunks)
    assert len(chunks) >= 2
    assert len(data) % 2 == 0 and len(data) > 20_000


def test_stream_format_audio_for_a_whole_file_format(oai: openai.OpenAI) -> None:
    """flac cannot be streamed sentence by sentence: the client still gets one valid file."""
    with oai.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=unique_text("Lossless and complete"),
        response_format="flac",
        stream_format="audio",
    ) as response:
        data = response.read()
    assert decode(data, "flac").codec == "flac"


def test_sse_stream_carries_base64_audio(backend: Server) -> None:
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": unique_text("Events with audio inside"),
        "response_format": "wav",
        "stream_format": "sse",
    }
    with client_for(backend) as client, client.stream("POST", "/v1/audio/speech", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "speech.audio.done"
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert deltas
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert decode(audio, "wav").duration_s > 0.5


def test_models_list(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "tts-1" in ids and "gpt-4o-mini-tts" in ids


def test_openai_errors_have_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        oai.audio.speech.create(model="tts-1", voice="nobody-here", input="Hello.")
    error = unknown.value.body
    assert isinstance(error, dict)
    assert error["code"] == "unknown_voice"
    assert error["param"] == "voice"
    assert error["type"] == "invalid_request_error"
    assert "nobody-here" in error["message"]

    with pytest.raises(openai.UnprocessableEntityError) as empty:
        oai.audio.speech.create(model="tts-1", voice="alloy", input=" ")
    assert empty.value.body["param"] == "input"  # type: ignore[index]

    with pytest.raises(openai.UnprocessableEntityError) as speed:
        oai.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", speed=10)
    assert "speed" in speed.value.body["message"]  # type: ignore[index]

    with pytest.raises(openai.UnprocessableEntityError) as fmt:
        oai.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="ogg")  # type: ignore[arg-type]
    assert fmt.value.body["param"] == "response_format"  # type: ignore[index]


def test_voice_object_and_too_long_input(backend: Server) -> None:
    with client_for(backend) as client:
        voices = client.get("/api/v1/voices").json()
        by_object = client.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "input": unique_text(),
                "voice": {"id": voices["default"]},
                "response_format": "wav",
            },
        )
        assert by_object.status_code == 200, by_object.text
        too_long = client.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": "y" * 6000, "voice": "alloy"}
        )
        assert too_long.status_code == 422
        error = too_long.json()["error"]
        assert error["param"] == "input" and "5000" in error["message"]
        assert httpx.codes.is_client_error(too_long.status_code)
