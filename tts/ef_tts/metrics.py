"""Every metric ef_tts exports, declared once (documented in docs/metrics.md).

Labels come from bounded sets: one engine and one model per process, outcomes from ``OUTCOMES``.
"""

from __future__ import annotations

import platform

from prometheus_client import Counter, Gauge, Histogram

from ef_tts import __version__

#: How a synthesis request ended.
OUTCOMES = ("success", "rejected", "unavailable", "error")

#: One short sentence on Piper takes ~50 ms; a paragraph on Coqui (CPU) up to a minute.
INFERENCE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Inference seconds per second of audio: below 1 is faster than real time.
RTF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)

inference_seconds = Histogram(
    "ef_tts_engine_inference_seconds",
    "Time the model spent synthesising one request.",
    ["engine", "model"],
    buckets=INFERENCE_BUCKETS,
)
audio_seconds = Counter(
    "ef_tts_engine_audio_seconds",
    "Seconds of audio the model produced.",
    ["engine", "model"],
)
realtime_factor = Histogram(
    "ef_tts_engine_realtime_factor",
    "Inference time divided by the duration of the audio (below 1: faster than real time).",
    ["engine", "model"],
    buckets=RTF_BUCKETS,
)
requests = Counter(
    "ef_tts_engine_requests",
    "Synthesis requests by outcome: success, rejected (4xx), unavailable (no model), error.",
    ["engine", "outcome"],
)
text_characters = Counter(
    "ef_tts_engine_text_characters",
    "Characters of text synthesised successfully.",
    ["engine", "model"],
)
in_flight = Gauge(
    "ef_tts_engine_in_flight",
    "Synthesis requests running or waiting for the model right now.",
    ["engine"],
)
model_loaded = Gauge(
    "ef_tts_engine_model_loaded",
    "1 when the model is loaded and serving, else 0 (loading or failed).",
    ["engine", "model"],
)
model_load_failed = Gauge(
    "ef_tts_engine_model_load_failed",
    "1 when loading the model failed (the reason is in /health and the log), else 0.",
    ["engine", "model"],
)
model_load_seconds = Gauge(
    "ef_tts_engine_model_load_seconds",
    "How long the last model load took (set when it finished, successfully or not).",
    ["engine", "model"],
)
build_info = Gauge(
    "ef_tts_build_info",
    "Always 1; the labels say which ef_tts, engine, device (EF_TTS_DEVICE) and Python run here.",
    ["version", "engine", "device", "python_version"],
)


def init(engine: str, model: str, device: str = "cpu") -> None:
    """Create every labelled series at start-up so dashboards and alerts see zeros, not gaps."""
    build_info.labels(__version__, engine, device, platform.python_version()).set(1)
    for outcome in OUTCOMES:
        requests.labels(engine, outcome)
    inference_seconds.labels(engine, model)
    realtime_factor.labels(engine, model)
    audio_seconds.labels(engine, model)
    text_characters.labels(engine, model)
    in_flight.labels(engine).set(0)
    model_loaded.labels(engine, model).set(0)
    model_load_failed.labels(engine, model).set(0)
