"""Coqui TTS engine (``coqui-tts``, import ``TTS``): a model by name or from local files.

A named model (``EF_TTS_MODEL``, e.g. ``tts_models/en/ljspeech/vits``) is fetched by Coqui's own
``ModelManager`` into ``EF_TTS_MODEL_DIR`` (kept on a volume, so only the first start downloads)
and then loaded from those files exactly like ``EF_TTS_MODEL_PATH`` + ``EF_TTS_CONFIG_PATH``.
Coqui models are not thread-safe: one lock serialises synthesis, as in the stock server.
Speed maps to VITS's ``length_scale`` (and XTTS's ``speed``). Speakers of a multi-speaker model
are its voices; a single-speaker model has one voice, ``default``.

Only this module imports torch and TTS, and only when the engine loads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
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
)

log = logging.getLogger(__name__)

ENGINE = "coqui"
SINGLE_VOICE = "default"
#: Coqui's own loggers log the input text (tokenizer warnings): keep them to errors.
_QUIET_LOGGERS = ("TTS", "trainer")


def _peak_normalised(wav: Any) -> np.ndarray[Any, np.dtype[np.int16]]:
    """16-bit samples scaled as the stock server's ``save_wav`` does (peak to full scale)."""
    audio = np.asarray(wav, dtype=np.float32).reshape(-1)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scaled = audio * (32767.0 / max(0.01, peak))
    samples: np.ndarray[Any, np.dtype[np.int16]] = np.clip(scaled, -32767, 32767).astype(np.int16)
    return samples


STYLE_RULE = "style_wav must be a .wav file name in EF_TTS_VOICES_DIR or a JSON object"


def style_file(name: str, voices_dir: Path | None) -> str:
    """The reference ``.wav`` called ``name`` in ``voices_dir``; a path is refused unlooked-at."""
    if voices_dir is None or "/" in name or "\\" in name or name.startswith("."):
        raise InputRejected("invalid_style", STYLE_RULE)
    path = voices_dir / name
    if not path.is_file():
        raise InputRejected("unknown_style", f"No {name!r} in EF_TTS_VOICES_DIR")
    return str(path)


class CoquiEngine:
    """One Coqui model behind the ``Engine`` protocol."""

    name = ENGINE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.model_name
        self.device = settings.device
        self._lock = threading.Lock()
        self._api: Any = None
        self._speakers: list[str] = []
        self._languages: list[str] = []
        self._default_speaker: str | None = None
        self._language: str | None = None
        self._sample_rate = 0
        self._files: dict[str, str] = {}

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        if self.settings.model_path is not None:
            model_path, config_path = self._local_files()
            vocoder_path = vocoder_config = None
        else:
            model_path, config_path, vocoder_path, vocoder_config = self._download()
        self._files = {"model_path": str(model_path), "config_path": str(config_path)}
        try:
            from TTS.api import TTS

            api = TTS(
                model_path=str(model_path),
                config_path=str(config_path),
                vocoder_path=str(vocoder_path) if vocoder_path else None,
                vocoder_config_path=str(vocoder_config) if vocoder_config else None,
                progress_bar=False,
            ).to(self.device)
        except Exception as exc:
            raise ModelLoadError(
                f"Coqui model {self.model!r} failed to load from {model_path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if getattr(api.synthesizer, "tts_model", None) is None:
            raise ModelLoadError(f"Coqui model {self.model!r} is not a text-to-speech model")
        self._api = api
        self._sample_rate = int(api.synthesizer.output_sample_rate)
        self._speakers = list(api.speakers or []) if api.is_multi_speaker else []
        self._languages = list(api.languages or []) if api.is_multi_lingual else []
        self._default_speaker = self._pick_default_speaker()
        self._language = self._pick_language(config_path)
        log.info(
            "Coqui ready: %s (%s), %d speaker(s), %d language(s), %d Hz",
            self.model,
            type(api.synthesizer.tts_model).__name__,
            len(self._speakers),
            len(self._languages),
            self._sample_rate,
        )

    def _local_files(self) -> tuple[Path, Path]:
        model_path = self.settings.model_path
        assert model_path is not None
        config_path = self.settings.config_path or model_path.parent / "config.json"
        if not model_path.is_file():
            raise ModelLoadError(f"Coqui model {self.model!r}: model file not found: {model_path}")
        if not config_path.is_file():
            raise ModelLoadError(
                f"Coqui model {self.model!r}: config file not found: {config_path}"
            )
        return model_path, config_path

    def _download(self) -> tuple[Path, Path, Path | None, Path | None]:
        """Fetch the named model (and its default vocoder) into EF_TTS_MODEL_DIR, or reuse it."""
        try:
            from TTS.utils.manage import ModelManager
        except Exception as exc:
            raise ModelLoadError(
                f"coqui-tts is not importable: {type(exc).__name__}: {exc}"
            ) from exc
        model_dir = self.settings.model_dir
        manager = ModelManager(output_prefix=model_dir, progress_bar=False)
        name = self.model
        if name not in manager.list_tts_models():
            raise ModelLoadError(
                f"Coqui model {name!r} is not a known model name (see `tts --list_models`)"
            )
        log.info("fetching Coqui model %s into %s (downloads on first start only)", name, model_dir)
        try:
            model_path, config_path, item = manager.download_model(name)
            vocoder_path = vocoder_config = None
            vocoder_name = item.get("default_vocoder")
            if vocoder_name:
                vocoder_path, vocoder_config, _ = manager.download_model(vocoder_name)
        except Exception as exc:
            raise ModelLoadError(
                f"Coqui model {name!r} could not be downloaded into {model_dir}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if config_path is None:
            raise ModelLoadError(f"Coqui model {name!r} has no config.json in {model_dir}")
        return model_path, config_path, vocoder_path, vocoder_config

    def _pick_default_speaker(self) -> str | None:
        wanted = self.settings.default_voice
        if not self._speakers:
            if wanted and wanted not in DEFAULT_VOICE_ALIASES:
                raise ModelLoadError(
                    f"EF_TTS_DEFAULT_VOICE {wanted!r} set, but {self.model!r} has a single speaker"
                )
            return None
        if not wanted:
            return self._speakers[0]
        if wanted not in self._speakers:
            raise ModelLoadError(
                f"EF_TTS_DEFAULT_VOICE {wanted!r} is not a speaker of {self.model!r}"
            )
        return wanted

    def _pick_language(self, config_path: Path) -> str | None:
        if self._languages:
            wanted = self.settings.default_language
            return wanted if wanted in self._languages else self._languages[0]
        config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            config = json.loads(config_path.read_text(encoding="utf-8"))
        language = config.get("phoneme_language") or None
        if language is None and self.model.count("/") == 3:
            language = self.model.split("/")[1]  # tts_models/<lang>/<dataset>/<model>
        return str(language) if language else None

    # -- protocol ----------------------------------------------------------------------------

    def voices(self) -> list[Voice]:
        ids = self._speakers or [SINGLE_VOICE]
        default = self._default_speaker or SINGLE_VOICE
        return [
            Voice(
                id=voice_id,
                name=voice_id if self._speakers else self.model,
                language=None if self._languages else self._language,
                engine=ENGINE,
                sample_rate=self._sample_rate,
                default=voice_id == default,
            )
            for voice_id in ids
        ]

    def _resolve_speaker(self, voice: str | None) -> str | None:
        if voice is None or voice in DEFAULT_VOICE_ALIASES:
            return self._default_speaker
        if voice in self._speakers:
            return voice
        raise UnknownVoice(voice, [v.id for v in self.voices()])

    def _resolve_language(self, language: str | None) -> str | None:
        if not self._languages:
            if (
                language
                and self._language
                and language.split("-")[0] != self._language.split("-")[0]
            ):
                raise InputRejected(
                    "unknown_language",
                    f"Model {self.model!r} speaks {self._language}, not {language!r}",
                )
            return None
        if not language:
            return self._language
        if language not in self._languages:
            raise InputRejected(
                "unknown_language",
                f"Unknown language {language!r}; valid languages: {', '.join(self._languages)}",
            )
        return language

    def _style(self, style_wav: str | None) -> str | dict[str, float] | None:
        """``style_wav``: a GST token dict, or the name of a ``.wav`` in EF_TTS_VOICES_DIR.

        The stock server opened any path on the host, so its answer told whether a file
        existed; here a path is refused before anything is looked up.
        """
        if not style_wav:
            return None
        reference = (
            style_file(style_wav, self.settings.voices_dir) if style_wav.endswith(".wav") else None
        )
        if not self._api.synthesizer.tts_config.get("use_gst", False):
            raise InputRejected("style_not_supported", f"Model {self.model!r} takes no style_wav")
        if reference is not None:
            return reference
        try:
            tokens = json.loads(style_wav)
        except ValueError:
            raise InputRejected("invalid_style", STYLE_RULE) from None
        if not isinstance(tokens, dict):
            raise InputRejected("invalid_style", "style_wav must be a JSON object of GST weights")
        return tokens

    def synthesize(
        self,
        text: str,
        *,
        voice: str | None,
        language: str | None,
        speed: float,
        style_wav: str | None = None,
    ) -> Synthesis:
        if self._api is None:
            raise RuntimeError("Coqui model is not loaded")
        speaker = self._resolve_speaker(voice)
        lang = self._resolve_language(language)
        style = self._style(style_wav)
        model = self._api.synthesizer.tts_model
        kwargs: dict[str, Any] = {}
        with self._lock:
            base_scale = getattr(model, "length_scale", None)
            if isinstance(base_scale, int | float):
                model.length_scale = base_scale / speed
                speed_applied = True
            elif type(model).__name__ == "Xtts":
                kwargs["speed"] = speed
                speed_applied = True
            else:
                speed_applied = speed == 1.0
            try:
                wav = self._api.tts(text, speaker=speaker, language=lang, style_wav=style, **kwargs)
            finally:
                if isinstance(base_scale, int | float):
                    model.length_scale = base_scale
        return Synthesis(
            samples=_peak_normalised(wav),
            sample_rate=self._sample_rate,
            speed_applied=speed_applied,
            voice=speaker or SINGLE_VOICE,
        )

    def details(self) -> dict[str, object]:
        info: dict[str, object] = {
            "engine": ENGINE,
            "model": self.model,
            "device": self.device,
            "sample_rate": self._sample_rate,
            "speakers": self._speakers,
            "languages": self._languages,
            "default_voice": self._default_speaker or SINGLE_VOICE,
            "language": self._language,
        }
        if self._api is not None:
            config = self._api.synthesizer.tts_config
            info["model_type"] = type(self._api.synthesizer.tts_model).__name__
            info["model_config"] = {
                key: config.get(key)
                for key in ("model", "run_name", "use_phonemes", "phoneme_language", "text_cleaner")
            }
        return info

    def close(self) -> None:
        with self._lock:
            self._api = None
