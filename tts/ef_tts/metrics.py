"""Every metric ef_tts exports, declared once (documented in docs/metrics.md).

Labels come from bounded sets: one engine and one model per process, outcomes from ``OUTCOMES``.
"""

from __future__ import annotations

import platform
from pathlib import Path

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
model_load_max_seconds = Gauge(
    "ef_tts_engine_model_load_max_seconds",
    "How long a model load may take (EF_TTS_MODEL_LOAD_MAX_S): within it, alerts stay silent.",
    ["engine", "model"],
)
memory_limit_bytes = Gauge(
    "ef_tts_memory_limit_bytes",
    "Memory limit of this process's cgroup (the container's limit), 0 when there is none.",
)
build_info = Gauge(
    "ef_tts_build_info",
    "Always 1; the labels say which ef_tts, engine, device (EF_TTS_DEVICE) and Python run here.",
    ["version", "engine", "device", "python_version"],
)


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int:
    """The memory limit of this container: cgroup v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``; 0 when unlimited ("max", or v1's near-2**63 "no limit")."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if not text.isdigit():
            return 0
        value = int(text)
        return value if value < 2**60 else 0
    return 0


# Read at each scrape: a limit changed with `docker update` shows at once.
memory_limit_bytes.set_function(cgroup_memory_limit)


def init(engine: str, model: str, device: str = "cpu", *, load_max_s: float) -> None:
    """Create every labelled series at start-up so dashboards and alerts see zeros, not gaps."""
    build_info.labels(__version__, engine, device, platform.python_version()).set(1)
    model_load_max_seconds.labels(engine, model).set(load_max_s)
    for outcome in OUTCOMES:
        requests.labels(engine, outcome)
    inference_seconds.labels(engine, model)
    realtime_factor.labels(engine, model)
    audio_seconds.labels(engine, model)
    text_characters.labels(engine, model)
    in_flight.labels(engine).set(0)
    model_loaded.labels(engine, model).set(0)
    model_load_failed.labels(engine, model).set(0)
