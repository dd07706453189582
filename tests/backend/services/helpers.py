"""Helpers shared by the service tests: polling, metric reads, ffprobe."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import REGISTRY

from tests.utils.poll import poll_until_async


def ffprobe(path: Path) -> dict[str, object]:
    """What ffmpeg's own prober reads in an audio file: an independent check of our encoding."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float = 60.0
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` s (a bound, not a speed claim)."""
    await poll_until_async(check, timeout=timeout, what=f"the condition within {timeout} s")


def metric(name: str, **labels: str) -> float:
    """The current value of one sample in the default registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def synth_calls() -> float:
    """Engine calls so far, all engines and voices (one per uncached sentence)."""
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "ef_tts_synthesis_duration_seconds":
            name = "ef_tts_synthesis_duration_seconds_count"
            total += sum(sample.value for sample in family.samples if sample.name == name)
    return total


def listening(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:``port``?"""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
