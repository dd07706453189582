"""A synchronous caller that hangs up: its waiter stops, the job goes on (real backend)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.backend.api.helpers import client_for, long_text, wait_job
from tests.utils.procs import Server

pytestmark = pytest.mark.server

GONE = "client went away; stopped waiting for its audio"


def test_a_waiter_whose_client_left_stops_waiting(backend: Server) -> None:
    before = backend.log_path.read_text().count(GONE)
    with client_for(backend) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/api/v1/speech", json={"text": long_text(6)}, timeout=1.0)
    deadline = time.monotonic() + 10
    while backend.log_path.read_text().count(GONE) == before:
        assert time.monotonic() < deadline, "the waiter is still waiting for a client that left"
        time.sleep(0.1)
    with client_for(backend) as client:
        # The job itself was not cancelled: it finishes for whoever asks next.
        newest = client.get("/api/v1/jobs", params={"limit": 1}).json()["data"][0]
        assert wait_job(client, newest["id"])["status"] == "succeeded"
