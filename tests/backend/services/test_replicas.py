"""Several engine replicas behind one backend (EF_TTS_URL as a list): load spread, failover."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ef_backend.models import JobStatus
from ef_backend.services.speech import SpeechRequest

from tests.backend.services.conftest import ServiceFactory
from tests.backend.services.helpers import metric, wait_until
from tests.utils.procs import Server, free_port, start_ef_tts

pytestmark = pytest.mark.server


@pytest.fixture
def two_engines(tmp_path: Path) -> Iterator[list[Server]]:
    """Two private ef_tts (Piper) replicas: one of them is killed by the test."""
    servers = [
        start_ef_tts(f"ef_tts-replica-{n}", tmp_path / "logs", {"EF_TTS_ENGINE": "piper"})
        for n in range(2)
    ]
    try:
        yield [server.wait_ready("/health", timeout=120) for server in servers]
    finally:
        for server in servers:
            server.stop()


def _engine_calls(server: Server) -> float:
    """How many syntheses this replica made, from its own /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    pattern = r'^ef_tts_engine_requests_total\{engine="piper",outcome="success"\} (\S+)$'
    match = re.search(pattern, text, flags=re.M)
    return float(match.group(1)) if match else 0.0


async def test_one_replica_dying_mid_load_moves_its_jobs_to_the_other(
    service_factory: ServiceFactory, two_engines: list[Server]
) -> None:
    """Both replicas take work; when one is killed, its jobs go back to the queue (no attempt
    used) and the other replica speaks them: every job succeeds, none fails."""
    first, second = two_engines
    service = await service_factory(
        tts_url=f"{first.url},{second.url}",
        tts_concurrency=2,
        job_retry_backoff_s=0.05,
        tts_connect_timeout_s=1.0,
    )
    failed = metric("ef_tts_jobs_total", outcome="failed")
    texts = [f"Replica test sentence number {n}. And a second one for {n}." for n in range(12)]
    jobs = [await service.speech.submit(SpeechRequest(text=text)) for text in texts]

    def done_count() -> int:
        return sum(service.jobs.get(j.id).status is JobStatus.succeeded for j in jobs)

    await wait_until(lambda: done_count() >= 2, timeout=180)
    assert _engine_calls(first) > 0 and _engine_calls(second) > 0  # both took work
    first.kill()
    await wait_until(lambda: done_count() == len(jobs), timeout=300)
    for job in jobs:
        final = service.jobs.get(job.id)
        assert final.status is JobStatus.succeeded, (final.status, final.error)
    assert metric("ef_tts_jobs_total", outcome="failed") == failed
    assert service.jobs.list(limit=10, offset=0, status=JobStatus.failed)[1] == 0
    # The engine as a whole is not down: a new request is still answered (by the survivor).
    audio = await asyncio.wait_for(
        service.speech.synthesize(SpeechRequest(text="Still answered after a replica died.")), 120
    )
    assert audio.data[:4] == b"RIFF"
    assert service.workers.engine_down() is None


async def test_a_replica_down_from_the_start_is_skipped(
    service_factory: ServiceFactory, piper_tts: Server
) -> None:
    """EF_TTS_URL lists a replica nobody listens on: identity, voices and synthesis come from
    the one that answers."""
    dead = f"http://127.0.0.1:{free_port()}"
    service = await service_factory(
        tts_url=f"{dead},{piper_tts.url}", tts_concurrency=2, job_retry_backoff_s=0.05
    )
    assert service.client.replica_count == 2
    voices = await service.speech.voices()
    assert voices
    audio = await asyncio.wait_for(
        service.speech.synthesize(SpeechRequest(text="Spoken by the replica that is up.")), 120
    )
    assert audio.data[:4] == b"RIFF" and not audio.cache_hit
