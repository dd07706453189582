"""Coqui through the HTTP API of a real ef_tts, run from .venv-coqui on a tiny random VITS.

The model is created by a fixture (``Vits.init_from_config``), so its audio is noise; loading,
speakers, speed, WAV output and errors are the real Coqui code paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tts.helpers import read_wav, wait_for_health_state
from tests.utils.procs import COQUI_BIN, Server, start_ef_tts

pytestmark = [pytest.mark.coqui, pytest.mark.server]

SENTENCE = "The quick brown fox jumps over the lazy dog."
COQUI_PYTHON = str(COQUI_BIN / "python")


def speak(server: Server, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/tts", params=params, timeout=120)


@pytest.fixture(scope="module")
def coqui_speakers(
    tiny_vits_speakers: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """ef_tts on the two-speaker tiny VITS, ``bob`` as the default voice, DEBUG logs."""
    server = start_ef_tts(
        "ef_tts-coqui-speakers",
        tmp_path_factory.mktemp("logs"),
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL_PATH": str(tiny_vits_speakers / "model.pth"),
            "EF_TTS_CONFIG_PATH": str(tiny_vits_speakers / "config.json"),
            "EF_TTS_DEFAULT_VOICE": "bob",
            "EF_TTS_LOG_LEVEL": "DEBUG",
        },
        python=COQUI_PYTHON,
    )
    try:
        server.wait_ready("/health", timeout=180)
        yield server
    finally:
        server.stop()


def test_health_and_single_default_voice(coqui_tts: Server, tiny_vits: Path) -> None:
    health = httpx.get(f"{coqui_tts.url}/health").json()
    assert health["status"] == "ok"
    assert (health["engine"], health["model"], health["device"]) == ("coqui", tiny_vits.name, "cpu")
    assert health["load_seconds"] > 0
    voices = httpx.get(f"{coqui_tts.url}/api/voices").json()
    assert voices == [
        {
            "id": "default",
            "name": tiny_vits.name,
            "language": "en",
            "engine": "coqui",
            "sample_rate": 16000,
            "default": True,
        }
    ]


def test_api_tts_returns_a_wav_that_grows_with_the_text(coqui_tts: Server) -> None:
    short = speak(coqui_tts, text="Hi.")
    assert short.status_code == 200, short.text
    assert short.headers["content-type"] == "audio/wav"
    assert short.headers["x-ef-engine"] == "coqui"
    assert short.headers["x-ef-voice"] == "default"
    wav = read_wav(short.content)
    assert (wav.channels, wav.sample_width, wav.sample_rate) == (1, 2, 16000)
    longer = read_wav(speak(coqui_tts, text=SENTENCE).content)
    longest = read_wav(speak(coqui_tts, text=" ".join([SENTENCE] * 3)).content)
    assert 0 < wav.duration_s < longer.duration_s < longest.duration_s


def test_stock_parameters_post_form_and_headers(coqui_tts: Server) -> None:
    form = httpx.post(
        f"{coqui_tts.url}/api/tts",
        data={"text": SENTENCE, "speaker_id": "", "language_id": "", "style_wav": ""},
        timeout=120,
    )
    assert form.status_code == 200, form.text
    header = httpx.post(f"{coqui_tts.url}/api/tts", headers={"text": "Hi."}, timeout=120)
    assert header.status_code == 200, header.text
    assert read_wav(header.content).duration_s < read_wav(form.content).duration_s


def test_speed_maps_to_vits_length_scale(coqui_tts: Server) -> None:
    normal = speak(coqui_tts, text=SENTENCE)
    fast = speak(coqui_tts, text=SENTENCE, speed="2")
    slow = speak(coqui_tts, text=SENTENCE, speed="0.5")
    for response in (normal, fast, slow):
        assert response.status_code == 200
        assert response.headers["x-ef-speed-applied"] == "1"
    durations = [read_wav(r.content).duration_s for r in (fast, normal, slow)]
    assert durations[0] < durations[1] < durations[2]


def test_speakers_are_voices_and_each_speaks(coqui_speakers: Server) -> None:
    voices = httpx.get(f"{coqui_speakers.url}/api/voices").json()
    assert [(v["id"], v["default"]) for v in voices] == [("alice", False), ("bob", True)]
    for voice in voices:
        response = speak(coqui_speakers, text=SENTENCE, speaker_id=voice["id"])
        assert response.status_code == 200, response.text
        assert response.headers["x-ef-voice"] == voice["id"]
        assert read_wav(response.content).duration_s > 0
    by_header = httpx.post(
        f"{coqui_speakers.url}/api/tts", headers={"text": "Hi.", "speaker-id": "alice"}, timeout=120
    )
    assert by_header.headers["x-ef-voice"] == "alice"
    assert speak(coqui_speakers, text="Hi.").headers["x-ef-voice"] == "bob"


def test_unknown_speaker_lists_the_valid_ones(coqui_speakers: Server) -> None:
    response = speak(coqui_speakers, text="Hi.", speaker_id="carol")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "unknown_voice",
            "message": "Unknown voice 'carol'; valid voices: alice, bob",
        }
    }


@pytest.mark.parametrize(
    ("params", "status", "code", "message"),
    [
        ({"text": ""}, 400, "empty_text", "Text parameter is required and must not be blank"),
        ({"text": "x" * 5001}, 413, "text_too_long", "Text is 5001 characters; the limit is 5000"),
        (
            {"text": "Hi.", "speaker_id": "alice"},
            400,
            "unknown_voice",
            "Unknown voice 'alice'; valid voices: default",
        ),
        (
            {"text": "Hi.", "speed": "0"},
            400,
            "invalid_speed",
            "speed must be between 0.25 and 4.0, not 0",
        ),
        (
            {"text": "Hi.", "language_id": "fr"},
            400,
            "unknown_language",
            "Model 'tiny-vits' speaks en, not 'fr'",
        ),
        (
            {"text": "Hi.", "style_wav": '{"0": 0.3}'},
            400,
            "style_not_supported",
            "Model 'tiny-vits' takes no style_wav",
        ),
        # A server path is refused before it is looked at: the answer is the same whether the
        # file exists or not (the stock server told which).
        *(
            (
                {"text": "Hi.", "style_wav": path},
                400,
                "invalid_style",
                "style_wav must be a .wav file name in EF_TTS_VOICES_DIR or a JSON object",
            )
            for path in ("/usr/share/sounds/alsa/Noise.wav", "/nonexistent/x.wav", "../x.wav")
        ),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    coqui_tts: Server, params: dict[str, str], status: int, code: str, message: str
) -> None:
    response = speak(coqui_tts, **params)
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message}}


def test_openai_speech_and_details(coqui_tts: Server) -> None:
    response = httpx.post(
        f"{coqui_tts.url}/v1/audio/speech",
        json={"model": "tts-1", "input": SENTENCE, "voice": "alloy", "response_format": "wav"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert read_wav(response.content).sample_rate == 16000
    details = httpx.get(f"{coqui_tts.url}/details", headers={"accept": "application/json"}).json()
    assert details["model_type"] == "Vits"
    assert details["speakers"] == []
    assert details["model_config"]["use_phonemes"] is False
    page = httpx.get(f"{coqui_tts.url}/details").text
    assert "<td>model_name</td><td>tiny-vits</td>" in page


def test_metrics_label_the_coqui_model(coqui_tts: Server) -> None:
    assert speak(coqui_tts, text="Hi.").status_code == 200
    text = httpx.get(f"{coqui_tts.url}/metrics").text
    assert 'ef_tts_engine_model_loaded{engine="coqui",model="tiny-vits"} 1.0' in text
    assert 'ef_tts_engine_inference_seconds_count{engine="coqui",model="tiny-vits"}' in text
    assert "ef_tts_build_info{" in text
    assert 'engine="coqui"' in text


def test_named_model_loads_from_model_dir_like_a_download(tiny_vits: Path, tmp_path: Path) -> None:
    """EF_TTS_MODEL by name goes through Coqui's ModelManager into EF_TTS_MODEL_DIR.

    Nothing can be downloaded here, so the model folder is placed where ModelManager keeps a
    finished download (``<dir>/tts/tts_models--en--ljspeech--vits``); from there on the code
    path (find files, rewrite paths in config.json, load) is the one a real download takes.
    """
    folder = tmp_path / "models" / "tts" / "tts_models--en--ljspeech--vits"
    folder.mkdir(parents=True)
    shutil.copy(tiny_vits / "model.pth", folder / "model.pth")
    shutil.copy(tiny_vits / "config.json", folder / "config.json")
    server = start_ef_tts(
        "ef_tts-coqui-named",
        tmp_path / "logs",
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL": "tts_models/en/ljspeech/vits",
            "EF_TTS_MODEL_DIR": str(tmp_path / "models"),
        },
        python=COQUI_PYTHON,
    )
    try:
        health = wait_for_health_state(server, "ok")
        assert health["model"] == "tts_models/en/ljspeech/vits"
        response = speak(server, text=SENTENCE)
        assert response.status_code == 200, response.text
        assert response.headers["x-ef-model"] == "tts_models/en/ljspeech/vits"
        assert read_wav(response.content).duration_s > 0
    finally:
        server.stop()


def test_spoken_text_is_never_logged(coqui_speakers: Server) -> None:
    """Coqui logs input text (sentences, unknown characters); ef_tts keeps that out of its log."""
    secret = "Zanzibar quokka marmalade. Ünïcode ☃ seventeen."
    assert speak(coqui_speakers, text=secret).status_code == 200
    log = coqui_speakers.log()
    assert f"synthesised {len(secret)} chars" in log
    assert "Zanzibar" not in log
    assert "quokka" not in log
