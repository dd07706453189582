"""Engines that misbehave slowly: one that trickles its answer a byte at a time, one that never
answers. The call's deadline (EF_TTS_TIMEOUT_S) fires, the job fails with reason ``timeout``
after its attempts, and the worker is free again (no stuck worker). Garbage answers and
dropped connections are in test_worker.py.

The engines are small socket servers (stand-ins): a real ef_tts cannot be made to trickle.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ef_backend.models import JobStatus

from tests.backend.services.conftest import ServiceFactory
from tests.backend.services.helpers import listening, metric, wait_until
from tests.utils.jobs import new_job
from tests.utils.procs import Server, free_port, start_server

pytestmark = pytest.mark.server

BAD_ENGINE = """
import socket, sys, threading, time
mode, port = sys.argv[1], int(sys.argv[2])
server = socket.create_server(("127.0.0.1", port))

def serve(conn):
    conn.recv(65536)
    if mode == "hang":
        time.sleep(3600)  # read the request, then say nothing at all
    head = "HTTP/1.1 200 OK\\r\\nContent-Type: audio/wav\\r\\nContent-Length: 100000\\r\\n\\r\\n"
    conn.sendall(head.encode())
    for _ in range(100000):  # a WAV that would take a day: one byte every half second
        conn.sendall(b"R")
        time.sleep(0.5)

while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@pytest.fixture(params=["trickle", "hang"])
def bad_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    server = start_server(
        f"engine-{request.param}",
        [sys.executable, "-c", BAD_ENGINE, request.param, str(port)],
        port=port,
        log_dir=tmp_path / "logs",
    )
    try:
        yield server
    finally:
        server.stop()


async def test_a_slow_or_silent_engine_times_out_and_frees_the_worker(
    service_factory: ServiceFactory, bad_engine: Server
) -> None:
    await wait_until(lambda: listening(bad_engine.port), timeout=30)
    service = await service_factory(
        tts_url=bad_engine.url,
        tts_timeout_s=1.0,
        tts_connect_timeout_s=0.5,
        tts_concurrency=1,
        job_retry_backoff_s=0.05,
        job_max_attempts=2,
    )
    timeouts = metric("ef_tts_failures_total", reason="timeout")
    first, _ = service.queue.enqueue(new_job("An engine that takes forever."))
    second, _ = service.queue.enqueue(new_job("The job after it gets the worker."))
    service.events.work_queued()

    def ended(job_id: str) -> bool:
        return service.jobs.get(job_id).status in (JobStatus.failed, JobStatus.succeeded)

    # Bounds, not speed claims: 2 attempts x 1.5 s deadline each, twice, plus slack.
    await wait_until(lambda: ended(first.id) and ended(second.id), timeout=60)
    for job in (first, second):
        done = service.jobs.get(job.id)
        assert (done.status, done.error_reason, done.attempts) == (JobStatus.failed, "timeout", 2)
        assert done.error is not None and "did not" in done.error
    assert metric("ef_tts_failures_total", reason="timeout") == timeouts + 4
    # The worker leaves the job (gauge back down) right after writing its outcome.
    await wait_until(lambda: metric("ef_tts_jobs_in_progress") == 0, timeout=10)
    assert service.workers.size == 1
