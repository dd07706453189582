"""What the backend knows about its engine: identity, voices, and the health probe.

The engine's identity (engine and model name) is part of every cache key, and its voices decide
what a request may ask for. Both are remembered, in memory and in ``EF_DATA_DIR/engine.json``,
so that cached audio is still served and jobs are still queued while the engine is down, even
right after the backend restarted. The health probe (a short sample synthesis)
is cached a few seconds so that health checks can never overload the engine, and it sets
``ef_tts_engine_up``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ef_common.voices import OPENAI_VOICES

from ef_backend.core.config import Settings
from ef_backend.core.errors import EngineRejected, EngineUnavailable, UnknownVoice
from ef_backend.observability import metrics
from ef_backend.services import audio
from ef_backend.services.engine import EngineClient, EngineInfo, EngineVoice

log = logging.getLogger(__name__)

__all__ = ["EngineHealth", "EngineState"]

#: The health probe's sample synthesis: short, and never allowed to hang a health check.
PROBE_TEXT = "Ready."
PROBE_TIMEOUT_S = 10.0
#: How long the voice list is trusted before it is asked for again.
VOICES_TTL_S = 30.0
#: How long a failed probe makes new synthesis fail fast instead of queueing.
FAIL_FAST_S = 5.0


@dataclass(frozen=True)
class EngineHealth:
    """The last engine probe: reachable, model loaded, sample-synthesis latency."""

    reachable: bool
    model_loaded: bool
    latency_s: float | None
    engine: str
    model: str
    error: str | None
    checked_at: float


class EngineState:
    """The engine as last seen through ``client``."""

    def __init__(self, client: EngineClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._info: EngineInfo | None = None
        self._voices: list[EngineVoice] | None = None
        self._voices_at = 0.0
        self._refreshing: set[asyncio.Task[None]] = set()
        self._health: EngineHealth | None = None
        self._lock: asyncio.Lock | None = None
        self._snapshot_path: Path = settings.data_dir / "engine.json"

    async def identity(self) -> EngineInfo:
        """Engine and model name (part of every key); the last known one if the engine is down."""
        if self._info is None:
            try:
                self._set_info(await self.client.info())
            except EngineUnavailable:
                if not self._restore():
                    raise
        assert self._info is not None
        return self._info

    # -- the snapshot on disk ----------------------------------------------------------------

    def _set_info(self, info: EngineInfo) -> None:
        changed = self._info is None or (self._info.engine, self._info.model) != (
            info.engine,
            info.model,
        )
        self._info = info
        if changed:
            self._save()

    def _save(self) -> None:
        """Write what is known (atomically: own temp file, then rename); a failure only logs.

        Voices not asked for yet in this process are kept from the last snapshot when it is of
        the same engine and model (they belong to that model, not to another one).
        """
        if self._info is None:
            return
        identity = {"engine": self._info.engine, "model": self._info.model}
        voices = [asdict(v) for v in self._voices] if self._voices is not None else None
        if voices is None:
            previous = self._read_snapshot()
            same = previous is not None and all(previous.get(k) == v for k, v in identity.items())
            voices = previous.get("voices", []) if previous is not None and same else []
        try:
            self._snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._snapshot_path.parent, prefix=".engine.")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({**identity, "voices": voices}, out)
            os.replace(tmp, self._snapshot_path)
        except OSError as exc:
            log.warning("cannot save the engine snapshot", extra={"error": str(exc)})

    def _read_snapshot(self) -> dict[str, Any] | None:
        try:
            snapshot = json.loads(self._snapshot_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return snapshot if isinstance(snapshot, dict) else None

    def _restore(self) -> bool:
        """Load the last snapshot (engine down since this process started); True if found."""
        snapshot = self._read_snapshot()
        if snapshot is None:
            return False
        try:
            info = EngineInfo(
                engine=str(snapshot["engine"]),
                model=str(snapshot["model"]),
                loaded=False,
                status="unknown",
                error="last known identity; the engine has not answered since start-up",
            )
            voices = [EngineVoice(**v) for v in snapshot["voices"]]
        except (ValueError, KeyError, TypeError):
            return False
        self._info = self._info or info
        if self._voices is None and voices:
            self._voices = voices  # _voices_at stays 0: asked for again at the next chance
        log.warning(
            "engine unreachable; using its last known identity",
            extra={"engine": info.engine, "model": info.model, "voices": len(voices)},
        )
        return True

    def down(self) -> EngineUnavailable | None:
        """The error to fail fast with when a fresh probe could not reach the engine."""
        health = self._health
        if health is None or health.reachable or time.time() - health.checked_at > FAIL_FAST_S:
            return None
        return EngineUnavailable(
            health.error or "The speech engine is unreachable.", reason="unreachable"
        )

    async def voices(self) -> list[EngineVoice]:
        """The engine's voices; the last known list while the engine is down.

        Once a list is known, no caller waits on the engine: a list older than VOICES_TTL_S is
        answered as it is and asked for again in the background, at most once per VOICES_TTL_S
        whatever the outcome. A down or hanging engine is so never probed per request (cache
        hits go through here).
        """
        if self._voices is None:
            try:
                return await self._fetch_voices()
            except EngineUnavailable:
                self._restore()
                if self._voices is not None:
                    return self._voices
                raise
        now = time.monotonic()
        if now - self._voices_at >= VOICES_TTL_S:
            self._voices_at = now
            refresh = asyncio.create_task(self._refresh_voices(), name="ef-engine-voices")
            self._refreshing.add(refresh)  # a strong reference until it is done
            refresh.add_done_callback(self._refreshing.discard)
        return self._voices

    async def _fetch_voices(self) -> list[EngineVoice]:
        voices = await self.client.voices()
        changed = voices != self._voices
        self._voices, self._voices_at = voices, time.monotonic()
        if changed:
            self._save()
        return voices

    async def _refresh_voices(self) -> None:
        try:
            await self._fetch_voices()
        except EngineUnavailable as exc:
            log.info(
                "engine voices not refreshed; keeping the last known", extra={"error": exc.message}
            )
        except Exception:
            log.exception("refreshing the engine voices failed; keeping the last known")

    async def resolve_voice(self, voice: str | None) -> str:
        """An engine voice id for ``voice``: None/"" is the default, OpenAI names map."""
        voices = await self.voices()
        ids = [v.id for v in voices]
        if not ids:
            raise EngineUnavailable("The speech engine offers no voices.", reason="engine_error")
        default = self.default_voice(voices)
        if not voice:
            return default
        if voice in ids:
            return voice
        mapped = self.settings.voice_map.get(voice) or self.settings.voice_map.get(voice.lower())
        if mapped:
            if mapped in ids:
                return mapped
            log.warning(
                "EF_VOICE_MAP names a voice the engine lacks; using the default",
                extra={"openai_voice": voice, "mapped": mapped},
            )
            return default
        if voice.lower() in OPENAI_VOICES:
            return default
        shown = ", ".join(ids[:50]) + (" ..." if len(ids) > 50 else "")
        raise UnknownVoice(
            f"Unknown voice {voice!r}. Valid voices: {shown}. OpenAI voice names "
            f"({', '.join(OPENAI_VOICES[:6])}, ...) are accepted too.",
            valid=ids,
        )

    def default_voice(self, voices: list[EngineVoice]) -> str:
        """EF_DEFAULT_VOICE if the engine has it, else the engine's own default."""
        ids = [v.id for v in voices]
        configured = self.settings.default_voice
        if configured:
            if configured in ids:
                return configured
            log.warning("EF_DEFAULT_VOICE is not a voice of the engine; using the engine's default")
        return next((v.id for v in voices if v.default), ids[0])

    async def health(self, *, max_age_s: float = 5.0) -> EngineHealth:
        """The engine probe, cached ``max_age_s`` so health checks cannot overload the engine."""
        health = self._health
        if health is not None and time.time() - health.checked_at < max_age_s:
            return health
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            health = self._health
            if health is not None and time.time() - health.checked_at < max_age_s:
                return health  # another caller probed while we waited
            health = await self._probe()
            self._health = health
        up = health.reachable and health.model_loaded and health.error is None
        metrics.tts_engine_up.set(1.0 if up else 0.0)
        if not up:
            # The full reason stays here; /health answers with a terse one.
            log.warning("engine probe failed", extra={"error": health.error})
        return health

    async def _probe(self) -> EngineHealth:
        checked_at = time.time()
        known = self._info
        try:
            info = await self.client.info()
        except EngineUnavailable as exc:
            return EngineHealth(
                reachable=False,
                model_loaded=False,
                latency_s=None,
                engine=known.engine if known else "unknown",
                model=known.model if known else "unknown",
                error=exc.message,
                checked_at=checked_at,
            )
        if not info.loaded:
            why = info.error or info.status
            return EngineHealth(True, False, None, info.engine, info.model, why, checked_at)
        self._set_info(info)  # the engine may have been restarted with another model
        voice = self.default_voice(self._voices) if self._voices else None
        started = time.perf_counter()
        error: str | None = None
        latency: float | None = None
        try:
            result = await self.client.synthesize(
                PROBE_TEXT, voice=voice, timeout_s=PROBE_TIMEOUT_S
            )
            await asyncio.to_thread(audio.read_wav, result.wav)
            latency = time.perf_counter() - started
        except (EngineUnavailable, EngineRejected, audio.AudioDecodeError) as exc:
            error = f"sample synthesis failed: {getattr(exc, 'message', exc)}"
        return EngineHealth(True, True, latency, info.engine, info.model, error, checked_at)
