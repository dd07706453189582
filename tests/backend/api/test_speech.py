"""``POST /api/v1/speech`` end to end: real backend, real Piper ef_tts, audio decoded for real."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.backend.api.helpers import client_for, decode, error_of, unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server
from tests.utils.prometheus import metric_value

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def client(backend: Server) -> httpx.Client:
    with client_for(backend) as c:
        yield c


def test_speech_returns_wav_then_a_cache_hit(client: httpx.Client) -> None:
    body = {"text": unique_text()}
    first = client.post("/api/v1/speech", json=body)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("audio/wav")
    assert first.headers["x-ef-cache"] == "miss"
    job_id = first.headers["x-ef-job-id"]
    audio = decode(first.content, "wav")
    assert audio.codec == "pcm_s16le"
    assert audio.channels == 1
    assert audio.duration_s > 0.5

    second = client.post("/api/v1/speech", json=body)
    assert second.status_code == 200, second.text
    assert second.headers["x-ef-cache"] == "hit"
    assert second.content == first.content
    # The job that made the audio is the one the first answer named.
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["text_chars"] == len(body["text"])


@pytest.mark.parametrize(
    ("fmt", "container", "codec"),
    [
        ("mp3", "mp3", "mp3"),
        ("opus", "ogg", "opus"),
        ("flac", "flac", "flac"),
        ("aac", None, "aac"),
    ],
)
def test_speech_formats_are_really_encoded(
    client: httpx.Client, fmt: str, container: str | None, codec: str
) -> None:
    response = client.post("/api/v1/speech", json={"text": unique_text(), "format": fmt})
    assert response.status_code == 200, response.text
    audio = decode(response.content, container)
    assert audio.codec == codec
    assert audio.duration_s > 0.5


def test_speed_changes_duration(client: httpx.Client) -> None:
    text = unique_text("A sentence said at two speeds to compare how long it lasts")
    normal = client.post("/api/v1/speech", json={"text": text})
    fast = client.post("/api/v1/speech", json={"text": text, "speed": 2.0})
    assert normal.status_code == fast.status_code == 200
    ratio = decode(fast.content, "wav").duration_s / decode(normal.content, "wav").duration_s
    assert 0.35 < ratio < 0.75, ratio


def test_long_text_is_split_and_a_repeated_sentence_is_a_cache_hit(
    client: httpx.Client, piper_tts: Server
) -> None:
    first, second = unique_text("The first sentence"), unique_text("The second sentence")
    one = client.post("/api/v1/speech", json={"text": first})
    assert one.status_code == 200
    before = metric_value(_engine_metrics(piper_tts), "ef_tts_engine_text_characters_total")
    both = client.post("/api/v1/speech", json={"text": f"{first} {second}"})
    assert both.status_code == 200, both.text
    assert both.headers["x-ef-cache"] == "miss"
    after = metric_value(_engine_metrics(piper_tts), "ef_tts_engine_text_characters_total")
    # Only the new sentence went to the engine (the engine's health probe may add a few words).
    assert len(second) <= after - before < len(first) + len(second)
    joined = decode(both.content, "wav").duration_s
    assert joined > decode(one.content, "wav").duration_s * 1.5


@pytest.mark.parametrize("fmt", ["wav", "pcm", "mp3"])
def test_stream_sends_audio_in_chunks(client: httpx.Client, fmt: str) -> None:
    text = " ".join(unique_text(f"Streamed sentence {n}") for n in ("one", "two", "three"))
    with client.stream(
        "POST", "/api/v1/speech", json={"text": text, "format": fmt, "stream": True}
    ) as r:
        assert r.status_code == 200, r.read()
        assert "content-length" not in r.headers
        assert r.headers["x-ef-cache"] == "miss"
        chunks = [c for c in r.iter_raw() if c]
    data = b"".join(chunks)
    assert len(chunks) >= 2
    if fmt == "pcm":
        assert len(data) % 2 == 0 and len(data) > 20_000
    else:
        assert decode(data, fmt).duration_s > 2.0


def test_twenty_identical_concurrent_requests_make_one_job(
    client: httpx.Client, backend: Server
) -> None:
    body = {"text": unique_text("Twenty callers ask for the same words at once")}
    jobs_before = client.get("/api/v1/jobs", params={"limit": 1}).json()["count"]

    def call() -> httpx.Response:
        with client_for(backend) as c:
            return c.post("/api/v1/speech", json=body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: call(), range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1
    job_ids = {r.headers.get("x-ef-job-id") for r in responses if r.headers["x-ef-cache"] == "miss"}
    assert len(job_ids) == 1, job_ids
    assert client.get("/api/v1/jobs", params={"limit": 1}).json()["count"] == jobs_before + 1


def _engine_metrics(engine: Server) -> str:
    response = httpx.get(engine.url + "/metrics", follow_redirects=True)
    assert response.status_code == 200
    return response.text


# Every bad input: a 4xx JSON error that names what to fix, and no job is created.
BAD_INPUTS = [
    ({"text": ""}, 422, "text"),
    ({"text": "   \n "}, 422, "text"),
    ({"text": "..."}, 422, "no letters or digits"),
    ({"text": "\U0001f642\U0001f642"}, 422, "no letters or digits"),
    ({"text": "x" * 5001}, 422, "5000"),
    # 5,000 characters that normalise to 15,000 (U+FB2C decomposes into three): the limit
    # holds for what the engine would get.
    ({"text": "\ufb2c" * 5000}, 422, "15000 characters is more than the limit of 5000"),
    ({"text": "Hello.", "speed": 0}, 422, "speed"),
    ({"text": "Hello.", "speed": 4.5}, 422, "speed"),
    ({"text": "Hello.", "speed": "fast"}, 422, "speed"),
    ({"text": "Hello.", "format": "ogg"}, 422, "format"),
    ({"text": "Hello.", "format": "flac", "stream": True}, 422, "cannot be streamed"),
    ({"text": "Hello.", "fmt": "mp3"}, 422, "fmt"),
    ({"voice": "joe"}, 422, "text"),
    ({"text": 42}, 422, "text"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_INPUTS)
def test_bad_input_is_a_clear_4xx(
    client: httpx.Client, body: dict[str, object], status: int, says: str
) -> None:
    before = client.get("/api/v1/jobs", params={"limit": 1}).json()["count"]
    response = client.post("/api/v1/speech", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert says in str(error["message"])
    assert client.get("/api/v1/jobs", params={"limit": 1}).json()["count"] == before


def test_unknown_voice_lists_the_valid_ones(client: httpx.Client) -> None:
    voices = [v["id"] for v in client.get("/api/v1/voices").json()["data"]]
    response = client.post("/api/v1/speech", json={"text": "Hello.", "voice": "no-such-voice"})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "unknown_voice"
    assert "no-such-voice" in str(error["message"])
    for voice in voices:
        assert voice in str(error["message"])
    assert sorted(error["valid"]) == sorted(voices)  # type: ignore[arg-type]


def test_not_json_is_a_clear_4xx(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/speech", content=b"text=hello", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_input"
    broken = client.post(
        "/api/v1/speech",
        content=b'{"text": "unterminated',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 422, broken.text
    assert str(error_of(broken)["message"]).startswith("body: malformed JSON at character")
    assert error_of(broken)["field"] == "body"
    not_an_object = client.post("/api/v1/speech", json=["Hello."])
    assert not_an_object.status_code == 422, not_an_object.text
    assert str(error_of(not_an_object)["message"]).startswith("body: ")
    assert error_of(not_an_object)["field"] == "body"


def test_operator_speed_limits(backend_factory: BackendFactory) -> None:
    """EF_MIN_SPEED / EF_MAX_SPEED are the limits every speech route applies."""
    narrow = backend_factory(EF_MIN_SPEED="0.5", EF_MAX_SPEED="2")
    with client_for(narrow) as client:
        for speed in (0.4, 2.5):
            native = client.post("/api/v1/speech", json={"text": "Hello.", "speed": speed})
            assert native.status_code == 422, native.text
            assert "EF_MIN_SPEED, EF_MAX_SPEED" in str(error_of(native)["message"])
            openai = client.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": "Hello.", "speed": speed}
            )
            assert openai.status_code == 422, openai.text
            assert openai.json()["error"]["param"] == "speed"
        ok = client.post("/api/v1/speech", json={"text": unique_text("Half speed"), "speed": 0.5})
        assert ok.status_code == 200, ok.text


def test_voices_lists_the_engine_voices(client: httpx.Client) -> None:
    response = client.get("/api/v1/voices")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["data"]) >= 1
    defaults = [v for v in body["data"] if v["default"]]
    assert len(defaults) == 1
    assert body["default"] == defaults[0]["id"]
    assert defaults[0]["engine"] == "piper"
    assert body["openai_voices"]["alloy"] == body["default"]


def test_openai_voice_names_work_on_the_native_api(client: httpx.Client) -> None:
    text = unique_text("Spoken with a voice name from OpenAI")
    named = client.post("/api/v1/speech", json={"text": text, "voice": "nova"})
    default = client.post("/api/v1/speech", json={"text": text})
    assert named.status_code == default.status_code == 200
    # nova maps to the default voice, so the second request is the first one's cache entry.
    assert default.headers["x-ef-cache"] == "hit"
    assert named.content == default.content


def test_frontend_is_served_at_root_without_shadowing_the_api(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "<html" in page.text.lower()
    assert client.get("/api/v1/voices").headers["content-type"] == "application/json"
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "http_404"
