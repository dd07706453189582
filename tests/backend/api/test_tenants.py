"""Two API keys on one real backend: each key's jobs, audio and cache are its own.

``homeassistant`` and ``openwebui`` as in the review; the admin (127.0.0.1, in the default
EF_ADMIN_CIDRS) sees everything.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.backend.api.helpers import client_for, error_of, long_text, unique_text, wait_job
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = pytest.mark.server

HA = {"Authorization": "Bearer ha-key-0123456789abcdef"}
WEBUI = {"Authorization": "Bearer webui-key-fedcba9876543210"}
KEYS = "homeassistant:ha-key-0123456789abcdef,openwebui:webui-key-fedcba9876543210"
#: Two seconds, in days: finished jobs go quickly on the `shared` server.
SHORT_RETENTION_DAYS = str(2 / 86400)


@pytest.fixture(scope="module")
def tenants(backend_factory: BackendFactory) -> Server:
    """Default cache scope (per key)."""
    return backend_factory(EF_API_KEYS=KEYS)


@pytest.fixture(scope="module")
def shared(backend_factory: BackendFactory) -> Server:
    """A shared cache, a two-second job retention, one worker and room for two queued jobs
    per key (EF_QUEUE_KEY_SHARE 0.5 of EF_QUEUE_MAX 4)."""
    return backend_factory(
        EF_API_KEYS=KEYS,
        EF_CACHE_SCOPE="shared",
        EF_JOB_RETENTION_DAYS=SHORT_RETENTION_DAYS,
        EF_QUEUE_MAX="4",
        EF_TTS_CONCURRENCY="1",
    )


def test_a_keys_jobs_are_not_anothers(tenants: Server) -> None:
    with client_for(tenants) as client:
        created = client.post(
            "/api/v1/jobs", json={"text": unique_text("Only for the house")}, headers=HA
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        with httpx.Client(base_url=tenants.url, headers=HA, timeout=60) as owner:
            wait_job(owner, job_id)

        assert client.get(f"/api/v1/jobs/{job_id}/audio", headers=HA).status_code == 200
        missing = client.get("/api/v1/jobs/" + "0" * 32, headers=WEBUI)
        for method, path in (
            ("GET", f"/api/v1/jobs/{job_id}"),
            ("GET", f"/api/v1/jobs/{job_id}/audio"),
            ("DELETE", f"/api/v1/jobs/{job_id}"),
        ):
            other = client.request(method, path, headers=WEBUI)
            assert other.status_code == 404, (method, path, other.text)
            # Told exactly what a job that does not exist is told.
            assert error_of(other)["code"] == error_of(missing)["code"] == "job_not_found"
            assert error_of(other)["message"] == f"Job {job_id} not found."

        theirs = client.get("/api/v1/jobs", params={"limit": 200}, headers=WEBUI).json()
        assert job_id not in {j["id"] for j in theirs["data"]}
        mine = client.get("/api/v1/jobs", params={"limit": 200}, headers=HA).json()
        assert job_id in {j["id"] for j in mine["data"]}
        assert mine["count"] >= 1 and theirs["count"] == len(theirs["data"])

        # The admin sees every key's jobs.
        admin = client.get(f"/api/admin/jobs/{job_id}")
        assert admin.status_code == 200 and admin.json()["client"] == "homeassistant"


def test_whether_a_text_was_spoken_is_not_told_to_another_key(tenants: Server) -> None:
    body = {"text": unique_text("What the house said")}
    with client_for(tenants) as client:
        first = client.post("/api/v1/speech", json=body, headers=HA)
        assert first.status_code == 200, first.text
        assert client.post("/api/v1/speech", json=body, headers=HA).headers["x-ef-cache"] == "hit"
        other = client.post("/api/v1/speech", json=body, headers=WEBUI)
        assert other.status_code == 200, other.text
        assert other.headers["x-ef-cache"] == "miss"


def test_a_shared_cache_scope_is_shared(shared: Server) -> None:
    body = {"text": unique_text("Said once for everyone")}
    with client_for(shared) as client:
        assert client.post("/api/v1/speech", json=body, headers=HA).status_code == 200
        other = client.post("/api/v1/speech", json=body, headers=WEBUI)
        assert other.status_code == 200 and other.headers["x-ef-cache"] == "hit"


def test_finished_jobs_are_deleted_after_the_retention_and_their_audio_stays(
    shared: Server,
) -> None:
    text = unique_text("Forgotten soon")
    with httpx.Client(base_url=shared.url, headers=HA, timeout=60) as client:
        job_id = client.post("/api/v1/jobs", json={"text": text}).json()["id"]
        wait_job(client, job_id)
        # Fetched once: the backend now answers it from memory, until the retention is due.
        assert client.get(f"/api/v1/jobs/{job_id}/audio").status_code == 200
        deadline = time.monotonic() + 20
        while client.get(f"/api/v1/jobs/{job_id}").status_code == 200:
            assert time.monotonic() < deadline, "the job outlived its retention"
            time.sleep(0.25)
        assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
        assert client.get(f"/api/admin/jobs/{job_id}").status_code == 404  # gone, text and all
        assert client.get(f"/api/v1/jobs/{job_id}/audio").status_code == 404
        again = client.post("/api/v1/speech", json={"text": text})
        assert again.status_code == 200 and again.headers["x-ef-cache"] == "hit"


def test_one_key_cannot_fill_the_queue(shared: Server) -> None:
    with client_for(shared) as client:
        statuses: list[httpx.Response] = []
        for _ in range(5):
            response = client.post("/api/v1/jobs", json={"text": long_text(8)}, headers=HA)
            statuses.append(response)
            if response.status_code == 503:
                break
        full = statuses[-1]
        assert full.status_code == 503, [r.status_code for r in statuses]
        assert error_of(full)["code"] == "queue_full"
        assert str(error_of(full)["message"]).startswith(
            "API key 'homeassistant' already has 2 jobs waiting, its share of the queue"
        )
        # The other key still gets in.
        theirs = client.post("/api/v1/jobs", json={"text": long_text(2)}, headers=WEBUI)
        assert theirs.status_code == 202, theirs.text
        for response in statuses[:-1]:  # leave the queue empty for the next test
            client.delete(f"/api/admin/jobs/{response.json()['id']}")
        client.delete(f"/api/admin/jobs/{theirs.json()['id']}")
