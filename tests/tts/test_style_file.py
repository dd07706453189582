"""``style_wav`` names a reference in EF_TTS_VOICES_DIR; nothing else on the host is reachable."""

from __future__ import annotations

from pathlib import Path

import pytest
from ef_tts.engines.base import InputRejected
from ef_tts.engines.coqui import style_file


def test_a_name_in_the_voices_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "calm.wav").write_bytes(b"RIFF")
    assert style_file("calm.wav", tmp_path) == str(tmp_path / "calm.wav")
    with pytest.raises(InputRejected) as missing:
        style_file("angry.wav", tmp_path)
    assert missing.value.code == "unknown_style"


@pytest.mark.parametrize("name", ["/etc/x.wav", "../calm.wav", "sub/calm.wav", ".hidden.wav"])
def test_paths_are_refused_unlooked_at(tmp_path: Path, name: str) -> None:
    (tmp_path / "calm.wav").write_bytes(b"RIFF")
    with pytest.raises(InputRejected) as refused:
        style_file(name, tmp_path)
    assert refused.value.code == "invalid_style"


def test_no_voices_directory_means_no_reference_files(tmp_path: Path) -> None:
    with pytest.raises(InputRejected) as refused:
        style_file("calm.wav", None)
    assert refused.value.code == "invalid_style"
