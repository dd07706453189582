"""What the images and compose files promise without Docker (built for real in GitHub Actions):
the engine's cpu and cuda variants from one Dockerfile, the GPU override, installs from locks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose(name: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / name).read_text())  # type: ignore[no-any-return]


def test_engine_variants_from_one_dockerfile() -> None:
    dockerfile = (REPO / "tts" / "Dockerfile").read_text()
    assert "ARG VARIANT=cpu" in dockerfile
    # cpu: torch and torchaudio from PyTorch's CPU index, the CUDA packages left out of the lock.
    assert "--index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert '"torch==${torch}+cpu" "torchaudio==${audio}+cpu"' in dockerfile
    assert "nvidia-[a-z0-9-]+" in dockerfile
    base = _compose("docker-compose.yml")["services"]["ef_tts"]
    assert base["build"]["args"]["VARIANT"] == "cpu"


def test_gpu_override_gives_ef_tts_the_card() -> None:
    tts = _compose("docker-compose.gpu.yml")["services"]["ef_tts"]
    assert tts["environment"]["EF_TTS_DEVICE"] == "cuda"
    assert tts["build"]["args"]["VARIANT"] == "cuda"
    assert tts["image"].endswith("echoforge-tts:${EF_TAG:-latest}-cuda")
    devices = tts["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_python_images_install_from_hashed_locks() -> None:
    for dockerfile, lock in [
        ("backend/Dockerfile", "requirements/backend.txt"),
        ("tts/Dockerfile", "requirements/engine-${ENGINE}.txt"),
        ("monitoring/disk-exporter/Dockerfile", "requirements/disk-exporter.txt"),
    ]:
        text = (REPO / dockerfile).read_text()
        assert f"COPY {lock} " in text, dockerfile
        locked = r"pip install (--no-cache-dir )?--require-hashes --no-deps -r requirements"
        assert re.search(locked, text)
        assert re.search(r"pip install (--no-cache-dir )?--no-deps \.", text)
        assert "pip check" in text
