"""The engine's life in the service: background load, state for /health, synthesis off the loop.

The model loads once in a background thread so the HTTP server answers (``/health`` 503
"loading") from the first second. A load failure is kept, logged and reported (``failed`` with
the reason) instead of crashing, so a supervisor does not restart the process in a loop.
Synthesis runs in a thread pool of ``EF_TTS_WORKERS`` threads; engines that are not thread-safe
(Coqui) serialise themselves with their own lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace

from ef_tts import metrics
from ef_tts.config import Settings
from ef_tts.engines import Engine, InputRejected, Synthesis, build_engine

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

State = Literal["loading", "ok", "failed"]


class NotReady(Exception):
    """The model is still loading or failed to load: a 503 for the client."""

    def __init__(self, state: State, error: str | None) -> None:
        reason = f": {error}" if error else ""
        super().__init__(
            f"Model is {'still loading' if state == 'loading' else 'not loaded'}{reason}"
        )
        self.state = state
        self.error = error


class SynthesisError(Exception):
    """The engine failed on a valid request: a 500 for the client, with the reason logged."""


@dataclass(frozen=True)
class Status:
    """What /health reports."""

    state: State
    engine: str
    model: str
    device: str
    error: str | None
    load_seconds: float | None


class EngineRuntime:
    """Owns the engine: loads it, reports its state, runs synthesis with metrics."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else build_engine(settings)
        self._state: State = "loading"
        self._error: str | None = None
        self._load_seconds: float | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="ef-tts-synth"
        )
        self._loader: threading.Thread | None = None
        metrics.init(
            self.engine.name,
            self.engine.model,
            self.engine.device,
            load_max_s=settings.model_load_max_s,
        )

    @property
    def labels(self) -> tuple[str, str]:
        return self.engine.name, self.engine.model

    def start_loading(self) -> None:
        """Load the model in a background thread; returns at once."""
        self._loader = threading.Thread(target=self._load, name="ef-tts-load", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        engine, model = self.labels
        log.info("loading %s model %s on %s", engine, model, self.engine.device)
        started = time.perf_counter()
        try:
            self.engine.load()
        except Exception as exc:
            elapsed = time.perf_counter() - started
            self._error = str(exc) or type(exc).__name__
            self._state = "failed"
            self._load_seconds = elapsed
            metrics.model_load_seconds.labels(engine, model).set(elapsed)
            metrics.model_load_failed.labels(engine, model).set(1)
            log.error(
                "model load failed: %s model %s: %s", engine, model, self._error, exc_info=exc
            )
            return
        elapsed = time.perf_counter() - started
        self._load_seconds = elapsed
        self._state = "ok"
        metrics.model_load_seconds.labels(engine, model).set(elapsed)
        metrics.model_loaded.labels(engine, model).set(1)
        log.info("model loaded: %s model %s in %.2fs", engine, model, elapsed)

    def status(self) -> Status:
        return Status(
            state=self._state,
            engine=self.engine.name,
            model=self.engine.model,
            device=self.engine.device,
            error=self._error,
            load_seconds=self._load_seconds,
        )

    def require_ready(self) -> None:
        if self._state != "ok":
            raise NotReady(self._state, self._error)

    async def synthesize(
        self,
        text: str,
        *,
        voice: str | None,
        language: str | None,
        speed: float,
        style_wav: str | None = None,
    ) -> Synthesis:
        """Run the engine in the pool and record the ``ef_tts_engine_*`` metrics."""
        engine, model = self.labels
        try:
            self.require_ready()
        except NotReady:
            metrics.requests.labels(engine, "unavailable").inc()
            raise
        gauge = metrics.in_flight.labels(engine)
        gauge.inc()
        started = time.perf_counter()
        try:
            with tracer.start_as_current_span(
                "ef_tts.synthesize",
                attributes={"ef.engine": engine, "ef.model": model, "ef.text_length": len(text)},
            ):
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._executor,
                    lambda: self.engine.synthesize(
                        text, voice=voice, language=language, speed=speed, style_wav=style_wav
                    ),
                )
        except InputRejected:
            raise  # counted as "rejected" by the error handler, like every other 4xx
        except Exception as exc:
            metrics.requests.labels(engine, "error").inc()
            log.exception("synthesis failed (%d chars)", len(text))
            raise SynthesisError(f"Synthesis failed: {type(exc).__name__}: {exc}") from exc
        finally:
            gauge.dec()
        elapsed = time.perf_counter() - started
        metrics.requests.labels(engine, "success").inc()
        metrics.inference_seconds.labels(engine, model).observe(elapsed)
        metrics.audio_seconds.labels(engine, model).inc(result.duration_s)
        metrics.text_characters.labels(engine, model).inc(len(text))
        if result.duration_s > 0:
            metrics.realtime_factor.labels(engine, model).observe(elapsed / result.duration_s)
        log.info(
            "synthesised %d chars -> %.2fs audio in %.3fs (voice %s, speed %.2f)",
            len(text),
            result.duration_s,
            elapsed,
            result.voice,
            speed,
        )
        return result

    def count_rejected(self) -> None:
        """One request refused for bad input (before or inside the engine)."""
        metrics.requests.labels(self.engine.name, "rejected").inc()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._state == "ok":
            self.engine.close()
