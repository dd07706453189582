"""Settings of the engine service, read once from ``EF_TTS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: What each engine loads when ``EF_TTS_MODEL`` is not set.
DEFAULT_MODELS = {
    "coqui": "tts_models/en/ljspeech/vits",
    "piper": "en_US-joe-medium",
}


class Settings(BaseSettings):
    """Every knob of ef_tts; the defaults run the offline Piper voice on 127.0.0.1:5002."""

    model_config = SettingsConfigDict(env_prefix="EF_TTS_", extra="ignore")

    engine: Literal["piper", "coqui"] = "piper"
    host: str = "127.0.0.1"
    port: int = Field(default=5002, ge=1, le=65535)
    #: Coqui: a model name such as ``tts_models/en/ljspeech/vits``; Piper: the default voice id.
    model: str = ""
    #: Where Coqui downloads named models (a volume in the container).
    model_dir: Path = Path("models")
    #: A local model file (Coqui ``model.pth`` or a Piper ``.onnx``); wins over ``model``.
    model_path: Path | None = None
    #: The config next to ``model_path`` (Coqui ``config.json``; Piper defaults to ``<onnx>.json``).
    config_path: Path | None = None
    #: Extra Piper voices: every ``*.onnx`` with its ``*.onnx.json`` in this folder.
    voices_dir: Path | None = None
    #: Parallel Piper synthesis sessions (Coqui always runs one at a time).
    workers: int = Field(default=2, ge=1, le=32)
    max_text_chars: int = Field(default=5000, ge=1, le=1_000_000)
    device: str = "cpu"
    #: How long loading the model may take before alerts page (a first Coqui start downloads
    #: the model); exported as ef_tts_engine_model_load_max_seconds for the rules to read.
    model_load_max_s: float = Field(default=900.0, gt=0)
    log_level: str = "INFO"
    #: The voice used when a request names none (default: the model's own default).
    default_voice: str = ""
    #: Language for multilingual Coqui models when the request names none (as ``--language_idx``).
    default_language: str = "en"
    #: Bounds of the ``speed`` parameter (OpenAI accepts 0.25 to 4.0).
    min_speed: float = Field(default=0.25, gt=0)
    max_speed: float = Field(default=4.0, gt=0)

    @field_validator("device")
    @classmethod
    def _device_known(cls, value: str) -> str:
        if value != "cpu" and not value.startswith(("cuda", "mps")):
            raise ValueError(f"EF_TTS_DEVICE must be cpu, cuda[:n] or mps, not {value!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _level_known(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(
                f"EF_TTS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {value!r}"
            )
        return value.upper()

    @property
    def model_name(self) -> str:
        """The model this process serves, as reported in /health and metric labels."""
        if self.model:
            return self.model
        if self.model_path is not None:
            return self.model_path.stem if self.engine == "piper" else self.model_path.parent.name
        return DEFAULT_MODELS[self.engine]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings``)."""
    return Settings()
