"""Piper through the HTTP API of a real ef_tts: real synthesis, real WAV, every voice."""

from __future__ import annotations

import io
import json
import time

import av
import httpx
import pytest

from tests.tts.conftest import EXTRA_VOICE
from tests.tts.helpers import read_wav
from tests.utils.procs import Server

pytestmark = pytest.mark.server

SENTENCE = "The quick brown fox jumps over the lazy dog."
BUILTIN = "en_US-joe-medium"


def speak(server: Server, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/tts", params=params, timeout=60)


def test_health_reports_the_loaded_model(piper_tts: Server) -> None:
    body = httpx.get(f"{piper_tts.url}/health").json()
    assert body["status"] == "ok"
    assert body["model_state"] == "loaded"
    assert body["engine"] == "piper"
    assert body["model"] == BUILTIN
    assert body["device"] == "cpu"
    assert body["voices"] == 1
    assert httpx.get(f"{piper_tts.url}/health/live").json() == {"status": "ok"}


def test_api_tts_returns_a_16bit_mono_wav(piper_tts: Server) -> None:
    response = speak(piper_tts, text=SENTENCE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-ef-engine"] == "piper"
    assert response.headers["x-ef-model"] == BUILTIN
    assert response.headers["x-ef-voice"] == BUILTIN
    wav = read_wav(response.content)
    assert (wav.channels, wav.sample_width, wav.sample_rate) == (1, 2, 22050)
    assert 1.0 < wav.duration_s < 10.0
    assert any(wav.pcm[i] != 0 for i in range(0, len(wav.pcm), 2)), "all silence"


def test_duration_grows_with_the_text(piper_tts: Server) -> None:
    short = read_wav(speak(piper_tts, text="Hello.").content)
    longer = read_wav(speak(piper_tts, text=SENTENCE).content)
    longest = read_wav(speak(piper_tts, text=" ".join([SENTENCE] * 3)).content)
    assert short.duration_s < longer.duration_s < longest.duration_s
    assert longest.duration_s > 2.5 * longer.duration_s * 0.9


def test_speed_changes_the_duration_and_says_so(piper_tts: Server) -> None:
    normal = speak(piper_tts, text=SENTENCE)
    fast = speak(piper_tts, text=SENTENCE, speed="2")
    slow = speak(piper_tts, text=SENTENCE, speed="0.5")
    for response in (normal, fast, slow):
        assert response.status_code == 200
        assert response.headers["x-ef-speed-applied"] == "1"
    base = read_wav(normal.content).duration_s
    assert read_wav(fast.content).duration_s < 0.8 * base
    assert read_wav(slow.content).duration_s > 1.4 * base


def test_parameters_as_the_stock_server_reads_them(piper_tts: Server) -> None:
    """Query, form field and header all carry ``text`` and ``speaker_id``; the header wins."""
    form = httpx.post(
        f"{piper_tts.url}/api/tts", data={"text": SENTENCE, "speaker_id": BUILTIN}, timeout=60
    )
    assert form.status_code == 200, form.text
    assert read_wav(form.content).duration_s > 1.0
    header = httpx.post(
        f"{piper_tts.url}/api/tts",
        headers={"text": "Hi.", "speaker-id": BUILTIN},
        params={"text": SENTENCE},
        timeout=60,
    )
    assert header.status_code == 200, header.text
    assert read_wav(header.content).duration_s < read_wav(form.content).duration_s
    empty_speaker = speak(piper_tts, text="Hi.", speaker_id="")
    assert empty_speaker.status_code == 200
    assert empty_speaker.headers["x-ef-voice"] == BUILTIN


def test_every_listed_voice_speaks(piper_voices: Server) -> None:
    voices = httpx.get(f"{piper_voices.url}/api/voices").json()
    assert {v["id"] for v in voices} == {BUILTIN, EXTRA_VOICE}
    assert [v["id"] for v in voices if v["default"]] == [BUILTIN]
    for voice in voices:
        assert voice["engine"] == "piper"
        assert voice["language"] == "en_US"
        assert voice["sample_rate"] == 22050
        response = speak(piper_voices, text=SENTENCE, speaker_id=voice["id"])
        assert response.status_code == 200, response.text
        assert response.headers["x-ef-voice"] == voice["id"]
        assert read_wav(response.content).duration_s > 1.0


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        ({"text": ""}, 400, "empty_text", "Text parameter is required and must not be blank"),
        ({"text": "   "}, 400, "empty_text", "Text parameter is required and must not be blank"),
        ({"text": "a" * 201}, 413, "text_too_long", "Text is 201 characters; the limit is 200"),
        (
            {"text": "Hi.", "speaker_id": "nobody"},
            400,
            "unknown_voice",
            f"Unknown voice 'nobody'; valid voices: {BUILTIN}, {EXTRA_VOICE}",
        ),
        (
            {"text": "Hi.", "speed": "fast"},
            400,
            "invalid_speed",
            "speed must be a number, not 'fast'",
        ),
        (
            {"text": "Hi.", "speed": "9"},
            400,
            "invalid_speed",
            "speed must be between 0.25 and 4.0, not 9",
        ),
        (
            {"text": "Hi.", "speed": "nan"},
            400,
            "invalid_speed",
            "speed must be between 0.25 and 4.0, not nan",
        ),
        (
            {"text": "Hi.", "language_id": "de"},
            400,
            "unknown_language",
            f"Voice '{BUILTIN}' speaks en_US, not 'de'",
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    piper_voices: Server, params: dict[str, str], status: int, code: str, message: str
) -> None:
    response = speak(piper_voices, **params)
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message}}


def test_text_at_the_limit_is_accepted(piper_voices: Server) -> None:
    assert speak(piper_voices, text="word " * 40).status_code == 200


def test_concurrent_requests_all_succeed(piper_tts: Server) -> None:
    """EF_TTS_WORKERS sessions in parallel: each answer is a whole WAV for its own text."""
    import concurrent.futures

    texts = ["One.", SENTENCE, "Two words.", " ".join([SENTENCE] * 2)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda t: speak(piper_tts, text=t), texts))
    durations = [read_wav(r.content).duration_s for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert durations[0] < durations[1] < durations[3]


@pytest.mark.parametrize(
    ("fmt", "media_type", "container"),
    [
        ("mp3", "audio/mpeg", "mp3"),
        ("opus", "audio/ogg", "ogg"),
        ("flac", "audio/flac", "flac"),
        ("aac", "audio/aac", "aac"),
    ],
)
def test_openai_speech_formats_decode(
    piper_tts: Server, fmt: str, media_type: str, container: str
) -> None:
    response = httpx.post(
        f"{piper_tts.url}/v1/audio/speech",
        json={"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": fmt},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    with av.open(io.BytesIO(response.content), mode="r", format=container) as decoded:
        samples = sum(int(frame.samples) for frame in decoded.decode(audio=0))
        rate = decoded.streams.audio[0].rate
    assert samples / rate > 1.0


def test_openai_speech_wav_pcm_and_default_mp3(piper_tts: Server) -> None:
    url = f"{piper_tts.url}/v1/audio/speech"
    wav = httpx.post(
        url, json={"input": SENTENCE, "response_format": "wav", "speed": 1.5}, timeout=60
    )
    assert wav.status_code == 200
    assert wav.headers["x-ef-speed-applied"] == "1"
    parsed = read_wav(wav.content)
    pcm = httpx.post(url, json={"input": "Hi.", "response_format": "pcm"}, timeout=60)
    assert pcm.headers["content-type"] == "audio/L16;rate=22050;channels=1"
    assert len(pcm.content) % 2 == 0 and len(pcm.content) < len(parsed.pcm)
    default = httpx.post(url, json={"input": "Hi."}, timeout=60)
    assert default.headers["content-type"] == "audio/mpeg"


def test_openai_speech_bad_input(piper_tts: Server) -> None:
    url = f"{piper_tts.url}/v1/audio/speech"
    missing = httpx.post(url, json={"voice": "alloy"})
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "invalid_request"
    assert "input" in missing.json()["error"]["message"]
    bad_format = httpx.post(url, json={"input": "Hi.", "response_format": "ogg"})
    assert bad_format.status_code == 422
    assert "response_format" in bad_format.json()["error"]["message"]
    unknown = httpx.post(url, json={"input": "Hi.", "voice": "nobody"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_voice"
    empty = httpx.post(url, json={"input": " "})
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "empty_text"
    for silent in ("...", "?!", "\U0001f642"):
        for fmt in ("mp3", "opus", "wav"):
            nothing = httpx.post(url, json={"input": silent, "response_format": fmt})
            assert nothing.status_code == 400, (silent, fmt, nothing.text)
            assert nothing.json()["error"]["code"] == "nothing_to_say"
        coqui_api = httpx.get(f"{piper_tts.url}/api/tts", params={"text": silent})
        assert coqui_api.status_code == 400
        assert "no letters or digits" in coqui_api.json()["error"]["message"]


def test_details_as_html_and_json(piper_tts: Server) -> None:
    as_json = httpx.get(f"{piper_tts.url}/details", headers={"accept": "application/json"}).json()
    assert as_json["engine"] == "piper"
    assert as_json["model"] == BUILTIN
    assert as_json["voices"] == [BUILTIN]
    as_html = httpx.get(f"{piper_tts.url}/details")
    assert as_html.headers["content-type"].startswith("text/html")
    assert f"<td>model</td><td>{BUILTIN}</td>" in as_html.text


def _sample(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{labels}}} not exported")


def test_metrics_count_requests_and_audio(piper_voices: Server) -> None:
    """On an engine of this module's own: the session's shared engine is also probed by the
    backends other tests left running, whose sample syntheses would move the counts."""

    def scrape() -> str:
        return httpx.get(f"{piper_voices.url}/metrics").text

    model = f'engine="piper",model="{BUILTIN}"'
    before = scrape()
    assert speak(piper_voices, text=SENTENCE).status_code == 200
    assert speak(piper_voices, text="").status_code == 400
    after = scrape()
    ok = 'engine="piper",outcome="success"'
    rejected = 'engine="piper",outcome="rejected"'
    assert (
        _sample(after, "ef_tts_engine_requests_total", ok)
        == _sample(before, "ef_tts_engine_requests_total", ok) + 1
    )
    assert (
        _sample(after, "ef_tts_engine_requests_total", rejected)
        == _sample(before, "ef_tts_engine_requests_total", rejected) + 1
    )
    assert (
        _sample(after, "ef_tts_engine_audio_seconds_total", model)
        > _sample(before, "ef_tts_engine_audio_seconds_total", model) + 1.0
    )
    assert (
        _sample(after, "ef_tts_engine_inference_seconds_count", model)
        == _sample(before, "ef_tts_engine_inference_seconds_count", model) + 1
    )
    assert _sample(after, "ef_tts_engine_realtime_factor_count", model) >= 1
    assert _sample(after, "ef_tts_engine_model_loaded", model) == 1
    assert _sample(after, "ef_tts_engine_model_load_seconds", model) > 0
    assert _sample(after, "ef_tts_engine_in_flight", 'engine="piper"') == 0


def test_spoken_text_is_never_logged(piper_voices: Server) -> None:
    """Even at DEBUG the log has the text's length, never the text."""
    secret = "Zanzibar quokka marmalade seventeen."
    assert speak(piper_voices, text=secret).status_code == 200
    assert speak(piper_voices, text=secret, speaker_id="nobody").status_code == 400
    log = piper_voices.log()
    assert f"synthesised {len(secret)} chars" in log
    assert "Zanzibar" not in log
    assert "quokka" not in log


def test_request_id_is_echoed_and_access_logged_as_json(piper_tts: Server) -> None:
    """ef_tts keeps the caller's X-Request-ID (the backend's), so one id follows both logs."""
    rid = "tts-access-log-check-1"
    response = httpx.get(
        f"{piper_tts.url}/api/tts",
        params={"text": "Access log check."},
        headers={"X-Request-ID": rid},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == rid
    generated = httpx.get(f"{piper_tts.url}/health/live", timeout=10).headers["x-request-id"]
    assert generated and generated != rid

    def access_line() -> dict[str, object] | None:
        for line in piper_tts.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("request_id") == rid and record.get("route") == "/api/tts":
                return record
        return None

    deadline = time.monotonic() + 10
    while (record := access_line()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert record is not None, "no JSON access log line with the request id"
    assert record["method"] == "GET"
    assert record["status"] == 200
    assert record["service"] == "ef_tts"
    assert isinstance(record["duration_ms"], int | float)
    assert "Access log check" not in piper_tts.log()
